//! One module per projection: how each event changes that projection's tables. Every function
//! runs inside the caller's tenant transaction and is called once per event, in stream order
//! (see [`crate::projection`]).

pub mod agenda;
pub mod bookings;
pub mod catalog;
pub mod conversations;
pub mod tenants;
pub mod usage;

/// The serde name of a unit-like enum value (`"confirmed"`, `"owner"`, ...).
pub(crate) fn label<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}
