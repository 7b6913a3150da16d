//! Aggregates kept folded in this process, so that a command reads only the events a stream
//! gained since it was last folded here.
//!
//! A conversation is loaded by every webhook about it: the customer's message, and the three
//! delivery statuses of each reply and the send's outcome. Folded whole each time, its stream
//! is read (and its personal values revealed, and every event decoded) over and over. Here the
//! unit of work keeps, per tenant and stream, the state at the version it was folded to; the
//! next load reads the events after that version and folds them onto a copy of it.
//!
//! **Always current.** A cached state is never used alone: the read of what came after it is
//! the same query as before (one statement), so another instance's appends are folded in, and
//! the append still expects the version the state stands at. The cache saves rows and work,
//! never the check. A state is put here only as read from committed events.
//!
//! **What is kept.** Only the aggregates read on every message and free of other people's
//! personal values ([`CACHED`]): the conversation (whose erasure event folds it back to
//! nothing), the business's tenant, bot configuration and billing. Bookings and agendas are
//! not kept. Entries live at most [`STATE_TTL`] and are bounded in number.
//!
//! **Erasure.** A customer's conversation state holds their revealed name and phone. The unit
//! that erases them drops what it read from this process's cache; another process's entry is
//! folded to nothing by the next load (the erasure event), and is gone within [`STATE_TTL`]
//! whatever happens.
//!
//! **A command applied before.** A retried command recognises its own events in the stream
//! (see [`crate::execute`]); those may lie inside a cached state, out of sight. So a decision
//! that was refused on a cached state is decided again on a full read.

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use domain::event::DomainEvent;
use eventstore::StreamRef;
use uuid::Uuid;

/// The stream types kept folded.
pub const CACHED: [&str; 4] = [
    domain::conversation::ConversationEvent::STREAM_TYPE,
    domain::tenant::TenantEvent::STREAM_TYPE,
    domain::bot_config::BotConfigEvent::STREAM_TYPE,
    domain::billing::BillingEvent::STREAM_TYPE,
];

/// How long a folded state is kept after it was put.
pub const STATE_TTL: Duration = Duration::from_secs(60);

/// A stream's state at a version, of its aggregate's state type.
#[derive(Clone)]
pub(crate) struct Folded {
    pub version: u32,
    pub state: Arc<dyn Any + Send + Sync>,
}

/// Folded states by tenant and stream; cheap to clone (one cache shared). Capacity 0 keeps
/// nothing.
#[derive(Clone)]
pub struct StateCache {
    states: Option<mini_moka::sync::Cache<(Uuid, StreamRef), Folded>>,
}

impl StateCache {
    /// At most `capacity` streams kept.
    pub fn new(capacity: u64) -> Self {
        Self {
            states: (capacity > 0).then(|| {
                mini_moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(STATE_TTL)
                    .build()
            }),
        }
    }

    /// Keeps nothing: every load reads the whole stream.
    pub fn disabled() -> Self {
        Self::new(0)
    }

    pub(crate) fn get(&self, tenant_id: Uuid, stream: &StreamRef) -> Option<Folded> {
        let states = self.states.as_ref()?;
        if !CACHED.contains(&stream.stream_type.as_str()) {
            return None;
        }
        let found = states.get(&(tenant_id, stream.clone()));
        metrics::counter!("state_cache_total", "outcome" => if found.is_some() { "hit" } else { "miss" })
            .increment(1);
        found
    }

    pub(crate) fn put<S: Any + Send + Sync>(
        &self,
        tenant_id: Uuid,
        stream: &StreamRef,
        version: u32,
        state: S,
    ) {
        if let Some(states) = &self.states
            && CACHED.contains(&stream.stream_type.as_str())
        {
            let state = Arc::new(state);
            states.insert((tenant_id, stream.clone()), Folded { version, state });
        }
    }

    /// Keeps a state already shared (see [`StateCache::put`]).
    pub(crate) fn put_kept(
        &self,
        tenant_id: Uuid,
        stream: &StreamRef,
        version: u32,
        state: Arc<dyn Any + Send + Sync>,
    ) {
        if let Some(states) = &self.states
            && CACHED.contains(&stream.stream_type.as_str())
        {
            states.insert((tenant_id, stream.clone()), Folded { version, state });
        }
    }

    pub(crate) fn forget(&self, tenant_id: Uuid, stream: &StreamRef) {
        if let Some(states) = &self.states {
            states.invalidate(&(tenant_id, stream.clone()));
        }
    }

    /// The version `stream` is kept at, if it is (for tests and operators' eyes).
    pub fn kept_version(&self, tenant_id: Uuid, stream: &StreamRef) -> Option<u32> {
        let states = self.states.as_ref()?;
        states.get(&(tenant_id, stream.clone())).map(|k| k.version)
    }

    /// Whether `stream`'s type is one this cache keeps (and the cache keeps anything).
    pub(crate) fn keeps(&self, stream: &StreamRef) -> bool {
        self.states.is_some() && CACHED.contains(&stream.stream_type.as_str())
    }
}

impl Default for StateCache {
    /// A few thousand streams: the conversations in flight and their businesses.
    fn default() -> Self {
        Self::new(4_096)
    }
}

impl std::fmt::Debug for StateCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateCache")
            .field("entries", &self.states.as_ref().map(|s| s.entry_count()))
            .finish()
    }
}
