//! The relay: every committed event reaches JetStream exactly once, in commit order, across
//! relay restarts, leader changes and NATS restarts.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use common::*;
use eventstore::{ExpectedVersion, Position, RecordedEvent, Relay, RelayConfig, RelayStats};
use futures::StreamExt as _;
use nats::{Namespace, Storage, headers};
use testkit::{NatsServer, TestNats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
    stats: Arc<RelayStats>,
}

fn start_relay(s: &Store, nats: &TestNats, storage: Storage) -> Running {
    let config = RelayConfig {
        batch_size: 100,
        idle_wait: Duration::from_millis(200),
        standby_retry: Duration::from_millis(100),
        max_backoff: Duration::from_millis(500),
        storage,
        replicas: 1,
    };
    let relay = Relay::new(s.log.clone(), nats.client.clone(), nats.ns.clone(), config);
    let stats = relay.stats();
    let cancel = CancellationToken::new();
    let task = tokio::spawn(relay.run(cancel.clone()));
    Running {
        cancel,
        task,
        stats,
    }
}

/// Every message in the namespace's events stream, in stream order.
async fn stored(
    js: &jetstream::Context,
    ns: &Namespace,
) -> Vec<(String, async_nats::HeaderMap, RecordedEvent)> {
    let Ok(mut stream) = js.get_stream(ns.events_stream()).await else {
        return Vec::new();
    };
    let total = stream.info().await.unwrap().state.messages as usize;
    let consumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        let mut batch = consumer.fetch().max_messages(500).messages().await.unwrap();
        while let Some(message) = batch.next().await {
            let message = message.unwrap();
            let event: RecordedEvent = serde_json::from_slice(&message.payload).unwrap();
            out.push((
                message.subject.to_string(),
                message.headers.clone().unwrap_or_default(),
                event,
            ));
        }
    }
    out
}

/// Acks a relay has counted. The stream holds a message before its ack reaches the relay,
/// which counts acks as it awaits them after sending a whole batch: a test that saw the stream
/// reach N waits for the counters too before reading them.
fn acked(relay: &Running) -> u64 {
    relay.stats.published.load(Ordering::Relaxed) + relay.stats.duplicates.load(Ordering::Relaxed)
}

async fn stream_count(js: &jetstream::Context, ns: &Namespace) -> u64 {
    match js.get_stream(ns.events_stream()).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

/// The stream holds exactly the log: each event once, in commit order.
async fn assert_stream_equals_log(s: &Store, js: &jetstream::Context, ns: &Namespace) {
    let log = s.log.read_all(Position::START, 100_000).await.unwrap();
    let published = stored(js, ns).await;
    let ids: Vec<Uuid> = published.iter().map(|(_, _, e)| e.event_id).collect();
    let unique: HashSet<Uuid> = ids.iter().copied().collect();
    assert_eq!(unique.len(), ids.len(), "an event was published twice");
    let expected: Vec<Uuid> = log.iter().map(|e| e.event_id).collect();
    assert_eq!(ids, expected, "the stream is the log in commit order");
}

async fn append_n(s: &Store, tenant: Uuid, prefix: &str, n: usize) {
    for i in 0..n {
        s.store
            .append(
                tenant,
                vec![append(
                    &booking(&format!("{prefix}-{i}")),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", i as i64)],
                )],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn committed_events_are_published_in_commit_order_with_their_headers() {
    let s = store().await;
    let nats = TestNats::new().await;
    let js = nats.jetstream();
    let tenants = [Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4()];

    // A transaction that takes early positions but commits last.
    let mut slow = s.store.begin(tenants[0]).await.unwrap();
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
    let relay = start_relay(&s, &nats, Storage::Memory);
    for (i, tenant) in tenants.iter().cycle().take(30).enumerate() {
        s.store
            .append(
                *tenant,
                vec![append(
                    &booking(&format!("b-{i}")),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", i as i64)],
                )],
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        stream_count(&js, &nats.ns).await,
        0,
        "nothing passes an open transaction"
    );
    slow.commit().await.unwrap();

    eventually(20, "31 events published", || async {
        stream_count(&js, &nats.ns).await == 31
    })
    .await;
    assert_stream_equals_log(&s, &js, &nats.ns).await;

    let published = stored(&js, &nats.ns).await;
    let (subject, h, first) = &published[0];
    assert_eq!(first.event_type, "Slow");
    assert_eq!(
        *subject,
        nats.ns.event_subject(tenants[0], "booking", "Slow")
    );
    assert_eq!(
        h.get(headers::MSG_ID).unwrap().as_str(),
        first.event_id.to_string()
    );
    assert_eq!(
        h.get(headers::TENANT).unwrap().as_str(),
        tenants[0].to_string()
    );
    assert_eq!(h.get(headers::STREAM_TYPE).unwrap().as_str(), "booking");
    assert_eq!(h.get(headers::STREAM_ID).unwrap().as_str(), "slow");
    assert_eq!(h.get(headers::VERSION).unwrap().as_str(), "1");
    assert_eq!(h.get(headers::SCHEMA_VERSION).unwrap().as_str(), "1");
    assert_eq!(
        h.get(headers::POSITION).unwrap().as_str(),
        first.position.to_string()
    );
    // Each message expected its predecessor as the stream's last: none can follow a lost one.
    for (sequence, (_, h, _)) in published.iter().enumerate() {
        assert_eq!(
            h.get(async_nats::header::NATS_EXPECTED_LAST_SEQUENCE)
                .unwrap()
                .as_str(),
            sequence.to_string()
        );
    }

    relay.cancel.cancel();
    relay.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_relay_killed_mid_run_and_restarted_publishes_each_event_exactly_once() {
    let s = store().await;
    let nats = TestNats::new().await;
    let js = nats.jetstream();
    let tenant = Uuid::new_v4();

    let first = start_relay(&s, &nats, Storage::File);
    let writer = {
        let store = s.store.clone();
        tokio::spawn(async move {
            for i in 0..400 {
                store
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
        })
    };
    eventually(20, "the first relay published some", || async {
        stream_count(&js, &nats.ns).await >= 50
    })
    .await;
    first.task.abort(); // a crash: no graceful stop, no final checkpoint
    let _ = first.task.await;

    let second = start_relay(&s, &nats, Storage::File);
    writer.await.unwrap();
    eventually(30, "all 400 published", || async {
        stream_count(&js, &nats.ns).await == 400
    })
    .await;
    assert_stream_equals_log(&s, &js, &nats.ns).await;
    second.cancel.cancel();
    second.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_lost_checkpoint_does_not_republish_what_the_stream_already_holds() {
    let s = store().await;
    let nats = TestNats::new().await;
    let js = nats.jetstream();
    let tenant = Uuid::new_v4();
    append_n(&s, tenant, "a", 50).await;

    let first = start_relay(&s, &nats, Storage::Memory);
    eventually(20, "50 published", || async {
        stream_count(&js, &nats.ns).await == 50
    })
    .await;
    first.cancel.cancel();
    first.task.await.unwrap().unwrap();

    // As if the relay died after the acks but before its checkpoint was written.
    sqlx::query("update relay_checkpoints set transaction_id = '1'::xid8, global_position = 0")
        .execute(s.log.pool())
        .await
        .unwrap();

    let second = start_relay(&s, &nats, Storage::Memory);
    append_n(&s, tenant, "b", 10).await;
    eventually(20, "60 published", || async {
        stream_count(&js, &nats.ns).await == 60
    })
    .await;
    eventually(20, "the second relay counted its 10 acks", || async {
        acked(&second) >= 10
    })
    .await;
    // Not even a duplicate publish: the relay resumed after the stream's last message rather
    // than leaning on JetStream's de-duplication window.
    assert_eq!(second.stats.duplicates.load(Ordering::Relaxed), 0);
    assert_eq!(second.stats.published.load(Ordering::Relaxed), 10);
    assert_stream_equals_log(&s, &js, &nats.ns).await;
    second.cancel.cancel();
    second.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn only_one_relay_publishes_and_a_standby_takes_over_when_it_stops() {
    let s = store().await;
    let nats = TestNats::new().await;
    let js = nats.jetstream();
    let tenant = Uuid::new_v4();

    let a = start_relay(&s, &nats, Storage::Memory);
    let b = start_relay(&s, &nats, Storage::Memory);
    append_n(&s, tenant, "a", 100).await;
    eventually(20, "100 published", || async {
        stream_count(&js, &nats.ns).await == 100
    })
    .await;
    eventually(20, "the relays counted 100 acks", || async {
        acked(&a) + acked(&b) >= 100
    })
    .await;
    let (pa, pb) = (
        a.stats.published.load(Ordering::Relaxed),
        b.stats.published.load(Ordering::Relaxed),
    );
    assert_eq!(pa + pb, 100);
    assert!(
        pa == 0 || pb == 0,
        "one leader at a time (a: {pa}, b: {pb})"
    );

    let (leader, standby) = if pa > 0 { (a, b) } else { (b, a) };
    leader.cancel.cancel();
    leader.task.await.unwrap().unwrap();
    append_n(&s, tenant, "b", 50).await;
    eventually(20, "the standby published the rest", || async {
        stream_count(&js, &nats.ns).await == 150
    })
    .await;
    eventually(20, "the standby counted 50 acks", || async {
        acked(&standby) >= 50
    })
    .await;
    assert_eq!(standby.stats.published.load(Ordering::Relaxed), 50);
    assert_stream_equals_log(&s, &js, &nats.ns).await;
    standby.cancel.cancel();
    standby.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn appends_go_on_while_nats_is_down_and_the_relay_catches_up_after_a_restart() {
    let s = store().await;
    let mut server = NatsServer::start();
    let nats = TestNats::on(&server.url()).await;
    let js = nats.jetstream();
    let tenant = Uuid::new_v4();

    let relay = start_relay(&s, &nats, Storage::File);
    append_n(&s, tenant, "before", 100).await;
    eventually(20, "100 published", || async {
        stream_count(&js, &nats.ns).await == 100
    })
    .await;

    server.stop();
    // Commands never touch NATS: they keep succeeding.
    append_n(&s, tenant, "during", 100).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.restart();

    append_n(&s, tenant, "after", 100).await;
    eventually(60, "all 300 published", || async {
        stream_count(&js, &nats.ns).await == 300
    })
    .await;
    assert_stream_equals_log(&s, &js, &nats.ns).await;
    relay.cancel.cancel();
    relay.task.await.unwrap().unwrap();
}
