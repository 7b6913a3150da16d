//! Appending: optimistic concurrency, atomic multi-stream appends, idempotency, reads back.

mod common;

use std::sync::Arc;

use common::*;
use eventstore::{AppendError, ExpectedVersion, Position, StreamRef, Upcasters};
use serde_json::json;
use uuid::Uuid;

#[tokio::test]
async fn concurrent_appends_at_the_same_expected_version_let_exactly_one_win() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = booking("b-1");
    s.store
        .append(
            tenant,
            vec![append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event("Requested", 0)],
            )],
        )
        .await
        .unwrap();

    let store = Arc::new(s.store.clone());
    let racers: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                store
                    .append(
                        tenant,
                        vec![append(
                            &stream,
                            ExpectedVersion::Exact(1),
                            vec![event("Confirmed", i)],
                        )],
                    )
                    .await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(outcome) => {
                won += 1;
                assert_eq!(outcome.streams[0].last_version, 2);
            }
            Err(AppendError::Conflict {
                stream: s,
                expected,
                actual,
            }) => {
                assert_eq!(s, stream);
                assert_eq!(expected, ExpectedVersion::Exact(1));
                assert_eq!(actual, 2);
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(won, 1, "exactly one writer wins");
    assert_eq!(
        s.store.read_stream(tenant, &stream, 1).await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn expectations_that_do_not_hold_write_nothing_and_name_the_actual_version() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = booking("b-1");
    s.store
        .append(
            tenant,
            vec![append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event("A", 0)],
            )],
        )
        .await
        .unwrap();

    let again = s
        .store
        .append(
            tenant,
            vec![append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event("B", 0)],
            )],
        )
        .await;
    assert!(
        matches!(again, Err(AppendError::Conflict { actual: 1, .. })),
        "{again:?}"
    );

    // Expecting a version the stream has not reached must not leave a gap.
    let ahead = s
        .store
        .append(
            tenant,
            vec![append(
                &stream,
                ExpectedVersion::Exact(3),
                vec![event("C", 0)],
            )],
        )
        .await;
    assert!(
        matches!(ahead, Err(AppendError::Conflict { actual: 1, .. })),
        "{ahead:?}"
    );
    assert_eq!(s.store.stream_version(tenant, &stream).await.unwrap(), 1);
}

#[tokio::test]
async fn a_multi_stream_append_with_one_failed_expectation_writes_nothing() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let agenda = StreamRef::new("agenda", "room-1:2026-12-01");
    s.store
        .append(
            tenant,
            vec![append(
                &agenda,
                ExpectedVersion::NoStream,
                vec![event("Held", 0)],
            )],
        )
        .await
        .unwrap();

    let result = s
        .store
        .append(
            tenant,
            vec![
                append(
                    &booking("b-2"),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", 0)],
                ),
                append(&agenda, ExpectedVersion::NoStream, vec![event("Held", 1)]),
            ],
        )
        .await;
    assert!(
        matches!(&result, Err(AppendError::Conflict { stream, .. }) if *stream == agenda),
        "{result:?}"
    );
    assert_eq!(
        s.store
            .stream_version(tenant, &booking("b-2"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(s.store.stream_version(tenant, &agenda).await.unwrap(), 1);
}

#[tokio::test]
async fn a_multi_stream_append_commits_every_stream_in_one_transaction() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let agenda = StreamRef::new("agenda", "room-1:2026-12-01");
    let outcome = s
        .store
        .append(
            tenant,
            vec![
                append(
                    &booking("b-3"),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", 0), event("Confirmed", 1)],
                ),
                append(&agenda, ExpectedVersion::Any, vec![event("Held", 2)]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(outcome.streams.len(), 2);
    assert_eq!(
        (
            outcome.streams[0].first_version,
            outcome.streams[0].last_version
        ),
        (1, 2)
    );
    assert_eq!(
        (
            outcome.streams[1].first_version,
            outcome.streams[1].last_version
        ),
        (1, 1)
    );

    let all = read_all_until(&s.log, Position::START, 3).await;
    assert_eq!(all.len(), 3);
    assert!(
        all.iter()
            .all(|e| e.position.transaction_id == all[0].position.transaction_id)
    );
    assert_eq!(
        outcome.last_position, all[2].position,
        "the consistency token is the last event"
    );
}

#[tokio::test]
async fn an_idempotent_retry_writes_nothing_and_returns_the_first_outcome() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = booking("b-4");
    let command = vec![append(
        &stream,
        ExpectedVersion::NoStream,
        vec![event("Requested", 0), event("Confirmed", 1)],
    )];
    let first = s.store.append(tenant, command.clone()).await.unwrap();
    assert!(!first.replayed);

    // Other writes happen in between; the retry still recognises itself.
    s.store
        .append(
            tenant,
            vec![append(
                &stream,
                ExpectedVersion::Exact(2),
                vec![event("Cancelled", 2)],
            )],
        )
        .await
        .unwrap();
    let retry = s.store.append(tenant, command).await.unwrap();

    assert!(retry.replayed);
    assert_eq!(retry.streams, first.streams);
    assert_eq!(retry.last_position, first.last_position);
    assert_eq!(
        s.store.read_stream(tenant, &stream, 1).await.unwrap().len(),
        3
    );
}

#[tokio::test]
async fn concurrent_deliveries_of_the_same_command_write_it_once() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let command = vec![append(
        &booking("b-5"),
        ExpectedVersion::NoStream,
        vec![event("Requested", 0)],
    )];
    let deliveries: Vec<_> = (0..8)
        .map(|_| {
            let store = s.store.clone();
            let command = command.clone();
            tokio::spawn(async move { store.append(tenant, command).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for d in deliveries {
        outcomes.push(d.await.unwrap().unwrap());
    }
    assert_eq!(outcomes.iter().filter(|o| !o.replayed).count(), 1);
    assert!(
        outcomes
            .iter()
            .all(|o| o.last_position == outcomes[0].last_position)
    );
    assert_eq!(read_all_until(&s.log, Position::START, 1).await.len(), 1);
    assert_eq!(
        s.store
            .stream_version(tenant, &booking("b-5"))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn reusing_an_event_id_for_another_command_is_refused() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let reused = event("Requested", 0);
    s.store
        .append(
            tenant,
            vec![append(
                &booking("b-6"),
                ExpectedVersion::NoStream,
                vec![reused.clone()],
            )],
        )
        .await
        .unwrap();
    let result = s
        .store
        .append(
            tenant,
            vec![append(
                &booking("b-7"),
                ExpectedVersion::NoStream,
                vec![reused.clone()],
            )],
        )
        .await;
    assert!(
        matches!(result, Err(AppendError::IdempotencyMismatch { event_id }) if event_id == reused.event_id)
    );
    assert_eq!(
        s.store
            .stream_version(tenant, &booking("b-7"))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn appends_without_expectation_all_land_without_gaps_under_contention() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = StreamRef::new("conversation", "+15550001");
    let writers: Vec<_> = (0..32)
        .map(|i| {
            let store = s.store.clone();
            let stream = stream.clone();
            tokio::spawn(async move {
                store
                    .append(
                        tenant,
                        vec![append(
                            &stream,
                            ExpectedVersion::Any,
                            vec![event("MessageReceived", i)],
                        )],
                    )
                    .await
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap().unwrap();
    }
    let versions: Vec<u32> = s
        .store
        .read_stream(tenant, &stream, 1)
        .await
        .unwrap()
        .iter()
        .map(|e| e.version)
        .collect();
    assert_eq!(versions, (1..=32).collect::<Vec<_>>());
}

#[tokio::test]
async fn events_read_back_with_their_metadata_from_a_version() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = booking("b-8");
    let events = vec![
        event("Requested", 0),
        event("Confirmed", 1),
        event("Completed", 2),
    ];
    s.store
        .append(
            tenant,
            vec![append(&stream, ExpectedVersion::NoStream, events.clone())],
        )
        .await
        .unwrap();
    let read = s.store.read_stream(tenant, &stream, 2).await.unwrap();
    assert_eq!(read.len(), 2);
    assert_eq!(read[0].version, 2);
    assert_eq!(read[0].event_id, events[1].event_id);
    assert_eq!(read[0].event_type, "Confirmed");
    assert_eq!(read[0].payload, json!({ "n": 1 }));
    assert_eq!(read[0].metadata, events[1].metadata);
    assert_eq!(read[0].tenant_id, tenant);
}

#[tokio::test]
async fn stored_old_payloads_are_upcast_when_read() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = StreamRef::new("bot_config", "main");
    let mut v1 = event("ServiceAdded", 0);
    v1.payload = json!({ "name": "Haircut", "duration_minutes": 45 });
    s.store
        .append(
            tenant,
            vec![append(&stream, ExpectedVersion::NoStream, vec![v1])],
        )
        .await
        .unwrap();

    let upcasting =
        s.store
            .clone()
            .with_upcasters(Upcasters::new().register("ServiceAdded", 1, |mut p| {
                let minutes = p["duration_minutes"].take();
                p.as_object_mut().unwrap().remove("duration_minutes");
                p["duration"] = json!({ "minutes": minutes });
                p
            }));
    let read = upcasting.read_stream(tenant, &stream, 1).await.unwrap();
    assert_eq!(read[0].schema_version, 2);
    assert_eq!(
        read[0].payload,
        json!({ "name": "Haircut", "duration": { "minutes": 45 } })
    );
}

#[tokio::test]
async fn a_refused_append_inside_a_unit_of_work_leaves_it_usable() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = booking("b-9");
    s.store
        .append(
            tenant,
            vec![append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event("Requested", 0)],
            )],
        )
        .await
        .unwrap();

    let mut tx = s.store.begin(tenant).await.unwrap();
    let refused = s
        .store
        .append_in(
            &mut tx,
            vec![append(
                &stream,
                ExpectedVersion::NoStream,
                vec![event("Requested", 1)],
            )],
        )
        .await;
    assert!(matches!(refused, Err(AppendError::Conflict { .. })));
    s.store
        .append_in(
            &mut tx,
            vec![append(
                &stream,
                ExpectedVersion::Exact(1),
                vec![event("Confirmed", 2)],
            )],
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(s.store.stream_version(tenant, &stream).await.unwrap(), 2);
}

#[tokio::test]
async fn an_imported_history_keeps_its_times_and_never_lands_on_a_stream_that_exists() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    let stream = booking("imported");
    let then: chrono::DateTime<chrono::Utc> = "2026-10-24T07:03:40Z".parse().unwrap();
    let later = then + chrono::Duration::hours(3);
    s.store
        .import(
            tenant,
            &stream,
            vec![
                (event("Requested", 1), then),
                (event("Completed", 2), later),
            ],
        )
        .await
        .unwrap();
    let read = s.store.read_stream(tenant, &stream, 0).await.unwrap();
    let times: Vec<_> = read.iter().map(|e| (e.version, e.recorded_at)).collect();
    assert_eq!(times, vec![(1, then), (2, later)]);
    // Its place in the log is the import's: readers see it like any append (once older
    // transactions elsewhere in the cluster have ended).
    eventually(20, "the import in the log", || async {
        s.log.read_all(Position::START, 10).await.unwrap().len() == 2
    })
    .await;

    let again = s
        .store
        .import(tenant, &stream, vec![(event("Requested", 3), then)])
        .await;
    assert!(
        matches!(again, Err(AppendError::Conflict { actual: 2, .. })),
        "{again:?}"
    );
    assert_eq!(
        s.store.read_stream(tenant, &stream, 0).await.unwrap().len(),
        2
    );
}
