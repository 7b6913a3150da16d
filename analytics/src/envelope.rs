//! The envelope of a message on the events stream, as the AsyncAPI-to-be and `domain/EVENTS.md`
//! describe it to anyone: read from the JSON payload alone, with no type of the event store.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    /// The event's place in the log's commit order.
    pub position: Position,
    pub tenant_id: Uuid,
    pub stream: Stream,
    pub version: u32,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    #[serde(default)]
    pub payload: serde_json::Value,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct Position {
    pub transaction_id: u64,
    pub global_position: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stream {
    pub stream_type: String,
    pub stream_id: String,
}

impl Envelope {
    pub fn parse(payload: &[u8]) -> anyhow::Result<Self> {
        serde_json::from_slice(payload).map_err(|e| anyhow::anyhow!("not an event envelope: {e}"))
    }
}

/// The stream carries customers' personal values sealed (see `eventstore::personal`).
impl eventstore::personal::Sealed for Envelope {
    fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }
    fn event_id(&self) -> Uuid {
        self.event_id
    }
    fn payload_mut(&mut self) -> &mut serde_json::Value {
        &mut self.payload
    }
    fn payload(&self) -> &serde_json::Value {
        &self.payload
    }
}
