//! The analytics consumer and the analytics reads: a business sees what became of its bookings,
//! its revenue, its conversations and its messages, over its own days, and nothing of anyone
//! else's; each event counts once, whatever JetStream redelivers or delivers late.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::booking::{BookingEvent, Channel, Customer, Party};
use domain::bot::message::Inbound;
use domain::conversation::ConversationEvent;
use domain::event::{DomainEvent, encode};
use domain::ids::{BookingId, ResourceId, ServiceId};
use domain::values::{Money, PhoneNumber};
use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    analytics_settings, eventually, operator_token, projector_settings, query_api_settings,
    spawn_analytics, spawn_command_api, spawn_projector, spawn_query_api,
};
use eventstore::{EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamAppend, StreamRef};
use serde_json::{Value, json};
use uuid::Uuid;

fn new_event<E: DomainEvent>(event: &E) -> NewEvent {
    let encoded = encode(event);
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: encoded.event_type.to_owned(),
        schema_version: encoded.schema_version,
        payload: encoded.payload,
        metadata: EventMetadata::default(),
    }
}

/// Appends events to a new stream of `tenant`, as the use cases would have.
async fn append_new<E: DomainEvent>(store: &EventStore, tenant: Uuid, id: &str, events: &[E]) {
    store
        .append(
            tenant,
            vec![StreamAppend {
                stream: StreamRef::new(E::STREAM_TYPE, id),
                expected: ExpectedVersion::NoStream,
                events: events.iter().map(new_event).collect(),
            }],
        )
        .await
        .expect("the history is appended");
}

/// A booking that took place (or not) before today: its whole history, as the log has it.
async fn past_booking(
    store: &EventStore,
    tenant: Uuid,
    service: Uuid,
    start: DateTime<Utc>,
    phone: &str,
    outcome: BookingEvent,
) {
    let id = BookingId::from_uuid(Uuid::new_v4());
    let requested = BookingEvent::AppointmentRequested {
        booking_id: id,
        reference: "PAST".into(),
        service_id: ServiceId::from_uuid(service),
        service_name: "Haircut".into(),
        price: Money::parse(2500, "EUR").unwrap(),
        resource: ResourceId::parse("default").unwrap(),
        appointment: domain::agenda::Interval::new(start, start + chrono::Duration::minutes(45))
            .unwrap(),
        customer: Customer {
            phone: PhoneNumber::parse(phone).unwrap(),
            name: Some("Eva".into()),
        },
        channel: Channel::WhatsApp,
    };
    append_new(
        store,
        tenant,
        &id.to_string(),
        &[requested, BookingEvent::AppointmentConfirmed, outcome],
    )
    .await;
}

/// A UTC day from today. The tests' tenants are in Europe/Madrid, one or two hours ahead: the
/// appointments are at 10:00 to 14:00 UTC, the same day in both, and ranges are wide enough
/// that Madrid's today (UTC's or the next) is inside.
fn today_plus(days: i64) -> String {
    (Utc::now() + chrono::Duration::days(days))
        .date_naive()
        .to_string()
}

#[tokio::test]
async fn a_business_sees_what_became_of_its_bookings_and_no_one_elses() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let store = EventStore::new(app.db.app_pool().await);

    let salon = Tenant {
        owner: app.onboard("insight-salon").await,
        app: &app,
    };
    let other = Tenant {
        owner: app.onboard("insight-other").await,
        app: &app,
    };
    let service = salon.configured().await;
    let other_service = other.configured().await;
    let tenant: Uuid = salon.owner.tenant_id.parse().unwrap();

    // Three bookings through the API the day after tomorrow; the business cancels one.
    let mut ids = Vec::new();
    for (i, hour) in [10, 12, 14].into_iter().enumerate() {
        let (status, body) = salon
            .book(&service, &slot(hour), &format!("+3460000010{i}"), None)
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["booking_id"].as_str().unwrap().to_owned());
    }
    let (status, _, _) = salon
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{}/cancel", ids[0]),
            &[],
            Some(json!({"reason": "closed for a course"})),
        )
        .await;
    assert_eq!(status, 200);
    // Yesterday at 10:00 and 11:00 UTC (the same day in Madrid): one customer came, one did
    // not. The first of them has booked again.
    let yesterday = (Utc::now() - chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    let service_id: Uuid = service.parse().unwrap();
    past_booking(
        &store,
        tenant,
        service_id,
        yesterday,
        "+34600000101",
        BookingEvent::AppointmentCompleted,
    )
    .await;
    past_booking(
        &store,
        tenant,
        service_id,
        yesterday + chrono::Duration::hours(1),
        "+34600000199",
        BookingEvent::AppointmentMarkedNoShow,
    )
    .await;
    // The other business books once.
    let (status, body) = other
        .book(&other_service, &slot(10), "+34600000300", None)
        .await;
    assert_eq!(status, 201, "{body}");
    let token = body["consistency_token"].as_str().unwrap().to_owned();

    let range = format!("from={}&to={}", today_plus(-3), today_plus(3));
    let owner = &salon.owner.access_token;
    let (status, overview) = query
        .get(
            &format!("/v1/analytics/overview?{range}"),
            owner,
            Some(&token),
        )
        .await;
    assert_eq!(status, 200, "{overview}");
    assert_eq!(overview["range"]["time_zone"], "Europe/Madrid");
    assert_eq!(overview["bookings_made"]["total"], 5, "{overview}");
    assert_eq!(
        overview["bookings_made"]["dashboard"], 3,
        "the owner's bookings are the business's own"
    );
    assert_eq!(overview["bookings_made"]["whatsapp"], 2);
    let a = &overview["appointments"];
    assert_eq!(
        (
            &a["total"],
            &a["booked"],
            &a["completed"],
            &a["no_show"],
            &a["cancelled"]
        ),
        (&json!(5), &json!(2), &json!(1), &json!(1), &json!(1)),
        "{a}"
    );
    assert_eq!(a["cancelled_by_business"], 1);
    assert_eq!(a["cancelled_by_customer"], 0);
    assert_eq!(a["cancelled_late"], 0, "two days ahead is not late");
    assert_eq!(a["cancellation_rate"], 0.2);
    assert_eq!(a["no_show_rate"], 0.5);
    assert_eq!(
        overview["revenue"],
        json!([{"currency": "EUR", "expected_minor": 10000, "realised_minor": 2500}]),
        "expected: every appointment not cancelled; realised: the one that took place"
    );
    assert_eq!(
        overview["customers"]["total"], 4,
        "{}",
        overview["customers"]
    );
    assert_eq!(
        overview["customers"]["returning"], 1,
        "+34600000101 came yesterday and booked again"
    );
    // Open 08:00-20:00 every day, no staff: 7 days of 12 hours on offer, 4 x 45 minutes taken.
    assert_eq!(
        overview["utilisation"],
        json!({"booked_minutes": 180, "open_minutes": 7 * 12 * 60, "share": 180.0 / 5040.0}),
    );
    assert_eq!(overview["by_service"].as_array().unwrap().len(), 1);
    assert_eq!(overview["by_service"][0]["name"], "Haircut");
    assert_eq!(overview["by_service"][0]["appointments"], 5);
    assert_eq!(
        overview["by_service"][0]["booked_minutes"],
        4 * 45,
        "cancelled minutes are free again"
    );

    // Day by day: yesterday's two, the day after tomorrow's three.
    let (status, series) = query
        .get(&format!("/v1/analytics/series?{range}"), owner, None)
        .await;
    assert_eq!(status, 200, "{series}");
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 7, "every day of the range, empty ones too");
    let at = |day: String| -> &Value {
        points
            .iter()
            .find(|p| p["start"] == day.as_str())
            .expect("the day")
    };
    assert_eq!(at(today_plus(-1))["appointments"], 2);
    assert_eq!(at(today_plus(-1))["completed"], 1);
    assert_eq!(at(today_plus(2))["appointments"], 3);
    assert_eq!(at(today_plus(2))["cancelled"], 1);
    let made: i64 = points
        .iter()
        .map(|p| p["bookings_made"].as_i64().unwrap())
        .sum();
    assert_eq!(made, 5, "all made today, whichever day today is in Madrid");
    let (status, weeks) = query
        .get(
            &format!("/v1/analytics/series?{range}&interval=week"),
            owner,
            None,
        )
        .await;
    assert_eq!(status, 200, "{weeks}");
    let total: i64 = weeks["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["appointments"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 5);

    // When: the day after tomorrow's 10:00 UTC is cancelled; 12:00 and 14:00 UTC are 13:00 and
    // 15:00 (or 14:00 and 16:00) in Madrid.
    let (status, hours) = query
        .get(&format!("/v1/analytics/busiest-hours?{range}"), owner, None)
        .await;
    assert_eq!(status, 200, "{hours}");
    let cells: i64 = hours["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["appointments"].as_i64().unwrap())
        .sum();
    assert_eq!(
        cells, 4,
        "cancelled appointments are not busy hours: {hours}"
    );

    // The other business sees its one booking only.
    let (_, theirs) = query
        .get(
            &format!("/v1/analytics/overview?{range}"),
            &other.owner.access_token,
            None,
        )
        .await;
    assert_eq!(theirs["bookings_made"]["total"], 1, "{theirs}");
    assert_eq!(theirs["appointments"]["total"], 1);

    // The operator sees the platform.
    let (status, platform) = query
        .get(
            &format!("/v1/operator/analytics?{range}"),
            &operator_token(),
            None,
        )
        .await;
    assert_eq!(status, 200, "{platform}");
    assert_eq!(platform["tenants"], 2);
    assert_eq!(platform["bookings_made"], 6);
    assert_eq!(platform["busiest"][0]["tenant_id"], salon.owner.tenant_id);
    assert_eq!(platform["busiest"][0]["bookings_made"], 5);
    // A tenant's token is not an operator's.
    let (status, _) = query.get("/v1/operator/analytics", owner, None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_bad_range_is_refused_naming_the_parameter_and_staff_cannot_read_revenue() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let owner = app.onboard("insight-ranges").await;
    let token = &owner.access_token;

    for (path, field) in [
        (
            "/v1/analytics/overview?from=2026-12-10&to=2026-12-01",
            "from",
        ),
        ("/v1/analytics/overview?from=2025-01-01&to=2026-12-01", "to"),
        ("/v1/analytics/overview?from=-2026-12-10", "from"),
        ("/v1/analytics/series?interval=hour", "interval"),
        ("/v1/analytics/busiest-hours?to=2026-13-01", "to"),
    ] {
        let (status, problem) = query.get(path, token, None).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }

    // With no range: the last 30 days, today included.
    let (status, overview) = query.get("/v1/analytics/overview", token, None).await;
    assert_eq!(status, 200, "{overview}");
    let (from, to) = (
        overview["range"]["from"].as_str().unwrap(),
        overview["range"]["to"].as_str().unwrap(),
    );
    let days =
        to.parse::<chrono::NaiveDate>().unwrap() - from.parse::<chrono::NaiveDate>().unwrap();
    assert_eq!(days.num_days(), 29);
    assert_eq!(overview["appointments"]["total"], 0);
    assert_eq!(overview["bot"]["first_reply_p50_ms"], Value::Null);
    assert_eq!(
        overview["utilisation"],
        json!({"booked_minutes": 0, "open_minutes": 0, "share": null}),
        "no hours configured yet"
    );

    let tenant: Uuid = owner.tenant_id.parse().unwrap();
    let superuser = sqlx::PgPool::connect(&app.db.superuser_url())
        .await
        .unwrap();
    let staff = e2e_tests::member_token(&superuser, tenant, domain::access::Role::Staff).await;
    let (status, _) = query.get("/v1/analytics/overview", &staff, None).await;
    assert_eq!(status, 403, "revenue is for owners and admins");
    let (status, _) = query.get("/v1/analytics/overview", "nonsense", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn each_event_counts_once_whatever_the_stream_redelivers_or_delivers_late() {
    let app = spawn_command_api().await;
    let mut projector = projector_settings(&app.db, &app.nats);
    projector.projections.enabled = false; // the relay alone: this test reads the facts
    let _relay = spawn_projector(projector).await;
    let store = EventStore::new(app.db.app_pool().await);
    let owner = app.onboard("insight-once").await;
    let tenant: Uuid = owner.tenant_id.parse().unwrap();

    // A conversation of three messages and two replies, and four bookings.
    let phone = "+34600000777";
    let received = |n: u32| ConversationEvent::MessageReceived {
        wamid: format!("wamid.{n}"),
        from: PhoneNumber::parse(phone).unwrap(),
        profile_name: None,
        content: Inbound::Text {
            body: format!("hello {n}"),
        },
        received_at: Utc::now(),
    };
    let replied = |n: u32| ConversationEvent::BotReplied {
        reply_id: format!("r{n}"),
        to: PhoneNumber::parse(phone).unwrap(),
        reply: domain::bot::message::Reply::text("hi"),
    };
    // Its stream is named by the customer's subject id, as the use cases name it.
    append_new(
        &store,
        tenant,
        &Uuid::new_v4().to_string(),
        &[
            received(1),
            replied(1),
            received(2),
            replied(2),
            received(3),
        ],
    )
    .await;
    for i in 0..4 {
        past_booking(
            &store,
            tenant,
            Uuid::new_v4(),
            Utc::now() - chrono::Duration::days(2),
            &format!("+3460000080{i}"),
            BookingEvent::AppointmentCancelled {
                by: Party::Customer,
                reason: None,
            },
        )
        .await;
    }
    let js = async_nats::jetstream::new(app.nats.client.clone());
    let stream_count = || async {
        match js.get_stream(app.nats.ns.events_stream()).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        }
    };
    // The relay has caught up with the log (which the command API may still be adding to).
    let superuser = sqlx::PgPool::connect(&app.db.superuser_url())
        .await
        .unwrap();
    let total = eventually(Duration::from_secs(20), || async {
        let logged: i64 = sqlx::query_scalar("select count(*) from events")
            .fetch_one(&superuser)
            .await
            .unwrap();
        let published = stream_count().await;
        (logged as u64 == published && published >= 17).then_some(published)
    })
    .await
    .expect("the relay published the history");

    // Late delivery: the durable consumer's first messages were taken (and acked) before the
    // analytics consumer ever ran, so what it is handed starts past a gap it must fill from
    // the stream.
    let consumer = nats::consume::durable_consumer(
        &js,
        &app.nats.ns,
        analytics::consumer::NAME,
        app.nats.ns.all_events(),
        &tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap()
    .unwrap();
    let mut taken = consumer.fetch().max_messages(6).messages().await.unwrap();
    use futures::StreamExt as _;
    let mut acked = 0;
    while let Some(message) = taken.next().await {
        message.unwrap().double_ack().await.unwrap();
        acked += 1;
    }
    assert_eq!(acked, 6);

    let facts = || async {
        sqlx::query_as::<_, (i64, i64, i64, i64, i64)>(
            "select (select count(*) from analytics.bookings where outcome = 'cancelled'),
                    (select coalesce(sum(inbound), 0) from analytics.messages_daily)::bigint,
                    (select coalesce(sum(outbound), 0) from analytics.messages_daily)::bigint,
                    (select coalesce(sum(messages_in), 0) from analytics.sessions)::bigint,
                    (select stream_sequence from analytics.checkpoints)",
        )
        .fetch_one(&superuser)
        .await
        .ok()
    };
    let first = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let seen = eventually(Duration::from_secs(20), || async {
        facts().await.filter(|f| f.4 as u64 >= total)
    })
    .await
    .expect("analytics reached the end of the stream");
    assert_eq!(seen.0, 4, "every booking, the early ones too");
    assert_eq!((seen.1, seen.2, seen.3), (3, 2, 3));
    assert!(first.stats.gaps_filled.load(Ordering::Relaxed) >= 1);
    first.shutdown().await;
    // Where the first consumer stopped (it may have applied later events of other streams).
    let stopped = facts().await.unwrap().4 as u64;

    // Redelivery of everything: the consumer is made anew from the stream's start.
    js.get_stream(app.nats.ns.events_stream())
        .await
        .unwrap()
        .delete_consumer(analytics::consumer::NAME)
        .await
        .unwrap();
    let second = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    eventually(Duration::from_secs(20), || async {
        (second.stats.duplicates.load(Ordering::Relaxed) >= stopped).then_some(())
    })
    .await
    .expect("the second consumer was handed the whole stream again");
    // Every message the first consumer had applied came again and was skipped; other streams
    // may have grown meanwhile (the platform's own emails), but these facts do not move.
    let end = eventually(Duration::from_secs(20), || async {
        let f = facts().await?;
        (f.4 as u64 == stream_count().await).then_some(f)
    })
    .await
    .expect("the second consumer reached the end of the stream");
    assert_eq!(
        (end.0, end.1, end.2, end.3),
        (seen.0, seen.1, seen.2, seen.3),
        "nothing counted twice"
    );
    second.shutdown().await;
}

#[tokio::test]
async fn an_event_it_cannot_read_is_dead_lettered_and_the_rest_still_counts() {
    let app = spawn_command_api().await;
    let mut projector = projector_settings(&app.db, &app.nats);
    projector.projections.enabled = false;
    let _relay = spawn_projector(projector).await;
    let running = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let store = EventStore::new(app.db.app_pool().await);
    let owner = app.onboard("insight-poison").await;
    let tenant: Uuid = owner.tenant_id.parse().unwrap();

    let cancelled = || BookingEvent::AppointmentCancelled {
        by: Party::Business,
        reason: None,
    };
    let yesterday = Utc::now() - chrono::Duration::days(1);
    past_booking(
        &store,
        tenant,
        Uuid::new_v4(),
        yesterday,
        "+34600000901",
        cancelled(),
    )
    .await;
    // A producer newer than this consumer: a schema version the catalogue does not name.
    let poison = NewEvent {
        schema_version: 7,
        ..new_event(&BookingEvent::AppointmentCompleted)
    };
    let poisoned = Uuid::new_v4();
    store
        .append(
            tenant,
            vec![StreamAppend {
                stream: StreamRef::new(BookingEvent::STREAM_TYPE, poisoned.to_string()),
                expected: ExpectedVersion::NoStream,
                events: vec![poison.clone()],
            }],
        )
        .await
        .unwrap();
    past_booking(
        &store,
        tenant,
        Uuid::new_v4(),
        yesterday,
        "+34600000902",
        cancelled(),
    )
    .await;

    let superuser = sqlx::PgPool::connect(&app.db.superuser_url())
        .await
        .unwrap();
    let settled = eventually(Duration::from_secs(20), || async {
        let (bookings, letters): (i64, i64) = sqlx::query_as(
            "select (select count(*) from analytics.bookings where outcome = 'cancelled'),
                    (select count(*) from analytics.dead_letters)",
        )
        .fetch_one(&superuser)
        .await
        .ok()?;
        (bookings == 2 && letters == 1).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "both good bookings counted, the bad event set aside"
    );
    // What `analytics dead-letters` lists, as the operator role reads it.
    let letters = analytics::consumer::dead_letters(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].event_id, letters[0].event_type.as_deref()),
        (Some(poison.event_id), Some("AppointmentCompleted"))
    );
    assert_eq!(letters[0].tenant_id, Some(tenant));
    assert!(
        letters[0].error.contains("schema version 7"),
        "{}",
        letters[0].error
    );
    assert_eq!(running.stats.dead_lettered.load(Ordering::Relaxed), 1);
}

/// The database failing for a moment is not the events' fault: while every write of a booking's
/// facts fails as a serialization failure would (far past the three attempts that set an event
/// aside), the consumer keeps trying, and counts the booking once the database takes it.
#[tokio::test]
async fn events_the_database_fails_for_a_while_are_counted_once_it_recovers() {
    let app = spawn_command_api().await;
    let superuser = sqlx::PgPool::connect(&app.db.superuser_url())
        .await
        .unwrap();
    let fault = e2e_tests::SerializationFailures::on(&superuser, "analytics.bookings").await;
    let mut projector = projector_settings(&app.db, &app.nats);
    projector.projections.enabled = false;
    let _relay = spawn_projector(projector).await;
    let running = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let store = EventStore::new(app.db.app_pool().await);
    let owner = app.onboard("insight-outage").await;
    let tenant: Uuid = owner.tenant_id.parse().unwrap();
    past_booking(
        &store,
        tenant,
        Uuid::new_v4(),
        Utc::now() - chrono::Duration::days(1),
        "+34600000903",
        BookingEvent::AppointmentCancelled {
            by: Party::Business,
            reason: None,
        },
    )
    .await;

    let dead = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from analytics.dead_letters")
            .fetch_one(&superuser)
            .await
            .unwrap()
    };
    let failing = eventually(Duration::from_secs(20), || async {
        (dead().await > 0 || fault.hits().await >= 10).then_some(())
    })
    .await;
    assert!(
        failing.is_some(),
        "the writes failed {} times",
        fault.hits().await
    );
    assert_eq!(dead().await, 0, "set aside while the database failed");

    fault.lift().await;
    let counted = eventually(Duration::from_secs(20), || async {
        let cancelled: i64 = sqlx::query_scalar(
            "select count(*) from analytics.bookings where outcome = 'cancelled'",
        )
        .fetch_one(&superuser)
        .await
        .ok()?;
        (cancelled == 1).then_some(())
    })
    .await;
    assert!(
        counted.is_some(),
        "the booking is counted once the database recovers"
    );
    assert_eq!(dead().await, 0);
    assert_eq!(running.stats.dead_lettered.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn the_whatsapp_funnel_and_the_bot_s_performance_come_from_real_conversations() {
    use e2e_tests::wa::{
        APP_SECRET, button_reply, last_choices, list_reply, notification, post_signed, setup, text,
    };
    let s = setup().await;
    // Meta, as the sender meets it: replies are accepted, which times the first reply.
    let meta = fake_whatsapp::Fake::new(fake_whatsapp::DEFAULT_TOKEN);
    let mut settings = projector_settings(&s.app.db, &s.app.nats);
    settings.sender.api_base_url = meta.spawn().await;
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&s.app.db, &s.app.nats)).await;

    // Sheena books from hi to confirmed; Omar asks for a person straight away.
    let (me, phone) = ("16505551234", "+16505551234");
    let say = |wamid: &'static str, body: Value| {
        let app = &s.app;
        async move {
            assert_eq!(
                post_signed(app, &notification(vec![body]), APP_SECRET).await,
                200,
                "{wamid}"
            );
        }
    };
    say("w1", text(me, "w1", "hi")).await;
    let (id, title) = last_choices(&s.app, phone).await[0].clone();
    say("w2", list_reply(me, "w2", &id, &title)).await;
    let (id, title) = last_choices(&s.app, phone).await[1].clone();
    say("w3", list_reply(me, "w3", &id, &title)).await;
    let (id, title) = last_choices(&s.app, phone).await[0].clone();
    say("w4", list_reply(me, "w4", &id, &title)).await;
    let (id, title) = last_choices(&s.app, phone).await[0].clone();
    assert_eq!(id, "confirm");
    say("w5", button_reply(me, "w5", &id, &title)).await;
    say("o1", text("34600000555", "o1", "hello")).await;
    say("o2", text("34600000555", "o2", "human")).await;
    // A person answers Omar from the inbox.
    let answered = s
        .app
        .client
        .post(format!(
            "{}/v1/conversations/%2B34600000555/messages",
            s.app.address
        ))
        .bearer_auth(&s.owner.access_token)
        .json(&json!({"text": "Hi Omar, Ana here. How can I help?"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        answered.status().as_u16(),
        202,
        "{:?}",
        answered.text().await
    );

    let owner = &s.owner.access_token;
    let range = format!("from={}&to={}", today_plus(-1), today_plus(1));
    let overview = eventually(Duration::from_secs(20), || async {
        let (status, body) = query
            .get(&format!("/v1/analytics/overview?{range}"), owner, None)
            .await;
        assert_eq!(status, 200, "{body}");
        let timed = body["bot"]["first_reply_p90_ms"].is_number()
            && body["bot"]["human_first_reply_p90_ms"].is_number();
        let booked = body["funnel"]["booked"] == 1 && body["bookings_made"]["whatsapp"] == 1;
        (body["bot"]["handed_off"] == 1 && booked && timed).then_some(body)
    })
    .await
    .expect("both conversations reached analytics");
    assert_eq!(
        overview["funnel"],
        json!({"conversations": 2, "reached_time_choice": 1, "booked": 1, "attended": 0}),
        "{overview}"
    );
    assert_eq!(overview["bot"]["finished_by_bot"], 1);
    assert_eq!(overview["bot"]["finished_by_bot_share"], 0.5);
    let p50 = overview["bot"]["first_reply_p50_ms"].as_f64().unwrap();
    assert!(
        p50 > 0.0 && p50 < 10_000.0,
        "sent after it was decided: {p50} ms"
    );
    // Omar waited from asking for a person to Ana's reply: after the bot's, before the test's end.
    assert_eq!(overview["bot"]["waited_for_a_person"], 1);
    let human = overview["bot"]["human_first_reply_p50_ms"]
        .as_f64()
        .unwrap();
    assert!(human > 0.0 && human < 60_000.0, "{human} ms");
    assert_eq!(overview["messages"]["inbound"], 7);
    // A new business is on its trial's plan, whose messages are limited.
    assert!(
        overview["messages"]["monthly_limit"].as_u64().unwrap() > 0,
        "{overview}"
    );
    assert!(overview["messages"]["outbound"].as_i64().unwrap() >= 7);
    assert_eq!(overview["bookings_made"]["whatsapp"], 1);
}

/// Every fact row of every tenant (as the superuser, past RLS), table by table.
async fn facts_of(superuser: &sqlx::PgPool) -> Vec<Vec<Value>> {
    let mut all = Vec::new();
    for table in ["tenants", "bookings", "sessions", "messages_daily"] {
        let rows: Vec<(Value,)> = sqlx::query_as(&format!(
            "select to_jsonb(t) from analytics.{table} t order by 1"
        ))
        .fetch_all(superuser)
        .await
        .unwrap();
        all.push(rows.into_iter().map(|(v,)| v).collect());
    }
    all
}

#[tokio::test]
async fn a_rebuild_while_the_consumer_runs_makes_the_same_facts_and_loses_nothing_after() {
    let app = spawn_command_api().await;
    let mut projector = projector_settings(&app.db, &app.nats);
    projector.projections.enabled = false;
    let _relay = spawn_projector(projector).await;
    let _analytics = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let store = EventStore::new(app.db.app_pool().await);
    let owner = app.onboard("insight-rebuild").await;
    let tenant: Uuid = owner.tenant_id.parse().unwrap();
    let yesterday = Utc::now() - chrono::Duration::days(1);
    for (i, outcome) in [
        BookingEvent::AppointmentCompleted,
        BookingEvent::AppointmentMarkedNoShow,
        BookingEvent::AppointmentCancelled {
            by: Party::Customer,
            reason: None,
        },
    ]
    .into_iter()
    .enumerate()
    {
        past_booking(
            &store,
            tenant,
            Uuid::new_v4(),
            yesterday,
            &format!("+3460000070{i}"),
            outcome,
        )
        .await;
    }
    let superuser = sqlx::PgPool::connect(&app.db.superuser_url())
        .await
        .unwrap();
    let applied_all = || async {
        let (logged, applied): (i64, i64) = sqlx::query_as(
            "select (select count(*) from events),
                    coalesce((select stream_sequence from analytics.checkpoints), 0)",
        )
        .fetch_one(&superuser)
        .await
        .unwrap();
        (logged == applied).then_some(applied)
    };
    eventually(Duration::from_secs(20), applied_all)
        .await
        .expect("analytics applied the log");
    let before = facts_of(&superuser).await;
    assert_eq!(before[1].len(), 3, "three bookings: {:?}", before[1]);

    // Facts gone wrong (as after a bug in an earlier version of the consumer): the rebuild
    // derives them again from the stream.
    sqlx::query("update analytics.bookings set outcome = 'booked', cancelled_by = null")
        .execute(&superuser)
        .await
        .unwrap();
    sqlx::query("delete from analytics.tenants")
        .execute(&superuser)
        .await
        .unwrap();
    // A booking that never was: the rebuild must drop it, not only overwrite what it derives.
    sqlx::query(
        "insert into analytics.bookings (tenant_id, booking_id, service_id, service_name,
                resource, channel, customer_phone, price_minor, currency, booked_at, starts_at,
                ends_at)
         select tenant_id, gen_random_uuid(), service_id, service_name, resource, channel,
                customer_phone, price_minor, currency, booked_at, starts_at, ends_at
           from analytics.bookings limit 1",
    )
    .execute(&superuser)
    .await
    .unwrap();
    assert_ne!(facts_of(&superuser).await, before);

    let done = analytics::rebuild::rebuild(
        &app.db.operator_pool().await,
        &app.nats.client,
        &app.nats.ns,
        false,
        Duration::from_secs(60),
    )
    .await
    .expect("the rebuild ends");
    assert_eq!(facts_of(&superuser).await, before, "the same facts again");
    assert!(done.sequence >= 9, "{done:?}");

    // What comes after the rebuild counts, once.
    past_booking(
        &store,
        tenant,
        Uuid::new_v4(),
        yesterday,
        "+34600000799",
        BookingEvent::AppointmentCompleted,
    )
    .await;
    eventually(Duration::from_secs(20), applied_all)
        .await
        .expect("analytics applied the new booking");
    let after = facts_of(&superuser).await;
    assert_eq!(after[1].len(), 4);
}

#[tokio::test]
async fn utilisation_counts_each_day_by_the_hours_in_force_that_day() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let salon = Tenant {
        owner: app.onboard("hours-salon").await,
        app: &app,
    };
    // Open 08:00-20:00 every day, then (today) 10:00-14:00 only.
    salon.configured().await;
    let mut shorter = e2e_tests::tenant::settings();
    let day = json!([{"open": "10:00", "close": "14:00"}]);
    for weekday in [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ] {
        shorter["hours"][weekday] = day.clone();
    }
    let (status, _, body) = salon
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"2\"")],
            Some(shorter),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // Three days before today take the first hours known; today and the three after, today's
    // (the business's today, in Madrid).
    let today = Utc::now()
        .with_timezone(&chrono_tz::Europe::Madrid)
        .date_naive();
    let range = format!(
        "from={}&to={}",
        today - chrono::Duration::days(3),
        today + chrono::Duration::days(3)
    );
    let expected = json!(3 * 12 * 60 + 4 * 4 * 60);
    let overview = eventually(Duration::from_secs(15), || async {
        let (_, overview) = query
            .get(
                &format!("/v1/analytics/overview?{range}"),
                &salon.owner.access_token,
                None,
            )
            .await;
        (overview["utilisation"]["open_minutes"] == expected).then_some(overview)
    })
    .await;
    assert!(
        overview.is_some(),
        "open minutes follow the hours of each day"
    );
}
