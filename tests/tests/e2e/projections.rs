//! The projector turns what the command API appends into read models: once per event, in
//! stream order whatever the delivery order, with dead letters for what keeps failing, and a
//! rebuild from the event store that equals the live result.

use std::time::Duration;

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{eventually, projector_settings, spawn_command_api, spawn_projector};
use eventstore::{
    EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamAppend,
    StreamRef,
};
use projector::projection::{Applied, Projection};
use serde_json::{Value, json};
use sqlx::PgPool;
use testkit::{TestDb, TestNats};

const WAIT: Duration = Duration::from_secs(15);

/// Rows of a read-model table for one tenant, as JSON, in key order.
async fn rows(pool: &PgPool, tenant: &str, table: &str) -> Vec<Value> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(tenant)
        .execute(&mut *tx)
        .await
        .unwrap();
    let rows: Vec<(Value,)> =
        sqlx::query_as(&format!("select to_jsonb(t) from {table} t order by 1"))
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    rows.into_iter().map(|(v,)| v).collect()
}

async fn wait_rows(
    pool: &PgPool,
    tenant: &str,
    table: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually(WAIT, || async {
        let found = rows(pool, tenant, table).await;
        done(&found).then_some(found)
    })
    .await
    .unwrap_or_else(|| panic!("{table} never reached the expected rows"))
}

#[tokio::test]
async fn commands_become_read_models_and_a_rebuild_equals_them() {
    let app = spawn_command_api().await;
    let projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("read-side").await,
        app: &app,
    };
    let service = t.configured().await;
    let (status, booked) = t.book(&service, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{booked}");
    let booking = booked["booking_id"].as_str().unwrap().to_owned();
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{booking}/cancel"),
            &[],
            Some(json!({"reason": "changed my mind"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let pool = app.db.app_pool().await;
    let tenant = t.owner.tenant_id.clone();
    let bookings = wait_rows(&pool, &tenant, "rm_bookings", |r| {
        r.len() == 1 && r[0]["status"] == "cancelled"
    })
    .await;
    assert_eq!(bookings[0]["booking_id"], booking);
    assert_eq!(bookings[0]["service_name"], "Haircut");
    assert_eq!(bookings[0]["customer_phone"], "+34600000001");
    let history = wait_rows(&pool, &tenant, "rm_booking_history", |r| r.len() >= 2).await;
    assert_eq!(history[0]["actor"], format!("user:{}", t.owner.owner_id));
    let tenants = wait_rows(&pool, &tenant, "rm_tenants", |r| r.len() == 1).await;
    assert_eq!(tenants[0]["slug"], "read-side");
    assert_eq!(tenants[0]["status"], "active");
    let services = wait_rows(&pool, &tenant, "rm_services", |r| r.len() == 1).await;
    assert_eq!(services[0]["name"], "Haircut");
    wait_rows(&pool, &tenant, "rm_bot_config", |r| {
        r.len() == 1 && r[0]["version"] == 2
    })
    .await;
    wait_rows(&pool, &tenant, "rm_users", |r| r.len() == 1).await;
    wait_rows(&pool, &tenant, "rm_agenda", |r| r.is_empty()).await;
    wait_rows(&pool, &tenant, "rm_usage", |r| {
        r.len() == 1 && r[0]["bookings_created"] == 1 && r[0]["bookings_cancelled"] == 1
    })
    .await;

    // Another tenant's rows are invisible under RLS.
    assert!(
        rows(&pool, &uuid::Uuid::new_v4().to_string(), "rm_bookings")
            .await
            .is_empty()
    );

    // A rebuild from the event store swaps in tables equal to the live ones.
    let tables = [
        "rm_tenants",
        "rm_users",
        "rm_bot_config",
        "rm_services",
        "rm_bookings",
        "rm_booking_history",
        "rm_agenda",
        "rm_usage",
        "rm_conversations",
        "rm_messages",
    ];
    let mut live = Vec::new();
    for table in tables {
        live.push(rows(&pool, &tenant, table).await);
    }
    let rebuilder = projector::rebuilder(&projector_settings(&app.db, &app.nats)).unwrap();
    let report = rebuilder
        .run(&projector::rebuild::RebuildRequest {
            projections: Projection::ALL.to_vec(),
            tenant: None,
            progress: false,
        })
        .await
        .unwrap();
    assert!(report.events >= 8, "{report:?}");
    for (table, before) in tables.iter().zip(&live) {
        assert_eq!(
            &rows(&pool, &tenant, table).await,
            before,
            "{table} after a rebuild"
        );
    }
    // One tenant, in place.
    rebuilder
        .run(&projector::rebuild::RebuildRequest {
            projections: vec![Projection::Bookings],
            tenant: Some(tenant.parse().unwrap()),
            progress: false,
        })
        .await
        .unwrap();
    assert_eq!(rows(&pool, &tenant, "rm_bookings").await, live[4]);

    // The live consumers carry on against the swapped-in tables.
    let (status, _) = t.book(&service, &slot(12), "+34600000002", None).await;
    assert_eq!(status, 201);
    wait_rows(&pool, &tenant, "rm_bookings", |r| r.len() == 2).await;
    projector.shutdown().await;
}

/// A booking stream of three events for `tenant`, appended straight to the store (the relay
/// is not running, so nothing is published).
async fn three_booking_events(store: &EventStore, tenant: uuid::Uuid) -> Vec<RecordedEvent> {
    let booking = uuid::Uuid::new_v4();
    let stream = StreamRef::new("booking", booking.to_string());
    let event = |event_type: &str, payload: Value| NewEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: event_type.into(),
        schema_version: 1,
        payload,
        metadata: EventMetadata::default(),
    };
    let requested = json!({
        "booking_id": booking, "reference": "BK-TEST", "service_id": uuid::Uuid::new_v4(),
        "service_name": "Haircut", "price": {"minor": 2500, "currency": "EUR"},
        "resource": "main",
        "appointment": {"start": "2030-01-02T10:00:00Z", "end": "2030-01-02T10:45:00Z"},
        "customer": {"phone": "+34600000009"}, "channel": "api",
    });
    store
        .append(
            tenant,
            vec![StreamAppend {
                stream: stream.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![
                    event("AppointmentRequested", requested),
                    event("AppointmentConfirmed", json!({})),
                    event("AppointmentCompleted", json!({})),
                ],
            }],
        )
        .await
        .unwrap();
    store.read_stream(tenant, &stream, 1).await.unwrap()
}

/// Publishes an event the way the relay does, under a fresh message id so that JetStream's
/// de-duplication does not hide the redelivery from the projector.
async fn publish(nats: &TestNats, event: &RecordedEvent) {
    let js = nats.jetstream();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", uuid::Uuid::new_v4().to_string().as_str());
    js.publish_with_headers(
        nats.ns.event_subject(
            event.tenant_id,
            &event.stream.stream_type,
            &event.event_type,
        ),
        headers,
        serde_json::to_vec(event).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

async fn projector_without_relay(db: &TestDb, nats: &TestNats) -> e2e_tests::ProjectorHandle {
    nats::provision_events_stream(&nats.jetstream(), &nats.ns, nats::Storage::Memory, 1)
        .await
        .unwrap();
    let mut settings = projector_settings(db, nats);
    settings.relay.enabled = false;
    spawn_projector(settings).await
}

/// The projector's runtime over the test's database and namespace, nothing consuming: the
/// test hands batches to `apply_batch` itself.
async fn runtime_without_consumers(db: &TestDb, nats: &TestNats) -> projector::consumer::Runtime {
    projector::runtime_with(
        &projector_settings(db, nats),
        db.app_pool().await,
        db.operator_pool().await,
        nats.client.clone(),
    )
    .unwrap()
}

/// Two instances share a projection's consumer: a batch may hold messages with a hole between
/// them (the ones in between in flight to the other instance). What is in the hole is read from
/// the store and applied before the message after it, so each tenant's public events are
/// numbered in the log's order, as a rebuild numbers them.
#[tokio::test]
async fn a_batch_with_a_hole_in_it_is_applied_in_the_logs_order() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let store = EventStore::new(db.app_pool().await);
    let tenant = uuid::Uuid::new_v4();
    let mut log = Vec::new();
    for _ in 0..4 {
        log.extend(three_booking_events(&store, tenant).await);
    }
    let runtime = runtime_without_consumers(&db, &nats).await;
    // As the relay would have: published once every transaction before them has ended (the
    // gap-free read sees them), which other tests' open transactions can hold back a while.
    eventually(WAIT, || async {
        let visible = runtime.log.read_all(eventstore::Position::START, 100).await;
        (visible.unwrap().len() == log.len()).then_some(())
    })
    .await
    .expect("the events are below every reader's horizon");
    // The first booking's first event, then the last booking's: the stream's 1st and 10th.
    let batch = [(1, &log[0]), (10, &log[9])];
    projector::consumer::apply_batch(Projection::Integrations, &runtime, &batch)
        .await
        .unwrap();

    let superuser = db.superuser_url_pool().await;
    let numbered: Vec<uuid::Uuid> = sqlx::query_scalar(
        "select event_id from rm_public_events where tenant_id = $1 order by seq",
    )
    .bind(tenant)
    .fetch_all(&superuser)
    .await
    .unwrap();
    let in_log_order: Vec<uuid::Uuid> = log
        .iter()
        .map(|e| e.event_id)
        .filter(|id| numbered.contains(id))
        .collect();
    assert_eq!(numbered, in_log_order, "numbered in the log's order");
    assert_eq!(
        numbered.last(),
        Some(&log[9].event_id),
        "the hole's events came first"
    );
    assert!(numbered.len() >= 4, "{numbered:?}");
}

#[tokio::test]
async fn redelivery_applies_once_and_a_gap_is_filled_from_the_store() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let store = EventStore::new(db.app_pool().await);
    let tenant = uuid::Uuid::new_v4();
    let events = three_booking_events(&store, tenant).await;
    let projector = projector_without_relay(&db, &nats).await;

    // Only the last event arrives: the first two are read from the store.
    publish(&nats, &events[2]).await;
    let pool = db.app_pool().await;
    let t = tenant.to_string();
    let bookings = wait_rows(&pool, &t, "rm_bookings", |r| r.len() == 1).await;
    assert_eq!(bookings[0]["status"], "completed");
    assert_eq!(rows(&pool, &t, "rm_booking_history").await.len(), 3);

    // Then everything, three times over, in reverse: nothing changes.
    for _ in 0..3 {
        for event in events.iter().rev() {
            publish(&nats, event).await;
        }
    }
    let stats = projector
        .stats
        .iter()
        .find(|(p, _)| *p == Projection::Bookings)
        .unwrap()
        .1
        .clone();
    eventually(WAIT, || async {
        (stats.duplicates.load(std::sync::atomic::Ordering::Relaxed) >= 9).then_some(())
    })
    .await
    .expect("the nine redeliveries were seen");
    assert_eq!(rows(&pool, &t, "rm_booking_history").await.len(), 3);
    assert_eq!(rows(&pool, &t, "rm_bookings").await, bookings);
    let usage = rows(&pool, &t, "rm_usage").await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["bookings_created"], 1, "counted once: {usage:?}");
    projector.shutdown().await;
}

/// Events the bookings projection of `projector` has applied.
fn bookings_applied(projector: &e2e_tests::ProjectorHandle) -> u64 {
    projector
        .stats
        .iter()
        .find(|(p, _)| *p == Projection::Bookings)
        .expect("the bookings projection")
        .1
        .applied
        .load(std::sync::atomic::Ordering::Relaxed)
}

/// Publishes 18 booking events of a new tenant in six rounds (so that two instances pulling
/// at once would each get some), waits until they are projected, and checks that exactly one
/// of `projectors` applied them. Each one's count of events applied.
async fn one_applies(
    store: &EventStore,
    nats: &TestNats,
    pool: &PgPool,
    projectors: [&e2e_tests::ProjectorHandle; 2],
) -> (u64, u64) {
    let tenant = uuid::Uuid::new_v4();
    for _ in 0..6 {
        for event in three_booking_events(store, tenant).await {
            publish(nats, &event).await;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    wait_rows(pool, &tenant.to_string(), "rm_booking_history", |r| {
        r.len() == 18
    })
    .await;
    let (a, b) = (
        bookings_applied(projectors[0]),
        bookings_applied(projectors[1]),
    );
    assert!(
        (a == 0) != (b == 0),
        "one instance applies, not both: {a} and {b} events"
    );
    (a, b)
}

/// Of two projector instances, one applies the projections and the other stands by (two
/// pulling from the consumer at once would each get holes to fill from the store); when the
/// first stops, the second takes over and applies what comes next.
#[tokio::test]
async fn of_two_projectors_one_applies_and_the_other_takes_over_when_it_stops() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let store = EventStore::new(db.app_pool().await);
    let pool = db.app_pool().await;
    let first = projector_without_relay(&db, &nats).await;
    let second = projector_without_relay(&db, &nats).await;

    let (a, _) = one_applies(&store, &nats, &pool, [&first, &second]).await;
    let (active, standby) = if a > 0 {
        (first, second)
    } else {
        (second, first)
    };

    active.shutdown().await;
    let later = uuid::Uuid::new_v4();
    for event in three_booking_events(&store, later).await {
        publish(&nats, &event).await;
    }
    wait_rows(&pool, &later.to_string(), "rm_booking_history", |r| {
        r.len() == 3
    })
    .await;
    assert_eq!(bookings_applied(&standby), 3, "the standby took over");
    standby.shutdown().await;
}

/// The sessions holding the projections' turn (its advisory lock).
async fn turn_holders(superuser: &PgPool) -> Vec<i32> {
    sqlx::query_scalar(
        "select pid from pg_locks
          where locktype = 'advisory' and granted and classid = $1::oid
            and database = (select oid from pg_database where datname = current_database())",
    )
    .bind(i64::from(projector::consumer::TURN_LOCK_CLASS))
    .fetch_all(superuser)
    .await
    .unwrap()
}

/// The session holding the turn ends without its process (an administrator's kill, a network
/// cut): its instance stops consuming, and the turn goes on, held by one session, so that
/// what comes next is applied.
#[tokio::test]
async fn a_turn_whose_session_ends_passes_on_and_the_projections_go_on() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let store = EventStore::new(db.app_pool().await);
    let pool = db.app_pool().await;
    let superuser = db.superuser_url_pool().await;
    let first = projector_without_relay(&db, &nats).await;
    let second = projector_without_relay(&db, &nats).await;
    let holder = eventually(WAIT, || async {
        let holders = turn_holders(&superuser).await;
        (holders.len() == 1).then(|| holders[0])
    })
    .await
    .expect("one session holds the turn");

    sqlx::query("select pg_terminate_backend($1)")
        .bind(holder)
        .execute(&superuser)
        .await
        .unwrap();
    let next = eventually(WAIT, || async {
        let holders = turn_holders(&superuser).await;
        (holders.len() == 1 && holders[0] != holder).then(|| holders[0])
    })
    .await
    .expect("another session takes the turn");
    // The instance whose session ended finds out at its next check, within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // An instance still consuming without the turn would get some of these.
    one_applies(&store, &nats, &pool, [&first, &second]).await;
    assert_eq!(
        turn_holders(&superuser).await,
        vec![next],
        "one holder still"
    );
    first.shutdown().await;
    second.shutdown().await;
}

/// A message that arrives ahead of the watermark is applied only once the events before it
/// have been read from the store. While a transaction that has not ended (here in another
/// database on the same server) holds the log's gap-free horizon before them, the store cannot
/// show them yet: the batch is refused, to come back, and the hole is never taken for empty.
/// (Taken for empty, the watermark would pass the first booking's events unapplied, and their
/// messages, arriving later, would be skipped as seen.)
#[tokio::test]
async fn a_hole_the_log_cannot_show_yet_is_waited_for_not_skipped() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let store = EventStore::new(db.app_pool().await);
    let tenant = uuid::Uuid::new_v4();
    let elsewhere = TestDb::new().await;
    let mut holding = elsewhere.superuser_url_pool().await.begin().await.unwrap();
    sqlx::query("select pg_current_xact_id()")
        .execute(&mut *holding)
        .await
        .unwrap();
    let mut log = three_booking_events(&store, tenant).await;
    log.extend(three_booking_events(&store, tenant).await);
    let runtime = runtime_without_consumers(&db, &nats).await;
    // The first booking's three messages are in flight elsewhere; the second's arrive.
    let second = [(4, &log[3]), (5, &log[4]), (6, &log[5])];
    let refused = projector::consumer::apply_batch(Projection::Bookings, &runtime, &second)
        .await
        .expect_err("the hole cannot be read yet");
    assert!(
        refused.is::<projector::consumer::NotYetReadable>(),
        "{refused:#}"
    );

    // Once it ends (and whatever else the server is running has), the hole is filled.
    holding.commit().await.unwrap();
    eventually(WAIT, || async {
        match projector::consumer::apply_batch(Projection::Bookings, &runtime, &second).await {
            Ok(_) => Some(()),
            Err(err) if err.is::<projector::consumer::NotYetReadable>() => None,
            Err(err) => panic!("{err:#}"),
        }
    })
    .await
    .expect("applied once the log shows the hole");
    let pool = db.app_pool().await;
    let t = tenant.to_string();
    let bookings = rows(&pool, &t, "rm_bookings").await;
    assert_eq!(bookings.len(), 2, "the hole's booking too: {bookings:?}");
    // The first booking's messages arrive at last: seen, applied already.
    let first = [(1, &log[0]), (2, &log[1]), (3, &log[2])];
    let late = projector::consumer::apply_batch(Projection::Bookings, &runtime, &first)
        .await
        .unwrap();
    assert_eq!(late, vec![projector::projection::Applied::Duplicate; 3]);
    assert_eq!(rows(&pool, &t, "rm_booking_history").await.len(), 6);
}

/// What [`poisoned`] set up: a database and a namespace of their own, the tenant, the event
/// its projections cannot read, the good events after it, the projector, and a subscription to
/// dead-letter announcements.
struct Poisoned {
    db: TestDb,
    nats: TestNats,
    store: EventStore,
    tenant: uuid::Uuid,
    bad: RecordedEvent,
    good: Vec<RecordedEvent>,
    projector: e2e_tests::ProjectorHandle,
    dead: async_nats::Subscriber,
}

/// For a new tenant, appends to its stream `broken` one event that cannot be read and then
/// three good booking events; starts a projector without a relay, subscribes to the dead
/// letters of `projections` (a projection's name, or `*`) and publishes the events, the bad one
/// first.
async fn poisoned(
    broken: impl FnOnce(uuid::Uuid) -> StreamRef,
    (event_type, payload): (&str, Value),
    projections: &str,
) -> Poisoned {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let store = EventStore::new(db.app_pool().await);
    let tenant = uuid::Uuid::new_v4();
    let broken = broken(tenant);
    store
        .append(
            tenant,
            vec![StreamAppend {
                stream: broken.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: event_type.into(),
                    schema_version: 1,
                    payload,
                    metadata: EventMetadata::default(),
                }],
            }],
        )
        .await
        .unwrap();
    let bad = store
        .read_stream(tenant, &broken, 1)
        .await
        .unwrap()
        .remove(0);
    let good = three_booking_events(&store, tenant).await;
    let projector = projector_without_relay(&db, &nats).await;
    let dead = nats
        .client
        .subscribe(format!("{}.deadletter.{projections}", nats.ns.prefix()))
        .await
        .unwrap();
    publish(&nats, &bad).await;
    for event in &good {
        publish(&nats, event).await;
    }
    Poisoned {
        db,
        nats,
        store,
        tenant,
        bad,
        good,
        projector,
        dead,
    }
}

#[tokio::test]
async fn an_event_that_keeps_failing_is_dead_lettered_without_holding_others_back() {
    // A payload no projection can read.
    let Poisoned {
        db,
        nats,
        tenant,
        bad,
        projector,
        mut dead,
        ..
    } = poisoned(
        |_| StreamRef::new("booking", uuid::Uuid::new_v4().to_string()),
        ("AppointmentRequested", json!({"booking_id": "not a uuid"})),
        "bookings",
    )
    .await;
    let pool = db.app_pool().await;
    wait_rows(&pool, &tenant.to_string(), "rm_bookings", |r| r.len() == 1).await;

    let announced = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut dead))
        .await
        .expect("a dead letter is announced")
        .unwrap();
    let note: Value = serde_json::from_slice(&announced.payload).unwrap();
    assert_eq!(note["event_id"], bad.event_id.to_string());
    let runtime = projector::runtime(&projector_settings(&db, &nats))
        .await
        .unwrap();
    let letters = projector::dead_letters::list(&runtime.pool, Some(Projection::Bookings))
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, bad.event_id);
    assert_eq!(letters[0].attempts, 3);
    assert!(
        letters[0].error.contains("AppointmentRequested"),
        "{}",
        letters[0].error
    );

    // A retry reads it from the store again; it still fails and stays listed.
    // (The usage projection reads booking streams too, and has its own dead letter.)
    let outcomes = projector::dead_letters::retry(&runtime, Some(Projection::Bookings), None)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes[0].result.is_err());
    assert_eq!(
        projector::dead_letters::list(&runtime.pool, Some(Projection::Bookings))
            .await
            .unwrap()[0]
            .attempts,
        4
    );
    projector.shutdown().await;
}

/// The database failing for a moment is not the event's fault: a projection whose writes fail
/// with a serialization failure, delivery after delivery (far past the three that dead-letter
/// an event it cannot read), applies the events once the database takes them again, and
/// nothing is dead-lettered.
#[tokio::test]
async fn events_the_database_fails_for_a_while_are_retried_never_dead_lettered() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let superuser = db.superuser_url_pool().await;
    let fault = e2e_tests::SerializationFailures::on(&superuser, "rm_bookings").await;
    let store = EventStore::new(db.app_pool().await);
    let tenant = uuid::Uuid::new_v4();
    let events = three_booking_events(&store, tenant).await;
    let projector = projector_without_relay(&db, &nats).await;
    for event in &events {
        publish(&nats, event).await;
    }
    let dead_letters = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from rm_dead_letters")
            .fetch_one(&superuser)
            .await
            .unwrap()
    };
    // Each delivery fails about five times (the batch, the projection's share of it, each
    // event alone): forty failures are well past the three deliveries that dead-letter.
    let failing = eventually(WAIT, || async {
        (dead_letters().await > 0 || fault.hits().await >= 40).then_some(())
    })
    .await;
    assert!(
        failing.is_some(),
        "the writes failed {} times",
        fault.hits().await
    );
    assert_eq!(
        dead_letters().await,
        0,
        "dead-lettered while the database failed"
    );

    fault.lift().await;
    let pool = db.app_pool().await;
    let booked = wait_rows(&pool, &tenant.to_string(), "rm_bookings", |r| {
        r.len() == 1 && r[0]["status"] == "completed"
    })
    .await;
    assert_eq!(booked[0]["reference"], "BK-TEST");
    assert_eq!(dead_letters().await, 0);
    projector.shutdown().await;
}

/// The projections share one consumer, but an event only one of them cannot apply holds back
/// only that one: the others apply it and go on at once, the message comes back for the one
/// that failed until it is dead-lettered there (once), and then every watermark is at the
/// log's head again and the next batch is applied to all of them together.
#[tokio::test]
async fn an_event_failing_in_one_projection_leaves_the_others_going() {
    // A tenant event only the tenants projection reads, and cannot.
    let Poisoned {
        db,
        nats,
        store,
        tenant,
        bad,
        good,
        projector,
        mut dead,
    } = poisoned(
        |tenant| StreamRef::new("tenant", tenant.to_string()),
        ("TenantOnboarded", json!({"name": 42})),
        "*",
    )
    .await;
    let pool = db.app_pool().await;
    // The bookings projection has the booking while the tenants projection is still retrying.
    wait_rows(&pool, &tenant.to_string(), "rm_bookings", |r| r.len() == 1).await;
    let superuser = db.superuser_url_pool().await;
    let Ok(Some(announced)) = tokio::time::timeout(WAIT, futures::StreamExt::next(&mut dead)).await
    else {
        let state: Vec<(String, i64, String)> = sqlx::query_as(
            "select projection, stream_sequence, global_position::text from rm_positions
             union all select 'dead:' || projection, attempts, event_type from rm_dead_letters",
        )
        .fetch_all(&superuser)
        .await
        .unwrap();
        panic!("no dead letter announced; watermarks and dead letters: {state:?}");
    };
    assert!(
        announced.subject.ends_with(".deadletter.tenants"),
        "{}",
        announced.subject
    );
    let at_head = |position: Position| {
        let superuser = superuser.clone();
        async move {
            let reached: i64 = sqlx::query_scalar(
                "select count(*) from rm_positions
                 where (transaction_id, global_position) >= ($1::text::xid8, $2)",
            )
            .bind(position.transaction_id.to_string())
            .bind(position.global_position as i64)
            .fetch_one(&superuser)
            .await
            .unwrap();
            (reached == Projection::ALL.len() as i64).then_some(())
        }
    };
    eventually(WAIT, || at_head(good[2].position))
        .await
        .expect("every projection's watermark passes the dead letter");
    let runtime = projector::runtime(&projector_settings(&db, &nats))
        .await
        .unwrap();
    let letters = projector::dead_letters::list(&runtime.pool, None)
        .await
        .unwrap();
    assert_eq!(
        letters.len(),
        1,
        "dead-lettered in the tenants projection alone"
    );
    assert_eq!(letters[0].projection, "tenants");
    assert_eq!(letters[0].event_id, bad.event_id);
    assert_eq!(letters[0].attempts, 3);

    // The next event is applied to every projection together, from one watermark.
    let next = three_booking_events(&store, tenant).await;
    for event in &next {
        publish(&nats, event).await;
    }
    wait_rows(&pool, &tenant.to_string(), "rm_bookings", |r| r.len() == 2).await;
    eventually(WAIT, || at_head(next[2].position))
        .await
        .expect("every projection applies the next events");
    let watermarks: i64 = sqlx::query_scalar(
        "select count(distinct (stream_sequence, transaction_id::text, global_position))
         from rm_positions",
    )
    .fetch_one(&superuser)
    .await
    .unwrap();
    assert_eq!(watermarks, 1, "one watermark for every projection");
    assert_eq!(
        projector::dead_letters::list(&runtime.pool, None)
            .await
            .unwrap()[0]
            .attempts,
        3
    );
    projector.shutdown().await;
}

fn spawn_projector_process(db: &TestDb, nats: &TestNats) -> tokio::process::Child {
    tokio::process::Command::new(e2e_tests::binary("projector"))
        .env("APP__HTTP__PORT", "0")
        .env("APP__DATABASE__URL", db.app_url())
        .env("APP__DATABASE__OPERATOR_URL", db.operator_url())
        .env("APP__NATS__URL", &nats.url)
        .envs(e2e_tests::nats_login_env("projector"))
        .env("APP__NATS__NAMESPACE", nats.ns.prefix())
        .env("APP__NATS__STORAGE", "memory")
        .env("APP__SENDER__ENABLED", "false")
        .env("APP__RELAY__IDLE_WAIT_MS", "100")
        .env("APP__PROJECTIONS__BATCH_SIZE", "50")
        .env("APP__LOG__FILTER", "error")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn a_projector_killed_mid_run_converges_to_what_a_rebuild_makes() {
    let app = spawn_command_api().await;
    let mut projector = spawn_projector_process(&app.db, &app.nats);
    let load = {
        let address = app.address.clone();
        let database_url = app.db.superuser_url();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tasks = tokio::task::JoinSet::new();
            for i in 0..12 {
                let client = client.clone();
                let address = address.clone();
                let database_url = database_url.clone();
                tasks.spawn(async move {
                    let slug = format!("kill-{i}");
                    let onboarded: Value = client
                        .post(format!("{address}/v1/tenants"))
                        .json(&e2e_tests::CommandApp::onboarding(&slug))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    let token = onboarded["access_token"].as_str().unwrap().to_owned();
                    e2e_tests::verify_email(
                        &client,
                        &address,
                        &database_url,
                        onboarded["tenant"]["id"].as_str().unwrap(),
                        &format!("owner@{slug}.example"),
                    )
                    .await;
                    // As a client does: a 503 (the suite's load can exhaust the pool) is sent
                    // again under the same key; anything else unsuccessful fails the test.
                    let send = |method: reqwest::Method, path: &str, body: Value| {
                        let key = uuid::Uuid::new_v4().to_string();
                        let mut request = client
                            .request(method.clone(), format!("{address}{path}"))
                            .bearer_auth(&token)
                            .header("idempotency-key", key)
                            .json(&body);
                        if method == reqwest::Method::PUT {
                            request = request.header("if-match", "\"0\"");
                        }
                        let path = path.to_owned();
                        async move {
                            for _ in 0..20 {
                                let response =
                                    request.try_clone().expect("a plain body").send().await?;
                                let status = response.status();
                                let text = response.text().await?;
                                if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                                    tokio::time::sleep(Duration::from_millis(200)).await;
                                    continue;
                                }
                                assert!(status.is_success(), "{method} {path}: {status} {text}");
                                return Ok::<_, reqwest::Error>(
                                    serde_json::from_str::<Value>(&text).unwrap_or(Value::Null),
                                );
                            }
                            panic!("{method} {path}: unavailable twenty times");
                        }
                    };
                    send(
                        reqwest::Method::PUT,
                        "/v1/bot-config",
                        e2e_tests::tenant::settings(),
                    )
                    .await
                    .unwrap();
                    let service: Value = send(
                        reqwest::Method::POST,
                        "/v1/services",
                        e2e_tests::tenant::haircut(),
                    )
                    .await
                    .unwrap();
                    let service = service["service_id"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{service}"))
                        .to_owned();
                    for hour in 8..14 {
                        let booked: Value = send(
                            reqwest::Method::POST,
                            "/v1/bookings",
                            json!({"service_id": service, "start": slot(hour),
                                "customer": {"phone": format!("+3460000{i:02}{hour:02}")}}),
                        )
                        .await
                        .unwrap();
                        if hour % 3 == 0 {
                            let id = booked["booking_id"].as_str().unwrap();
                            send(
                                reqwest::Method::POST,
                                &format!("/v1/bookings/{id}/cancel"),
                                json!({}),
                            )
                            .await
                            .unwrap();
                        }
                    }
                });
            }
            // A request that failed fails the test, with what the API answered.
            while let Some(done) = tasks.join_next().await {
                done.unwrap();
            }
        })
    };
    // SIGKILL twice while the load runs: no clean shutdown, batches cut anywhere.
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        projector.start_kill().unwrap();
        projector.wait().await.unwrap();
        projector = spawn_projector_process(&app.db, &app.nats);
    }
    load.await.unwrap();

    // Caught up: every projection has passed the last event.
    let superuser = app.db.superuser_url_pool().await;
    e2e_tests::wait_for_projections(&superuser).await;
    let live = e2e_tests::read_models(&superuser).await;
    assert!(
        live.iter()
            .any(|(t, rows)| t == "rm_bookings" && rows.len() == 72),
        "{:?}",
        live.iter().map(|(t, r)| (t, r.len())).collect::<Vec<_>>()
    );

    let rebuilder = projector::rebuilder(&projector_settings(&app.db, &app.nats)).unwrap();
    rebuilder
        .run(&projector::rebuild::RebuildRequest {
            projections: Projection::ALL.to_vec(),
            tenant: None,
            progress: false,
        })
        .await
        .unwrap();
    let rebuilt = e2e_tests::read_models(&superuser).await;
    for ((table, before), (_, after)) in live.iter().zip(&rebuilt) {
        assert_eq!(
            before, after,
            "{table}: the live model differs from a rebuild"
        );
    }
    projector.start_kill().unwrap();
}

/// A rebuild reads the log tenant by tenant while appends go on: an event committed after the
/// point its catch-up starts from may be read twice (in its tenant's pass and in the catch-up)
/// and one committed during the pass after its tenant was read only in the catch-up. What it
/// swaps in, carried on by the live consumers, equals a rebuild of the quiet log.
#[tokio::test]
async fn a_rebuild_while_events_arrive_loses_and_doubles_nothing() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let superuser = db.superuser_url_pool().await;
    let mut rows = e2e_tests::backlog::history(6_000, 40, 0);
    let later = rows.split_off(3_000);
    e2e_tests::backlog::load(&superuser, rows).await;
    // The relay and the projections alone: nothing else appends (the sender would record its
    // sends of the bot's replies at any time), so once they catch up, the log is still.
    let mut settings = projector_settings(&db, &nats);
    settings.sender.enabled = false;
    settings.billing_clock.enabled = false;
    settings.conversation_clock.enabled = false;
    settings.notifier.enabled = false;
    settings.webhooks.enabled = false;
    settings.stripe.enabled = false;
    let projector = spawn_projector(settings).await;
    // Below every reader's horizon (the suite's open transactions can hold it back a while),
    // so that the rebuild has them all to read.
    e2e_tests::wait_for_projections(&superuser).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (started, mut appending) = tokio::sync::oneshot::channel();
    let appends = {
        let (superuser, stop) = (superuser.clone(), stop.clone());
        tokio::spawn(async move {
            let mut started = Some(started);
            for chunk in later.chunks(30) {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                e2e_tests::backlog::load(&superuser, chunk.to_vec()).await;
                if let Some(started) = started.take() {
                    let _ = started.send(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    (&mut appending).await.expect("the first appends landed");

    let mut rebuilder = projector::rebuilder(&projector_settings(&db, &nats)).unwrap();
    // Pages of 40: each tenant's history (75 to 150 events) spans several, and each
    // transaction holds the end of one tenant's and the start of the next's.
    rebuilder.page = 40;
    let all = projector::rebuild::RebuildRequest {
        projections: Projection::ALL.to_vec(),
        tenant: None,
        progress: false,
    };
    let report = rebuilder.run(&all).await.unwrap();
    assert!(report.events >= 3_000, "{report:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    appends.await.unwrap();

    e2e_tests::wait_for_projections(&superuser).await;
    let live = e2e_tests::read_models(&superuser).await;
    rebuilder.run(&all).await.unwrap();
    let rebuilt = e2e_tests::read_models(&superuser).await;
    for ((table, before), (_, after)) in live.iter().zip(&rebuilt) {
        assert_eq!(
            before.len(),
            after.len(),
            "{table}: rows after a rebuild amid appends and after a quiet one"
        );
        assert_eq!(
            before, after,
            "{table}: a rebuild amid appends, carried on live"
        );
    }
    assert!(
        live.iter()
            .any(|(t, rows)| t == "rm_messages" && !rows.is_empty()),
        "the log reached the read models"
    );
    projector.shutdown().await;
}

/// Creates `projections`' shadow tables, anew, with every index and key, as a rebuild's
/// catch-up finds them (its first pass writes before the deferred ones are built).
pub(crate) async fn create_shadows(db: &TestDb, projections: &[Projection]) {
    for step in [
        "select rm_create_shadows($1)",
        "select rm_index_shadows($1)",
    ] {
        shadows_step(db, step, projections).await;
    }
}

/// Runs one of the rebuild's shadow functions (`select rm_..._shadows($1)`), as the operator,
/// for each of `projections`.
pub(crate) async fn shadows_step(db: &TestDb, step: &str, projections: &[Projection]) {
    let operator = db.operator_pool().await;
    for projection in projections {
        sqlx::query(step)
            .bind(projection.name())
            .execute(&operator)
            .await
            .unwrap();
    }
}

/// Applies each batch to `projections` in a transaction of its own, into the shadows when
/// `shadows` (else the live tables); every event of a batch has an outcome in each.
async fn apply_batches(
    db: &TestDb,
    store: &EventStore,
    batches: &[Vec<&RecordedEvent>],
    projections: &[Projection],
    shadows: bool,
) {
    let app = db.app_pool().await;
    for batch in batches {
        let mut tx = app.begin().await.unwrap();
        if shadows {
            sqlx::query("set local search_path to rebuild, public")
                .execute(&mut *tx)
                .await
                .unwrap();
        }
        for projection in projections {
            let outcomes = projector::consumer::apply_events(*projection, store, &mut tx, batch)
                .await
                .unwrap();
            assert_eq!(outcomes.len(), batch.len());
        }
        tx.commit().await.unwrap();
    }
}

/// Each event a batch of its own.
fn one_by_one(events: &[RecordedEvent]) -> Vec<Vec<&RecordedEvent>> {
    events.iter().map(|e| vec![e]).collect()
}

/// Asserts that every read-model table holds the same rows live and in the rebuild's shadows;
/// returns how many rows were compared.
async fn same_rows_live_and_in_the_shadows(superuser: &PgPool) -> usize {
    let tables: Vec<String> = sqlx::query_scalar("select table_name from rm_tables order by 1")
        .fetch_all(superuser)
        .await
        .unwrap();
    let mut compared = 0;
    for table in tables {
        let read = |schema: &'static str| {
            let table = table.clone();
            async move {
                sqlx::query_scalar::<_, Value>(&format!(
                    "select to_jsonb(t) from {schema}.{table} t order by 1"
                ))
                .fetch_all(superuser)
                .await
                .unwrap()
            }
        };
        let (live, shadow) = (read("public").await, read("rebuild").await);
        assert_eq!(live, shadow, "{table}");
        compared += live.len();
    }
    compared
}

/// A batch is applied a tenant at a time, each tenant's events written together (one claim of
/// its streams' versions, one statement per table where the projection folds them). Whatever
/// the batch holds (several tenants interleaved, several streams each, messages delivered
/// twice, batches of any size), the rows are those of applying each event by itself.
#[tokio::test]
async fn a_batch_applied_together_equals_its_events_applied_one_at_a_time() {
    let db = TestDb::new().await;
    let superuser = db.superuser_url_pool().await;
    // Three tenants' booking lives and conversation turns, interleaved: 600 events.
    e2e_tests::backlog::load(&superuser, e2e_tests::backlog::history(600, 3, 0)).await;
    let store = EventStore::new(db.app_pool().await);
    let events = read_back(&db, 600).await;
    create_shadows(&db, &Projection::ALL).await;

    // One at a time, into the live tables.
    apply_batches(&db, &store, &one_by_one(&events), &Projection::ALL, false).await;
    // Together, into the shadows: batches of 1, 2, 3, ... events, each followed by a
    // redelivery of an earlier event, then the whole log again in one batch.
    let mut batches: Vec<Vec<&RecordedEvent>> = Vec::new();
    let mut at = 0;
    while at < events.len() {
        let end = (at + batches.len() + 1).min(events.len());
        let mut batch: Vec<&RecordedEvent> = events[at..end].iter().collect();
        batch.push(&events[at / 2]);
        batches.push(batch);
        at = end;
    }
    batches.push(events.iter().collect());
    apply_batches(&db, &store, &batches, &Projection::ALL, true).await;

    let compared = same_rows_live_and_in_the_shadows(&superuser).await;
    assert!(compared > 1000, "{compared} rows compared");
}

/// A batch of many tenants is applied in shares of whole tenants, each on its own connection
/// and committed by itself, the watermarks saved once every share has committed. When one share
/// fails, the others' work stays and the watermarks do not move; when the batch comes back, what
/// they applied is seen as duplicates, and the rows are those of applying each event by itself.
#[tokio::test]
async fn a_batch_applied_in_shares_applies_each_event_once_even_when_a_share_fails() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let superuser = db.superuser_url_pool().await;
    // Twelve tenants' booking lives and conversation turns, interleaved: 600 events, four
    // shares of three tenants.
    e2e_tests::backlog::load(&superuser, e2e_tests::backlog::history(600, 12, 0)).await;
    let runtime = runtime_without_consumers(&db, &nats).await;
    assert_eq!(runtime.config.parallelism, 4);
    let events = read_back(&db, 600).await;
    let bad_at = events
        .iter()
        .position(|e| e.event_type == "AppointmentRequested")
        .unwrap();
    let bad_tenant = events[bad_at].tenant_id;
    let mut bad = events[bad_at].clone();
    bad.payload = json!({"booking_id": "not a uuid"});
    let deliveries = |poisoned: bool| -> Vec<(u64, &RecordedEvent)> {
        events
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64 + 1, if poisoned && i == bad_at { &bad } else { e }))
            .collect()
    };
    let count = |sql: &'static str| {
        let superuser = superuser.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .bind(bad_tenant)
                .fetch_one(&superuser)
                .await
                .unwrap()
        }
    };

    // One share fails on the event it cannot read; the other three commit.
    let failed =
        projector::consumer::apply_batch_together(&runtime, &Projection::ALL, &deliveries(true))
            .await
            .expect_err("the poisoned share fails");
    assert!(
        format!("{failed:#}").contains("AppointmentRequested"),
        "{failed:#}"
    );
    assert_eq!(
        count("select count(*) from rm_positions where stream_sequence > 0 or $1 is null").await,
        0,
        "no watermark moved"
    );
    assert_eq!(
        count("select count(*) from rm_usage where tenant_id = $1").await,
        0,
        "the failed share wrote nothing"
    );
    let committed =
        count("select count(distinct tenant_id) from rm_usage where tenant_id <> $1").await;
    assert!(
        (1..=11).contains(&committed),
        "the other shares' tenants, and only theirs, are applied: {committed}"
    );

    // The batch comes back as it is: the committed shares' events are duplicates.
    let outcomes =
        projector::consumer::apply_batch_together(&runtime, &Projection::ALL, &deliveries(false))
            .await
            .unwrap()
            .expect("the batch follows the watermarks");
    let bookings = &outcomes[Projection::ALL
        .iter()
        .position(|p| *p == Projection::Bookings)
        .unwrap()];
    let duplicates = bookings
        .iter()
        .filter(|o| **o == Applied::Duplicate)
        .count();
    let applied = bookings.iter().filter(|o| **o == Applied::Applied).count();
    assert!(
        duplicates > 0 && applied > 0,
        "{duplicates} duplicates, {applied} applied"
    );
    assert_eq!(
        count("select count(*) from rm_positions where stream_sequence = 600 and $1 is not null")
            .await,
        Projection::ALL.len() as i64
    );

    // The same events one at a time, into the shadows: the same rows.
    create_shadows(&db, &Projection::ALL).await;
    apply_batches(
        &db,
        &runtime.store,
        &one_by_one(&events),
        &Projection::ALL,
        true,
    )
    .await;
    let compared = same_rows_live_and_in_the_shadows(&superuser).await;
    assert!(compared > 1000, "{compared} rows compared");
}

/// A booking requested in a batch has its row folded from its events in memory and written in
/// one statement; one requested earlier is updated event by event. Every kind of booking event,
/// in batches that cut the bookings' lives anywhere, leaves the rows of applying each event by
/// itself. Two businesses live the same lives (the same ids, references, phones) side by side,
/// so a batch folds both at once and must keep them apart.
#[tokio::test]
async fn bookings_folded_in_a_batch_equal_their_events_applied_one_at_a_time() {
    let alone = folded_equal_one_at_a_time(
        side_by_side(e2e_tests::backlog::booking_lives),
        Projection::Bookings,
        &[
            ("rm_bookings", "tenant_id, reference"),
            ("rm_booking_history", "1"),
        ],
    )
    .await;
    assert_eq!(alone[0].len(), 8);
    assert!(
        alone[0].iter().any(|r| r["arrived_at"].is_string()
            && r["attendance_confirmed_at"].is_string()
            && r["status"] == "no_show"),
        "{:?}",
        alone[0]
    );
}

/// The bot's state after a message is folded into that message's inbox row, and what became of
/// a reply (sent, failed, delivered, read) into the reply's row, each written with the others
/// in one statement; a state or a status with no row of the batch updates its row by itself.
/// Through a hand-off to a person and back, in batches that cut the conversations anywhere, the
/// rows equal those of applying each event by itself. Two businesses live the same lives (the
/// same phones, subjects, message and Meta ids) side by side, so a batch folds both at once and
/// must keep them apart.
#[tokio::test]
async fn conversations_folded_in_a_batch_equal_their_events_applied_one_at_a_time() {
    let alone = folded_equal_one_at_a_time(
        side_by_side(e2e_tests::backlog::conversation_lives),
        Projection::Conversations,
        &[
            ("rm_conversations", "tenant_id, customer_phone"),
            ("rm_messages", "tenant_id, customer_phone, version"),
        ],
    )
    .await;
    assert_eq!(alone[0].len(), 6);
    assert!(
        alone[0]
            .iter()
            .all(|r| r["handed_off"] == true && r["bot_state"]["step"] == "handed_off"),
        "{:?}",
        alone[0]
    );
    let statuses: Vec<&str> = alone[1]
        .iter()
        .filter_map(|m| m["status"].as_str())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "read").count()
            + statuses.iter().filter(|s| **s == "failed").count()
            + statuses.iter().filter(|s| **s == "delivered").count(),
        18,
        "{statuses:?}"
    );
}

/// Each tenant's public events are numbered 1, 2, ... in its own order, whichever batches its
/// events come in and whoever else's are in them: two businesses' bookings and conversations
/// side by side, in batches of every size, are numbered as one event at a time numbers them.
#[tokio::test]
async fn public_events_numbered_in_a_batch_equal_their_events_numbered_one_at_a_time() {
    let alone = folded_equal_one_at_a_time(
        side_by_side(|tenant| {
            let mut lives = e2e_tests::backlog::booking_lives(tenant);
            lives.extend(e2e_tests::backlog::conversation_lives(tenant));
            lives
        }),
        Projection::Integrations,
        &[
            ("rm_public_events", "tenant_id, seq"),
            ("rm_public_event_heads", "tenant_id"),
        ],
    )
    .await;
    let heads: Vec<i64> = alone[1]
        .iter()
        .map(|h| h["last_seq"].as_i64().unwrap())
        .collect();
    assert_eq!(heads.len(), 2);
    assert!(heads[0] > 10 && heads[0] == heads[1], "{heads:?}");
}

/// The same `lives` of two new tenants, one event of each in turn, the second's lives (each a
/// stream's events) in the reverse order: so that a batch holds one tenant's start of a stream
/// with the other's later events of the same stream id, which a fold keyed by the id alone
/// would mix up.
fn side_by_side(
    lives: impl Fn(uuid::Uuid) -> Vec<e2e_tests::backlog::Row>,
) -> Vec<e2e_tests::backlog::Row> {
    let first = lives(uuid::Uuid::new_v4());
    let second = lives(uuid::Uuid::new_v4());
    let mut streams: Vec<&[e2e_tests::backlog::Row]> =
        second.chunk_by(|a, b| a.stream_id == b.stream_id).collect();
    streams.reverse();
    let second: Vec<e2e_tests::backlog::Row> = streams.concat();
    first
        .into_iter()
        .zip(second)
        .flat_map(|(a, b)| [a, b])
        .collect()
}

/// Writes `lives` to the log and applies them to `projection` one event at a time
/// into the live tables; then, into fresh shadows each time, in batches of every size from the
/// whole log down to one event, each time comparing the rows of `tables` (each `(table, order)`)
/// with the live ones. Returns the live rows, table by table.
async fn folded_equal_one_at_a_time(
    lives: Vec<e2e_tests::backlog::Row>,
    projection: Projection,
    tables: &[(&str, &str)],
) -> Vec<Vec<Value>> {
    let db = TestDb::new().await;
    let superuser = db.superuser_url_pool().await;
    let total = lives.len();
    e2e_tests::backlog::load(&superuser, lives).await;
    let events = read_back(&db, total).await;
    let store = EventStore::new(db.app_pool().await);
    let rows = |schema: &'static str| {
        let superuser = superuser.clone();
        async move {
            let mut rows = Vec::with_capacity(tables.len());
            for (table, order) in tables {
                rows.push(
                    sqlx::query_scalar::<_, Value>(&format!(
                        "select to_jsonb(t) from {schema}.{table} t order by {order}"
                    ))
                    .fetch_all(&superuser)
                    .await
                    .unwrap(),
                );
            }
            rows
        }
    };
    apply_batches(&db, &store, &one_by_one(&events), &[projection], false).await;
    let alone = rows("public").await;
    for size in (1..=total).rev() {
        create_shadows(&db, &[projection]).await;
        let batches: Vec<Vec<&RecordedEvent>> =
            events.chunks(size).map(|b| b.iter().collect()).collect();
        apply_batches(&db, &store, &batches, &[projection], true).await;
        assert_eq!(rows("rebuild").await, alone, "batches of {size}");
    }
    alone
}

/// The log's first `total` events, once they are below every reader's horizon.
async fn read_back(db: &TestDb, total: usize) -> Vec<RecordedEvent> {
    let log = eventstore::GlobalLog::new(db.operator_pool().await);
    eventually(WAIT, || async {
        let events = log
            .read_all(eventstore::Position::START, total + 1)
            .await
            .unwrap();
        (events.len() == total).then_some(events)
    })
    .await
    .expect("the events are below every reader's horizon")
}
