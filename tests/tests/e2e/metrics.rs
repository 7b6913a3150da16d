//! Every service serves Prometheus metrics at `/metrics`, and they move with the work: the
//! platform as processes (each its own recorder), a customer booking over WhatsApp. No label
//! carries a tenant id, a booking id or a phone number.

use std::time::Duration;

use e2e_tests::eventually;
use e2e_tests::stack::{Customer, Platform, Routes};
use testkit::{RedisServer, TestNats};

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn total(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(|line| labels.iter().all(|l| line.contains(l)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn scrape(base: &str) -> String {
    let response = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{base}/metrics");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    response.text().await.unwrap()
}

#[tokio::test]
async fn each_service_counts_its_work_without_a_tenants_identifiers_in_a_label() {
    let nats = TestNats::new().await;
    let mut redis = RedisServer::start();
    let routes = Routes {
        redis_url: Some(redis.url()),
        ..Routes::default()
    };
    let p = Platform::start_with(&nats.url, nats.ns.prefix(), "memory", routes).await;
    let salon = p.business("metrics-salon", "100000000000301").await;
    let mut ana = Customer::new(&p, &salon, "+34600000301");
    let confirmation = ana.book_first_slot().await;
    assert!(confirmation.contains("Booked!"), "{confirmation}");
    let (status, _) = p.read(&salon.token, "/v1/bookings").await;
    assert_eq!(status, 200);

    let command = scrape(&p.url("command-api")).await;
    assert!(
        total(
            &command,
            "http_requests_total",
            &["route=\"/v1/tenants\"", "method=\"POST\"", "status=\"201\""]
        ) >= 1.0,
        "{command}"
    );
    assert!(
        total(
            &command,
            "http_requests_total",
            &["route=\"/webhooks/whatsapp\"", "status=\"200\""]
        ) >= 4.0
    );
    assert!(
        total(
            &command,
            "http_request_duration_seconds_count",
            &["route=\"/webhooks/whatsapp\""]
        ) >= 4.0
    );
    // The use cases' commits, the webhook's turns and statuses, the pools as scraped.
    assert!(
        total(&command, "commands_total", &["outcome=\"committed\""]) >= 5.0,
        "{command}"
    );
    assert!(total(&command, "append_duration_seconds_count", &[]) >= 5.0);
    assert!(total(&command, "whatsapp_turns_total", &["outcome=\"taken\""]) >= 4.0);
    assert!(total(&command, "whatsapp_turn_duration_seconds_count", &[]) >= 4.0);
    let statuses = eventually(Duration::from_secs(10), || async {
        let text = scrape(&p.url("command-api")).await;
        (total(
            &text,
            "whatsapp_statuses_total",
            &["status=\"read\"", "outcome=\"recorded\""],
        ) >= 1.0)
            .then_some(text)
    })
    .await
    .expect("Meta's statuses are counted");
    assert!(
        total(&statuses, "db_pool_max_connections", &[]) >= 1.0,
        "{statuses}"
    );
    assert!(statuses.contains("db_pool_connections{"), "{statuses}");

    let query = scrape(&p.url("query-api")).await;
    assert!(
        total(
            &query,
            "http_requests_total",
            &["route=\"/v1/bookings\"", "status=\"200\""]
        ) >= 1.0,
        "{query}"
    );

    // The relay, the projections and the sender run in the projector; they count as they go.
    let projector = eventually(Duration::from_secs(10), || async {
        let text = scrape(&p.url("projector")).await;
        (total(
            &text,
            "projection_events_total",
            &["projection=\"bookings\"", "outcome=\"applied\""],
        ) >= 2.0
            && total(&text, "whatsapp_sends_total", &["outcome=\"sent\""]) >= 4.0)
            .then_some(text)
    })
    .await
    .expect("the projector's series move");
    assert!(total(&projector, "relay_events_total", &["outcome=\"published\""]) >= 10.0);
    // How far behind each stage is, and what it takes at once.
    assert!(
        total(&projector, "relay_batch_events_count", &[]) >= 1.0,
        "{projector}"
    );
    assert!(projector.contains("relay_lag_seconds "), "{projector}");
    assert!(total(&projector, "projection_batch_events_count", &[]) >= 1.0);
    assert!(
        total(
            &projector,
            "projection_batches_total",
            &["path=\"together\""]
        ) >= 1.0,
        "the projections' batches are applied together: {projector}"
    );
    for gauge in ["projection_lag_events{", "projection_lag_seconds{"] {
        assert!(projector.contains(gauge), "{gauge} in {projector}");
    }

    // Redis goes away: each request that would have used it goes without, and says so.
    redis.kill();
    for _ in 0..3 {
        let (status, _) = p.read(&salon.token, "/v1/bookings").await;
        assert_eq!(status, 200, "reads go on without Redis");
    }
    let query_without = scrape(&p.url("query-api")).await;
    assert!(
        total(&query_without, "redis_fallbacks_total", &[]) >= 1.0,
        "{query_without}"
    );
    assert!(query_without.contains("redis_up 0"), "{query_without}");

    for (service, text) in [
        ("command-api", &command),
        ("query-api", &query),
        ("projector", &projector),
    ] {
        for secret in [
            salon.tenant_id.as_str(),
            "34600000301",
            salon.number.as_str(),
        ] {
            assert!(!text.contains(secret), "{service}'s metrics carry {secret}");
        }
    }
}
