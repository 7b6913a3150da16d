//! The store's vocabulary: streams, expected versions, positions, new and recorded events.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant's id. The store scopes every tenant operation by it; the domain has its own checked
/// type and converts at the edge.
pub type TenantId = Uuid;

/// One stream of one tenant: `stream_type` names the aggregate kind (a NATS subject token),
/// `stream_id` the instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamRef {
    pub stream_type: String,
    pub stream_id: String,
}

impl StreamRef {
    pub fn new(stream_type: impl Into<String>, stream_id: impl Into<String>) -> Self {
        Self {
            stream_type: stream_type.into(),
            stream_id: stream_id.into(),
        }
    }
}

impl fmt::Display for StreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.stream_type, self.stream_id)
    }
}

/// What the writer believes about a stream before appending to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// Append whatever the stream's version.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (1-based).
    Exact(u32),
}

impl ExpectedVersion {
    /// The version the stream must be at, or `None` for [`ExpectedVersion::Any`].
    pub(crate) fn required(self) -> Option<u32> {
        match self {
            Self::Any => None,
            Self::NoStream => Some(0),
            Self::Exact(v) => Some(v),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}

/// A place in the global read order: events are read in `(transaction_id, global_position)`
/// order, which is commit order. A reader's checkpoint is the position of the last event it
/// has handled; [`Position::START`] is before everything.
///
/// Transaction ids are the cluster's `xid8`: a restored database in another cluster needs its
/// checkpoints reset (see ARCHITECTURE.md).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct Position {
    pub transaction_id: u64,
    pub global_position: u64,
}

impl Position {
    pub const START: Position = Position {
        transaction_id: 0,
        global_position: 0,
    };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.transaction_id, self.global_position)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a position is written <transaction_id>.<global_position> (got {0:?})")]
pub struct InvalidPosition(String);

impl FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || InvalidPosition(s.to_owned());
        let (tx, pos) = s.split_once('.').ok_or_else(bad)?;
        Ok(Position {
            transaction_id: tx.parse().map_err(|_| bad())?,
            global_position: pos.parse().map_err(|_| bad())?,
        })
    }
}

/// Who caused an event and in answer to what. Stored beside the payload, published with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The principal: `user:<id>`, `api_key:<id>`, `whatsapp:<wa_id>`, `operator:<id>`, `system:<component>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Shared by every event of one business operation, across services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The event or command that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The HTTP request (or webhook delivery) that carried the command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The W3C `traceparent` of the span that appended the event, when traces are on: the relay
    /// publishes it in the message's headers, so a consumer's span joins the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

/// An event to append. Its id should derive from the command's idempotency key so that a retry
/// carries the same ids (see [`crate::event_id_from_key`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
}

/// Events for one stream, with the writer's expectation of that stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamAppend {
    pub stream: StreamRef,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// What one stream looks like after an append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedStream {
    pub stream: StreamRef,
    pub first_version: u32,
    pub last_version: u32,
}

/// The result of an append: where each stream now stands and the position of the last event
/// written, which is the command's consistency token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendOutcome {
    pub streams: Vec<AppendedStream>,
    pub last_position: Position,
    /// True when every event already existed: this was a retry, nothing was written.
    pub replayed: bool,
}

/// An event as stored, after upcasting to its type's current schema. This is also the envelope
/// the relay publishes on NATS, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub tenant_id: TenantId,
    pub stream: StreamRef,
    pub version: u32,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: serde_json::Value,
    pub metadata: EventMetadata,
    pub recorded_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_by_transaction_first() {
        let early_tx_late_row = Position {
            transaction_id: 10,
            global_position: 99,
        };
        let late_tx_early_row = Position {
            transaction_id: 11,
            global_position: 5,
        };
        assert!(early_tx_late_row < late_tx_early_row);
        assert!(Position::START < early_tx_late_row);
    }

    #[test]
    fn a_position_round_trips_through_its_text_form() {
        let p = Position {
            transaction_id: 77,
            global_position: 1234,
        };
        assert_eq!(p.to_string().parse::<Position>(), Ok(p));
        assert!("77".parse::<Position>().is_err());
        assert!("a.1".parse::<Position>().is_err());
    }
}
