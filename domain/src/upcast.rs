//! How old stored payloads become current ones. The store never rewrites history; it applies
//! these steps on read (services register them into `eventstore::Upcasters`). Each step turns
//! one version of one event type into the next.

use serde_json::{Value, json};

/// One step: `event_type` at `from_version` becomes `from_version + 1`.
#[derive(Clone, Copy)]
pub struct UpcastStep {
    pub event_type: &'static str,
    pub from_version: u32,
    pub step: fn(Value) -> Value,
}

impl std::fmt::Debug for UpcastStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} v{}", self.event_type, self.from_version)
    }
}

/// Every step the domain's history needs.
pub fn steps() -> Vec<UpcastStep> {
    vec![UpcastStep {
        event_type: "ServiceAdded",
        from_version: 1,
        step: service_added_v1_to_v2,
    }]
}

/// `ServiceAdded` v1 was flat, priced in cents with a separate currency and without buffer,
/// capacity or category: `{service_id, name, price_cents, currency, duration_minutes, active}`.
/// v2 nests a full `service` with `Money` and the newer fields at their neutral values.
fn service_added_v1_to_v2(v1: Value) -> Value {
    json!({
        "service": {
            "id": v1["service_id"],
            "name": v1["name"],
            "price": { "minor": v1["price_cents"], "currency": v1["currency"] },
            "duration": v1["duration_minutes"],
            "buffer_minutes": 0,
            "capacity": 1,
            "active": v1.get("active").cloned().unwrap_or(Value::Bool(true)),
        }
    })
}

/// Applies the steps to one payload, as the store does on read (for tests and tools that read
/// payloads without the store).
pub fn upcast(event_type: &str, mut version: u32, mut payload: Value) -> (u32, Value) {
    let steps = steps();
    while let Some(step) = steps
        .iter()
        .find(|s| s.event_type == event_type && s.from_version == version)
    {
        payload = (step.step)(payload);
        version += 1;
    }
    (version, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot_config::{BotConfigEvent, Service};
    use crate::event::{DomainEvent, decode};
    use crate::ids::ServiceId;
    use crate::values::{Money, ServiceDuration};

    #[test]
    fn a_stored_v1_service_added_loads_as_the_current_event() {
        let stored_v1 = json!({
            "service_id": "00000000-0000-0000-0000-000000000007",
            "name": "Haircut",
            "price_cents": 2500,
            "currency": "EUR",
            "duration_minutes": 45,
            "active": true
        });
        let (version, payload) = upcast("ServiceAdded", 1, stored_v1);
        assert_eq!(version, BotConfigEvent::schema_version("ServiceAdded"));
        let event: BotConfigEvent = decode("ServiceAdded", &payload).unwrap();
        assert_eq!(
            event,
            BotConfigEvent::ServiceAdded {
                service: Service {
                    id: ServiceId::from_uuid(uuid::Uuid::from_u128(7)),
                    name: "Haircut".into(),
                    description: None,
                    price: Money::parse(2500, "EUR").unwrap(),
                    duration: ServiceDuration::parse(45).unwrap(),
                    buffer_minutes: 0,
                    capacity: 1,
                    category: None,
                    active: true,
                    staff: vec![],
                }
            }
        );
    }

    #[test]
    fn every_step_ends_at_its_types_current_version() {
        for step in steps() {
            let current = match step.event_type {
                "ServiceAdded" => BotConfigEvent::schema_version(step.event_type),
                other => panic!("no current version known for {other}"),
            };
            assert!(step.from_version < current, "{step:?}");
        }
    }
}
