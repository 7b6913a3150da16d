//! The Postgres event store and its relay to NATS JetStream.
//!
//! Owns the `events` table's read and write paths: appending to one or several streams
//! atomically with an expected version per stream, idempotent appends, reading a stream,
//! reading a tenant's or everyone's events in gap-free commit order, the tenant-scoped
//! transaction every service uses, upcasting of old payloads, and publishing committed events
//! to JetStream (the relay).
//!
//! Knows no concrete event type: payloads are JSON, types are names, and evolution is a hook
//! ([`Upcasters`]). Personal values in payloads are sealed with a key per customer and revealed
//! on every read ([`personal`]): the customers' keys are the one secret it reads, and erasing a
//! customer (deleting their key) the one thing it writes besides events and checkpoints.
//!
//! Two entry points, by database role:
//! - [`EventStore`]: the application role; every call is confined to one tenant by RLS.
//! - [`GlobalLog`]: the operator role; reads across tenants (relay, replay, operator audit).

#![forbid(unsafe_code)]

mod error;
mod global;
pub mod personal;
mod read;
pub mod relay;
pub mod session_lock;
mod store;
mod tx;
mod types;
mod upcast;
mod wake;

pub use error::{AppendError, caused_by_outage, caused_by_transient, is_outage, is_transient};
pub use global::GlobalLog;
pub use read::{open_received, upcast_all};
pub use relay::{Relay, RelayConfig, RelayStats};
pub use store::{EventStore, MAX_EVENTS_PER_APPEND};
pub use tx::TenantTx;
pub use types::{
    AppendOutcome, AppendedStream, EventMetadata, ExpectedVersion, InvalidPosition, NewEvent,
    Position, RecordedEvent, StreamAppend, StreamRef, TenantId,
};
pub use upcast::Upcasters;
pub use wake::{CommitListener, Wakeups};

/// The id of the `index`-th event produced by the command with `idempotency_key`, for a tenant.
///
/// Deterministic (UUID v5 in the tenant's namespace), so a retried command produces the same
/// ids and its append is recognised as a retry; distinct per tenant, so one tenant's keys can
/// never collide with another's.
pub fn event_id_from_key(tenant_id: TenantId, idempotency_key: &str, index: u32) -> uuid::Uuid {
    uuid::Uuid::new_v5(&tenant_id, format!("{idempotency_key}#{index}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_from_keys_are_stable_and_tenant_scoped() {
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        assert_eq!(
            event_id_from_key(a, "wamid.1", 0),
            event_id_from_key(a, "wamid.1", 0)
        );
        assert_ne!(
            event_id_from_key(a, "wamid.1", 0),
            event_id_from_key(a, "wamid.1", 1)
        );
        assert_ne!(
            event_id_from_key(a, "wamid.1", 0),
            event_id_from_key(b, "wamid.1", 0)
        );
    }
}
