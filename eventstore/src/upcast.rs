//! Schema evolution: stored payloads are never rewritten; old ones are upcast on read.
//!
//! The store knows no event type. Whoever owns the types registers, per `(event_type,
//! schema_version)`, a function that turns that version's payload into the next version's.
//! Reading applies the chain until no step is registered, so readers only ever see current
//! payloads.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

type Step = Arc<dyn Fn(Value) -> Value + Send + Sync>;

/// Registered upcasting steps, keyed by the event type and the version they upgrade from.
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Step>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut keys: Vec<_> = self.steps.keys().collect();
        keys.sort();
        f.debug_struct("Upcasters").field("steps", &keys).finish()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step from `from_version` to `from_version + 1` for `event_type`.
    ///
    /// # Panics
    /// If a step for the same type and version is already registered: two ways to read the
    /// same stored payload is a programming error.
    pub fn register(
        mut self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> Value + Send + Sync + 'static,
    ) -> Self {
        let previous = self
            .steps
            .insert((event_type.to_owned(), from_version), Arc::new(step));
        assert!(
            previous.is_none(),
            "two upcasters for {event_type} v{from_version}"
        );
        self
    }

    /// Brings a stored payload to the newest registered version of its type.
    pub fn upcast(&self, event_type: &str, mut version: u32, mut payload: Value) -> (u32, Value) {
        if self.steps.is_empty() {
            return (version, payload);
        }
        // Look-ups borrow the type as a String key; one allocation per upcast event is fine.
        let mut key = (event_type.to_owned(), version);
        while let Some(step) = self.steps.get(&key) {
            payload = step(payload);
            version += 1;
            key.1 = version;
        }
        (version, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn steps_chain_until_the_newest_version() {
        let upcasters = Upcasters::new()
            .register("ServiceAdded", 1, |mut p| {
                p["duration_minutes"] = json!(60);
                p
            })
            .register("ServiceAdded", 2, |mut p| {
                let minutes = p["duration_minutes"].as_i64().unwrap();
                p["duration"] = json!({ "minutes": minutes });
                p.as_object_mut().unwrap().remove("duration_minutes");
                p
            });
        let (version, payload) = upcasters.upcast("ServiceAdded", 1, json!({"name": "Cut"}));
        assert_eq!(version, 3);
        assert_eq!(payload, json!({"name": "Cut", "duration": {"minutes": 60}}));
    }

    #[test]
    fn current_payloads_and_other_types_pass_through() {
        let upcasters = Upcasters::new().register("A", 1, |_| json!("changed"));
        assert_eq!(upcasters.upcast("A", 2, json!(1)), (2, json!(1)));
        assert_eq!(upcasters.upcast("B", 1, json!(1)), (1, json!(1)));
    }

    #[test]
    #[should_panic(expected = "two upcasters")]
    fn registering_the_same_step_twice_is_a_bug() {
        let _ = Upcasters::new()
            .register("A", 1, |p| p)
            .register("A", 1, |p| p);
    }
}
