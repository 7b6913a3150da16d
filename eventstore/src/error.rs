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

/// Whether a database error means Postgres could not be reached or went away (a restart, a
/// failover, a network cut, no connection free in time) rather than that the statement was at
/// fault: the same request is worth trying again shortly, and the answer is 503, not 500.
/// SQLSTATE classes 08 (connection exception) and 57P (the server shutting down, crashed or
/// starting up), and 53300 (too many connections).
pub fn is_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}

/// [`is_outage`] for an error anywhere in a chain of causes.
pub fn caused_by_outage(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source())
        .any(|e| e.downcast_ref::<sqlx::Error>().is_some_and(is_outage))
}

/// Whether a database error is worth retrying unchanged: an outage ([`is_outage`]), or the
/// database in the way for a moment: a serialization failure, a deadlock, a lock not granted in
/// time, the server out of memory or disk (SQLSTATE 40001, 40P01, 55P03, class 53). A consumer
/// retries such a failure rather than count it against the event. A statement timeout is not
/// one: a statement that always takes too long would be retried for ever.
pub fn is_transient(err: &sqlx::Error) -> bool {
    is_outage(err)
        || matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|code| {
            code.starts_with("53") || matches!(&*code, "40001" | "40P01" | "55P03")
        }))
}

/// [`is_transient`] for an error anywhere in a chain of causes.
pub fn caused_by_transient(err: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(err), |e| e.source())
        .any(|e| e.downcast_ref::<sqlx::Error>().is_some_and(is_transient))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadlock_is_transient_and_a_refusal_is_not() {
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        let wrapped = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("applying a batch");
        assert!(caused_by_transient(wrapped.as_ref()));
        assert!(!caused_by_transient(
            anyhow::anyhow!("a payload no projection reads").as_ref()
        ));
    }

    #[test]
    fn a_lost_connection_is_an_outage_and_a_bad_statement_is_not() {
        let reset = sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        assert!(is_outage(&reset));
        assert!(is_outage(&sqlx::Error::PoolTimedOut));
        assert!(!is_outage(&sqlx::Error::RowNotFound));
        assert!(!is_outage(&sqlx::Error::ColumnNotFound("x".into())));
        let append = AppendError::Database(sqlx::Error::PoolTimedOut);
        assert!(caused_by_outage(&append));
        let wrapped = anyhow::Error::new(append).context("committing");
        assert!(caused_by_outage(wrapped.as_ref()));
        assert!(!caused_by_outage(
            anyhow::anyhow!("the disk is on fire").as_ref()
        ));
    }
}
