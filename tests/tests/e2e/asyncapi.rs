//! The events stream describes itself: the analytics service serves the AsyncAPI document the
//! domain's tests generate and validate (`domain/asyncapi/events.json`), with a page that
//! renders it offline, and the document names the headers the relay really sets.

use e2e_tests::{analytics_settings, spawn_analytics};
use serde_json::Value;
use testkit::{TestDb, TestNats};

#[tokio::test]
async fn the_analytics_service_serves_the_events_streams_asyncapi_document_and_its_page() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let analytics = spawn_analytics(analytics_settings(&db, &nats)).await;
    let client = reqwest::Client::new();

    let response = client
        .get(format!("{}/asyncapi.json", analytics.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let served: Value = response.json().await.unwrap();
    let committed: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../domain/asyncapi/events.json"
    )))
    .unwrap();
    assert_eq!(served, committed);
    assert_eq!(served["asyncapi"], "3.0.0");

    // Each header the relay sets (always, or on traced events) is described, and nothing else is.
    let described: Vec<&str> = served["components"]["schemas"]["Headers"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut relay_sets = vec![
        nats::headers::MSG_ID,
        nats::headers::TENANT,
        nats::headers::STREAM_TYPE,
        nats::headers::STREAM_ID,
        nats::headers::VERSION,
        nats::headers::EVENT_TYPE,
        nats::headers::SCHEMA_VERSION,
        nats::headers::POSITION,
        nats::headers::TRACEPARENT,
    ];
    relay_sets.sort();
    let mut described = described;
    described.sort();
    assert_eq!(described, relay_sets);

    // The channels are the subjects the relay publishes on.
    let address = served["channels"]["booking.AppointmentRequested"]["address"]
        .as_str()
        .unwrap();
    let tenant = uuid::Uuid::new_v4();
    assert_eq!(
        address.replace("{tenant_id}", &tenant.to_string()),
        nats::Namespace::root().event_subject(tenant, "booking", "AppointmentRequested")
    );

    let page = client
        .get(format!("{}/asyncapi", analytics.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("fetch('asyncapi.json')"));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
    analytics.shutdown().await;
}

#[tokio::test]
async fn the_query_api_serves_the_public_events_asyncapi_document_and_its_page() {
    let app = e2e_tests::spawn_command_api().await;
    let query = e2e_tests::spawn_query_api(e2e_tests::query_api_settings(&app.db, &app.nats)).await;
    let served: Value = query
        .client
        .get(format!("{}/asyncapi.json", query.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let committed: Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../domain/asyncapi/integrations.json"
    )))
    .unwrap();
    assert_eq!(served, committed);
    // It documents the stream the query API serves, and every public topic.
    assert_eq!(served["channels"]["events"]["address"], "/v1/events/stream");
    for topic in domain::integration::Topic::ALL {
        assert!(
            served["components"]["messages"][topic.name()].is_object(),
            "{}",
            topic.name()
        );
    }
    let page = query
        .client
        .get(format!("{}/asyncapi", query.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("fetch('asyncapi.json')"));
}
