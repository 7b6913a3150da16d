//! What every answer carries, and a client that holds a connection open by trickling its
//! request's body in: answered 408 (problem+json) once the command API's time for a request is
//! up, and the connection closed. (The query API takes no bodies: its routes are reads.) A
//! client that trickles its request's head in is cut off after 10 s, on every service. A request
//! past the command API's bound on requests in flight waits, then is answered 503.

use std::time::{Duration, Instant};

use e2e_tests::{query_api_settings, spawn_command_api_tuned, spawn_query_api};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Sends a request's head and the first byte of a 100-byte body, then nothing: what the
/// service answers, and after how long.
async fn trickle(address: &str, path: &str) -> (String, Duration) {
    let host = address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let started = Instant::now();
    socket
        .write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                 Content-Length: 100\r\n\r\n{{"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    // Read until the service closes the connection (or 20 s, which fails below).
    let _ = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut answer)).await;
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn a_request_that_trickles_in_is_answered_408_and_its_connection_closed() {
    let app = spawn_command_api_tuned("http://127.0.0.1:1", e2e_tests::REDIS_URL, |s| {
        s.http.request_seconds = 2;
    })
    .await;
    for (address, path) in [
        (app.address.as_str(), "/v1/tenants"),
        (app.address.as_str(), "/webhooks/whatsapp"),
    ] {
        let (answer, took) = trickle(address, path).await;
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "{address}{path}: {answer}"
        );
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains("request-timeout"), "{answer}");
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(10),
            "answered after the limit and the connection closed: {took:?}"
        );
    }
}

/// Past `http.max_in_flight`, a request waits its turn up to `http.queue_ms`, then is answered
/// 503 (problem+json, `Retry-After`) having written nothing; the health checks answer
/// meanwhile; and once the turn is free the same request goes through.
#[tokio::test]
async fn a_request_past_the_bound_on_requests_in_flight_is_answered_503_and_writes_nothing() {
    let app = spawn_command_api_tuned("http://127.0.0.1:1", e2e_tests::REDIS_URL, |s| {
        s.http.request_seconds = 5;
        s.http.max_in_flight = 1;
        s.http.queue_ms = 300;
    })
    .await;
    // A body trickling in holds the one turn until its time is up.
    let held = tokio::spawn({
        let address = app.address.clone();
        async move { trickle(&address, "/v1/tenants").await }
    });
    // Until it has it: a request that gets in is answered 401 (no credentials).
    for attempt in 1.. {
        assert!(attempt < 40, "the trickling request never held the turn");
        let probe = app
            .client
            .get(format!("{}/v1/me", app.address))
            .send()
            .await
            .unwrap();
        match probe.status().as_u16() {
            503 => break,
            401 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("unexpected {other}"),
        }
    }

    let started = Instant::now();
    let refused = app
        .post(
            "/v1/tenants",
            &e2e_tests::CommandApp::onboarding("busy-salon"),
        )
        .await;
    assert_eq!(refused.status().as_u16(), 503);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited first"
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.headers()["content-type"],
        "application/problem+json"
    );
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.status().as_u16(),
        200,
        "health checks are not held up"
    );

    let (answer, _) = held.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let superuser = app.db.superuser_url_pool().await;
    let tenants = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events where stream_type = 'tenant'")
            .fetch_one(&superuser)
            .await
            .unwrap()
    };
    assert_eq!(tenants().await, 0, "the refused request wrote nothing");
    let onboarded = app
        .post(
            "/v1/tenants",
            &e2e_tests::CommandApp::onboarding("busy-salon"),
        )
        .await;
    assert_eq!(onboarded.status().as_u16(), 201);
    assert!(tenants().await > 0);
}

/// Sends a request's head but never its end: how long until the service closes the connection
/// (`None`: still open after 30 s).
async fn headers_never_end(address: &str) -> Option<Duration> {
    let host = address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(host).await.unwrap();
    let started = Instant::now();
    socket
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nX-Slow: ").as_bytes())
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut answer))
        .await
        .ok()
        .map(|_| started.elapsed())
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app = e2e_tests::spawn_command_api().await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let (command, read) = tokio::join!(
        headers_never_end(&app.address),
        headers_never_end(&query.address)
    );
    for (service, took) in [("command API", command), ("query API", read)] {
        let took = took.unwrap_or_else(|| panic!("{service}: still open after 30 s"));
        assert!(
            took >= Duration::from_secs(9) && took < Duration::from_secs(20),
            "{service}: cut off after the 10 s a request's head may take: {took:?}"
        );
    }
}

#[tokio::test]
async fn every_answer_says_not_to_sniff_frame_cache_or_refer() {
    let app = e2e_tests::spawn_command_api().await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    for url in [
        format!("{}/v1/me", app.address),
        format!("{}/v1/bookings", query.address),
        format!("{}/healthz", app.address),
    ] {
        let response = reqwest::get(&url).await.unwrap();
        let headers = response.headers();
        for (name, value) in [
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
            ("referrer-policy", "no-referrer"),
            ("cache-control", "no-store"),
        ] {
            assert_eq!(
                headers.get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{url}: {name}"
            );
        }
    }
}
