//! A customer's rights over what a business holds about them: access (the export), and their
//! data sealed at rest with a key of their own.

use std::time::Duration;

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::wa::*;
use e2e_tests::{
    analytics_settings, eventually, projector_settings, query_api_settings, spawn_analytics,
    spawn_projector, spawn_query_api,
};
use serde_json::{Value, json};

/// A business with its number connected and one service, the projector, the query API and
/// analytics running.
pub(crate) struct World {
    pub(crate) s: Setup,
    pub(crate) projector: Option<e2e_tests::ProjectorHandle>,
    pub(crate) query: e2e_tests::QueryApp,
    pub(crate) _analytics: e2e_tests::AnalyticsHandle,
    pub(crate) service: String,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::tuned(|_| {}).await
    }

    /// [`World::new`] with the projector's settings adjusted by `tune`.
    pub(crate) async fn tuned(tune: impl FnOnce(&mut projector::Settings)) -> Self {
        let s = setup().await;
        let mut settings = projector_settings(&s.app.db, &s.app.nats);
        tune(&mut settings);
        let projector = spawn_projector(settings).await;
        let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
        let analytics = spawn_analytics(analytics_settings(&s.app.db, &s.app.nats)).await;
        let owner = &s.owner.access_token;
        let service = eventually(Duration::from_secs(20), || async {
            let (_, services) = query.get("/v1/services", owner, None).await;
            services["services"][0]["id"].as_str().map(str::to_owned)
        })
        .await
        .expect("the service is projected");
        Self {
            s,
            projector: Some(projector),
            query,
            _analytics: analytics,
            service,
        }
    }

    pub(crate) fn owner(&self) -> Tenant<'_> {
        Tenant {
            owner: self.s.owner.clone(),
            app: &self.s.app,
        }
    }
}

#[tokio::test]
async fn a_customer_s_export_holds_their_bookings_conversation_and_events_and_nothing_of_others() {
    let w = World::new().await;
    let (s, query, service) = (&w.s, &w.query, &w.service);
    let owner = &s.owner.access_token;
    let t = w.owner();
    let booked = |hour: u32, phone: &'static str| {
        let (t, service) = (&t, &service);
        async move {
            let (status, body) = t.book(service, &slot(hour), phone, None).await;
            assert_eq!(status, 201, "{body}");
            body["booking_id"].as_str().unwrap().to_owned()
        }
    };
    let first = booked(10, "+34600000001").await;
    let second = booked(12, "+34600000001").await;
    let someone_else = booked(14, "+34600000009").await;
    let (status, _, _) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{second}/cancel"),
            &[],
            Some(json!({"reason": "moved away"})),
        )
        .await;
    assert_eq!(status, 200);
    let hello = notification_from(
        "34600000001",
        "Ana María",
        vec![text("34600000001", "wamid.EXPORT1", "hola")],
    );
    deliver(&s.app, &hello).await;

    let export: Value = eventually(Duration::from_secs(20), || async {
        let (status, export) = query
            .get("/v1/customers/%2B34600000001/export", owner, None)
            .await;
        let cancelled = export["bookings"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b["status"] == "cancelled"));
        let facts = export["analytics"]["bookings"]
            .as_array()
            .map_or(0, Vec::len)
            + export["analytics"]["sessions"]
                .as_array()
                .map_or(0, Vec::len);
        (status == 200 && cancelled && !export["conversation"].is_null() && facts == 3)
            .then_some(export)
    })
    .await
    .expect("the export has the customer's bookings and conversation");

    assert_eq!(export["phone"], "+34600000001");
    assert_eq!(export["names"], json!(["Ana", "Ana María"]));
    let bookings: Vec<&str> = export["bookings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["booking_id"].as_str().unwrap())
        .collect();
    assert_eq!(bookings, [first.as_str(), second.as_str()]);
    assert!(
        export["bookings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| !b["history"].as_array().unwrap().is_empty())
    );
    let messages = export["conversation"]["messages"].as_array().unwrap();
    assert!(
        messages
            .iter()
            .any(|m| m["direction"] == "in" && m["content"].to_string().contains("hola")),
        "{messages:?}"
    );
    assert!(messages.iter().any(|m| m["direction"] == "out"));
    assert!(
        export["analytics"]["bookings"].is_array() && export["analytics"]["sessions"].is_array()
    );
    // The log's events about them: their conversation and their two bookings, in commit order.
    let events = export["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for kind in ["MessageReceived", "BotReplied", "AppointmentCancelled"] {
        assert!(kinds.contains(&kind), "{kind} in {kinds:?}");
    }
    assert_eq!(
        kinds
            .iter()
            .filter(|k| **k == "AppointmentRequested")
            .count(),
        2
    );
    // Their conversation's stream is named by their subject id, not their phone.
    let store = eventstore::EventStore::new(s.app.db.app_pool().await);
    let customer = domain::values::PhoneNumber::parse("+34600000001").unwrap();
    let conversation = app::conversation::known_conversation(
        &store,
        s.owner.tenant_id.parse().unwrap(),
        &customer,
    )
    .await
    .unwrap()
    .expect("the customer's conversation");
    assert!(!conversation.stream_id.contains("34600000001"));
    let streams = [
        conversation.to_string(),
        format!("booking/{first}"),
        format!("booking/{second}"),
    ];
    for event in events {
        assert!(
            streams.iter().any(|s| event["stream"] == s.as_str()),
            "{event}"
        );
    }
    let positions: Vec<(u64, u64)> = events
        .iter()
        .map(|e| {
            let (tx, at) = e["position"].as_str().unwrap().split_once('.').unwrap();
            (tx.parse().unwrap(), at.parse().unwrap())
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "commit order");
    // Nothing of the business's other customer.
    let text = export.to_string();
    assert!(!text.contains("34600000009") && !text.contains(&someone_else));

    // The log and the events stream hold what the export shows sealed: no phone, name or
    // message of the customer in any payload, in Postgres or on JetStream.
    assert_sealed_at_rest(&s.app, &["34600000001", "Ana María", "hola"]).await;

    // A customer the business never met, and something that is not a phone: 404.
    for phone in ["%2B34600000777", "not-a-phone"] {
        let (status, body) = query
            .get(&format!("/v1/customers/{phone}/export"), owner, None)
            .await;
        assert_eq!(status, 404, "{phone}: {body}");
    }
    // Owners and admins only: a key that reads bookings may not export.
    let (status, _, key) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "bookings", "scopes": ["read_bookings"]})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = query
        .get(
            "/v1/customers/%2B34600000001/export",
            key["key"].as_str().unwrap(),
            None,
        )
        .await;
    assert_eq!(status, 403);
}

/// No payload in the log or on the events stream holds any of `clear` as written.
async fn assert_sealed_at_rest(app: &e2e_tests::CommandApp, clear: &[&str]) {
    let payloads: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&app.db.operator_pool().await)
        .await
        .unwrap();
    let sealed = payloads.iter().filter(|p| p.contains("$personal")).count();
    assert!(sealed >= 6, "the customer's events are sealed: {sealed}");
    let stream = app
        .nats
        .jetstream()
        .get_stream(app.nats.ns.events_stream())
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .last_sequence;
    let js = app
        .nats
        .jetstream()
        .get_stream(app.nats.ns.events_stream())
        .await
        .unwrap();
    let mut published = Vec::new();
    for sequence in 1..=stream {
        let message = js.get_raw_message(sequence).await.unwrap();
        let envelope: Value = serde_json::from_slice(&message.payload).unwrap();
        published.push(envelope["payload"].to_string());
    }
    assert!(published.len() >= payloads.len() / 2, "the relay published");
    for payload in payloads.iter().chain(&published) {
        for value in clear {
            assert!(!payload.contains(value), "{value} in the clear: {payload}");
        }
    }
}

#[tokio::test]
async fn an_erased_customer_is_gone_from_every_read_model_rebuild_and_reader_while_the_totals_stay()
{
    let mut w = World::new().await;
    let t = w.owner();
    let (s, query, service) = (&w.s, &w.query, &w.service);
    let owner = &s.owner.access_token;
    for (hour, phone) in [
        (10, "+34600000001"),
        (12, "+34600000001"),
        (14, "+34600000009"),
    ] {
        let (status, body) = t.book(service, &slot(hour), phone, None).await;
        assert_eq!(status, 201, "{body}");
    }
    let hello = notification_from(
        "34600000001",
        "Ana María",
        vec![text("34600000001", "wamid.ERASE1", "hola, soy Ana")],
    );
    deliver(&s.app, &hello).await;
    // A person of the business takes the conversation over: a public event naming the phone.
    let (status, _, _) = t
        .send(
            reqwest::Method::POST,
            "/v1/conversations/%2B34600000001/handoff",
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200);
    let day = |d: i64| (chrono::Utc::now() + chrono::Duration::days(d)).date_naive();
    let range = format!("from={}&to={}", day(-3), day(3));
    let totals = |overview: &Value| {
        assert!(overview["bookings_made"]["total"].is_number(), "{overview}");
        (
            overview["bookings_made"].clone(),
            overview["appointments"].clone(),
            overview["revenue"].clone(),
            overview["customers"].clone(),
        )
    };
    let before = eventually(Duration::from_secs(20), || async {
        let (_, export) = query
            .get("/v1/customers/%2B34600000001/export", owner, None)
            .await;
        let (_, overview) = query
            .get(&format!("/v1/analytics/overview?{range}"), owner, None)
            .await;
        let facts = export["analytics"]["bookings"]
            .as_array()
            .map_or(0, Vec::len);
        (facts == 2 && !export["conversation"].is_null()).then_some(overview)
    })
    .await
    .expect("everything about the customer is projected");

    // The owner erases the customer, once.
    let (status, _, erased) = t
        .send(
            reqwest::Method::POST,
            "/v1/customers/%2B34600000001/erase",
            &[("idempotency-key", "erase-ana")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["bookings"], 2);
    let token = erased["consistency_token"].as_str().unwrap().to_owned();
    let (status, _, again) = t
        .send(
            reqwest::Method::POST,
            "/v1/customers/%2B34600000001/erase",
            &[("idempotency-key", "erase-ana-again")],
            None,
        )
        .await;
    assert_eq!(status, 404, "erased already: {again}");

    // The read models, once they reach the erasure: the bookings stay with a stand-in customer,
    // the conversation's row has the stand-in phone, and nothing names Ana anywhere.
    let (status, bookings) = query.get("/v1/bookings", owner, Some(&token)).await;
    assert_eq!(status, 200);
    let bookings = bookings["items"].as_array().unwrap().clone();
    assert_eq!(bookings.len(), 3);
    let stand_ins: Vec<&Value> = bookings
        .iter()
        .filter(|b| b["customer_phone"].as_str().unwrap().starts_with("+999"))
        .collect();
    assert_eq!(stand_ins.len(), 2, "{bookings:?}");
    assert!(stand_ins.iter().all(|b| b["customer_name"].is_null()));
    let (status, _) = query
        .get("/v1/customers/%2B34600000001/export", owner, Some(&token))
        .await;
    assert_eq!(status, 404, "nothing is held of the customer any more");
    let superuser = sqlx::PgPool::connect(&s.app.db.superuser_url())
        .await
        .unwrap();
    e2e_tests::wait_for_projections(&superuser).await;
    let totals_after = eventually(Duration::from_secs(20), || async {
        let (_, overview) = query
            .get(
                &format!("/v1/analytics/overview?{range}"),
                owner,
                Some(&token),
            )
            .await;
        Some(overview)
    })
    .await
    .unwrap();
    assert_eq!(
        totals(&totals_after),
        totals(&before),
        "the business's totals stay"
    );
    // (The other customer booked as "Ana" too: her name stays; the erased one's full name,
    // from WhatsApp, may not.)
    let clear = ["34600000001", "Ana María", "hola"];
    assert_nothing_names(&superuser, &clear).await;

    // Every reader of the log (the store, the operator's log, a new consumer of the stream)
    // reads stand-ins, and a rebuild makes exactly the live read models.
    let tenant: uuid::Uuid = s.owner.tenant_id.parse().unwrap();
    let read = eventstore::EventStore::new(s.app.db.app_pool().await)
        .with_upcasters(app::events::upcasters())
        .read_tenant(tenant, eventstore::Position::START, 10_000)
        .await
        .unwrap();
    let payloads =
        serde_json::to_string(&read.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    assert!(payloads.contains("[erased]") && payloads.contains("+999"));
    for value in clear {
        assert!(!payloads.contains(value), "{value} read back: {payloads}");
    }
    assert!(
        read.iter()
            .all(|e| !e.stream.stream_id.contains("34600000001"))
    );
    assert_sealed_at_rest(&s.app, &clear).await;
    drop(t);
    drop(w.projector.take());
    let s = &w.s;
    e2e_tests::assert_read_models_equal_a_rebuild(&s.app.db, &superuser).await;
    assert_nothing_names(&superuser, &clear).await;

    // Ana writes again: a new conversation, which the bot answers.
    let again = notification_from(
        "34600000001",
        "Ana",
        vec![text("34600000001", "wamid.ERASE2", "hola otra vez")],
    );
    deliver(&s.app, &again).await;
    assert!(!replies_to(&s.app, "wamid.ERASE2").await.is_empty());
}

/// No row of any read model, analytics fact or other table but the log (sealed) holds any of
/// `clear`.
pub(crate) async fn assert_nothing_names(superuser: &sqlx::PgPool, clear: &[&str]) {
    let tables: Vec<String> = sqlx::query_scalar(
        "select format('%I.%I', table_schema, table_name) from information_schema.tables
          where table_type = 'BASE TABLE' and table_name <> 'events'
            and table_schema in ('public', 'analytics')",
    )
    .fetch_all(superuser)
    .await
    .unwrap();
    assert!(tables.len() > 20, "{tables:?}");
    for table in tables {
        for value in clear {
            let found: i64 = sqlx::query_scalar(&format!(
                "select count(*) from {table} t where t::text like '%' || $1 || '%'"
            ))
            .bind(value)
            .fetch_one(superuser)
            .await
            .unwrap();
            assert_eq!(found, 0, "{value} in {table}");
        }
    }
}

/// The projections may read a customer's last messages only after their erasure (a projector
/// that was down, or behind): those messages name the stand-in while the inbox row still has
/// the phone. Nothing fails, and once the erasure is read the tables are what a rebuild makes.
#[tokio::test]
async fn an_erasure_the_projections_read_late_leaves_them_what_a_rebuild_makes() {
    let mut w = World::new().await;
    let s = &w.s;
    let owner = &s.owner.access_token;
    let hello = notification_from(
        "34600000005",
        "Eulalia",
        vec![text("34600000005", "wamid.LATE1", "hola, soy Eulalia")],
    );
    deliver(&s.app, &hello).await;
    let seen = eventually(Duration::from_secs(20), || async {
        let (_, inbox) = w.query.get("/v1/conversations", owner, None).await;
        inbox["items"][0]["customer_phone"]
            .as_str()
            .is_some_and(|p| p == "+34600000005")
            .then_some(())
    })
    .await;
    assert!(seen.is_some(), "the inbox shows the customer");
    // The projector stops; the customer writes again and is erased meanwhile.
    drop(w.projector.take());
    let more = notification_from(
        "34600000005",
        "Eulalia",
        vec![text("34600000005", "wamid.LATE2", "quiero una cita")],
    );
    deliver(&s.app, &more).await;
    let t = w.owner();
    let (status, _, erased) = t
        .send(
            reqwest::Method::POST,
            "/v1/customers/%2B34600000005/erase",
            &[("idempotency-key", "erase-late")],
            None,
        )
        .await;
    assert_eq!(status, 200, "{erased}");
    drop(t);
    w.projector = Some(spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await);
    let superuser = sqlx::PgPool::connect(&s.app.db.superuser_url())
        .await
        .unwrap();
    e2e_tests::wait_for_projections(&superuser).await;
    let dead: i64 = sqlx::query_scalar("select count(*) from rm_dead_letters")
        .fetch_one(&superuser)
        .await
        .unwrap();
    assert_eq!(dead, 0, "no event was refused");
    assert_nothing_names(&superuser, &["34600000005", "Eulalia", "quiero"]).await;
    drop(w.projector.take());
    e2e_tests::assert_read_models_equal_a_rebuild(&w.s.app.db, &superuser).await;
}
