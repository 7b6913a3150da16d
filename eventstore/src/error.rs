use uuid::Uuid;

use crate::types::{ExpectedVersion, StreamRef};

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// A stream was not at the expected version (another writer got there first). The command
    /// side reloads and decides again.
    #[error("stream {stream} was expected at {expected} but is at version {actual}")]
    Conflict {
        stream: StreamRef,
        expected: ExpectedVersion,
        actual: u32,
    },
    /// Some of the event ids were already appended, but not as this same append: the
    /// idempotency key was reused for a different command.
    #[error("event {event_id} was already appended by a different command")]
    IdempotencyMismatch { event_id: Uuid },
    /// The append itself is malformed (caught before touching the database).
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error("the event store failed")]
    Database(#[from] sqlx::Error),
}

impl AppendError {
    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }
}
