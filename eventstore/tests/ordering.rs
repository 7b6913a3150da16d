//! Readers see events in commit order and never skip one that commits late.

mod common;

use std::time::{Duration, Instant};

use common::*;
use eventstore::{EventStore, ExpectedVersion, Position, RecordedEvent, Wakeups};
use testkit::TestNats;
use uuid::Uuid;

/// Reads everything after `checkpoint`, moving it forward like a real reader.
async fn drain(s: &Store, checkpoint: &mut Position) -> Vec<RecordedEvent> {
    let batch = s.log.read_all(*checkpoint, 1000).await.unwrap();
    if let Some(last) = batch.last() {
        *checkpoint = last.position;
    }
    batch
}

#[tokio::test]
async fn a_reader_never_skips_a_transaction_that_commits_late() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let mut checkpoint = Position::START;

    // The slow transaction takes its global position first and stays open...
    let mut slow = s.store.begin(tenant).await.unwrap();
    s.store
        .append_in(
            &mut slow,
            vec![append(
                &booking("slow"),
                ExpectedVersion::NoStream,
                vec![event("Slow", 0)],
            )],
        )
        .await
        .unwrap();
    // ...while later transactions commit.
    for i in 0..3 {
        s.store
            .append(
                tenant,
                vec![append(
                    &booking(&format!("fast-{i}")),
                    ExpectedVersion::NoStream,
                    vec![event("Fast", i)],
                )],
            )
            .await
            .unwrap();
    }
    // A reader by global position alone would now return the fast events and move past the
    // slow one's position. This reader must wait instead.
    let before = drain(&s, &mut checkpoint).await;
    assert!(
        before.is_empty(),
        "nothing is readable past an open transaction: {before:?}"
    );

    slow.commit().await.unwrap();
    let after = read_all_until(&s.log, checkpoint, 4).await;
    let types: Vec<&str> = after.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        ["Slow", "Fast", "Fast", "Fast"],
        "commit order, nothing skipped"
    );
    assert!(after.windows(2).all(|w| w[0].position < w[1].position));
    checkpoint = after[3].position;
    assert!(drain(&s, &mut checkpoint).await.is_empty());
}

#[tokio::test]
async fn readers_resume_from_a_checkpoint_in_batches() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    for i in 0..25 {
        s.store
            .append(
                tenant,
                vec![append(
                    &booking(&format!("b-{i}")),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", i)],
                )],
            )
            .await
            .unwrap();
    }
    read_all_until(&s.log, Position::START, 25).await; // past other tests' transactions
    let mut checkpoint = Position::START;
    let mut seen = Vec::new();
    loop {
        let batch = s.log.read_all(checkpoint, 10).await.unwrap();
        let Some(last) = batch.last() else { break };
        checkpoint = last.position;
        seen.extend(batch.into_iter().map(|e| e.payload["n"].as_i64().unwrap()));
    }
    assert_eq!(seen, (0..25).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_tenant_reader_sees_only_its_tenant_in_commit_order() {
    let s = store().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for i in 0..6 {
        let tenant = if i % 2 == 0 { a } else { b };
        s.store
            .append(
                tenant,
                vec![append(
                    &booking(&format!("b-{i}")),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", i)],
                )],
            )
            .await
            .unwrap();
    }
    read_all_until(&s.log, Position::START, 6).await; // past other tests' transactions
    let from_app = s.store.read_tenant(a, Position::START, 100).await.unwrap();
    let from_operator = s.log.read_tenant(a, Position::START, 100).await.unwrap();
    let ns: Vec<i64> = from_app
        .iter()
        .map(|e| e.payload["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [0, 2, 4]);
    assert_eq!(from_app, from_operator);
    assert!(from_app.iter().all(|e| e.tenant_id == a));
}

#[tokio::test]
async fn a_commit_wakes_a_waiting_reader_without_polling() {
    let s = store().await;
    let nats = TestNats::new().await;
    let wakeups = Wakeups::new(nats.client.clone(), &nats.ns);
    let store: EventStore = s.store.clone().with_wakeups(wakeups.clone());
    let mut listener = wakeups.listen().await;
    // Let the subscription reach the server before the commit is announced.
    nats.client.flush().await.unwrap();

    let tenant = Uuid::new_v4();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        store
            .append(
                tenant,
                vec![append(
                    &booking("b"),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", 0)],
                )],
            )
            .await
            .unwrap();
    });
    let started = Instant::now();
    let woken = listener.wait(Duration::from_secs(10)).await;
    assert!(woken, "the announcement arrived");
    assert!(started.elapsed() < Duration::from_secs(5));
    writer.await.unwrap();
    assert_eq!(read_all_until(&s.log, Position::START, 1).await.len(), 1);
}
