#![allow(dead_code)] // each test binary uses a different part

use eventstore::{
    EventMetadata, EventStore, ExpectedVersion, GlobalLog, NewEvent, Position, RecordedEvent,
    StreamAppend, StreamRef,
};
use serde_json::json;
use testkit::TestDb;
use uuid::Uuid;

pub struct Store {
    pub db: TestDb,
    pub store: EventStore,
    pub log: GlobalLog,
}

pub async fn store() -> Store {
    let db = TestDb::new().await;
    let store = EventStore::new(db.app_pool().await);
    let log = GlobalLog::new(db.operator_pool().await);
    Store { db, store, log }
}

pub fn event(event_type: &str, n: i64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: event_type.to_owned(),
        schema_version: 1,
        payload: json!({ "n": n }),
        metadata: EventMetadata {
            actor: Some("system:test".into()),
            correlation_id: Some(Uuid::new_v4()),
            causation_id: None,
            request_id: Some("req-1".into()),
            traceparent: None,
        },
    }
}

pub fn append(
    stream: &StreamRef,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> StreamAppend {
    StreamAppend {
        stream: stream.clone(),
        expected,
        events,
    }
}

pub fn booking(id: &str) -> StreamRef {
    StreamRef::new("booking", id)
}

/// Polls `check` until it holds or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Reads the log after `after` the way a real reader does, until `count` events have arrived.
///
/// Readers only see transactions older than the cluster's oldest running one, and other tests
/// (creating databases, holding transactions open) run in the same cluster: a read straight
/// after a commit may legitimately come back short. It never comes back out of order.
pub async fn read_all_until(
    log: &GlobalLog,
    mut after: Position,
    count: usize,
) -> Vec<RecordedEvent> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut events = Vec::new();
    while events.len() < count {
        let batch = log.read_all(after, 1000).await.unwrap();
        if let Some(last) = batch.last() {
            after = last.position;
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "only {} of {count} events readable",
                events.len()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        events.extend(batch);
    }
    events
}
