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

#[tokio::test]
async fn a_customer_s_export_holds_their_bookings_conversation_and_events_and_nothing_of_others() {
    let s = setup().await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&s.app.db, &s.app.nats)).await;
    let owner = &s.owner.access_token;
    let t = Tenant {
        owner: s.owner.clone(),
        app: &s.app,
    };
    let service = eventually(Duration::from_secs(20), || async {
        let (_, services) = query.get("/v1/services", owner, None).await;
        services["services"][0]["id"].as_str().map(str::to_owned)
    })
    .await
    .expect("the service is projected");
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
    let streams = [
        "conversation/+34600000001".to_owned(),
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
