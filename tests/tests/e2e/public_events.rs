//! The public events feed as a business's systems read it: `GET /v1/events/stream`
//! (server-sent events) with an API key scoped `read_events`. Its own events only, in order,
//! resumable with `Last-Event-ID` without gaps or repeats, across a restart of the projector.

use std::time::Duration;

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    projector_settings, query_api_settings, spawn_command_api, spawn_projector, spawn_query_api,
};
use serde_json::{Value, json};

/// One server-sent event: id, event name, data parsed as JSON.
#[derive(Debug, Clone)]
struct Sse {
    id: u64,
    event: String,
    data: Value,
}

/// An open stream, read chunk by chunk.
struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    async fn open(base: &str, key: &str, last_event_id: Option<&str>) -> reqwest::Response {
        let mut request = reqwest::Client::new()
            .get(format!("{base}/v1/events/stream"))
            .bearer_auth(key);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        request.send().await.unwrap()
    }

    async fn connect(base: &str, key: &str, last_event_id: Option<&str>) -> Self {
        let response = Self::open(base, key, last_event_id).await;
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// The next `n` events (comments skipped), within 10 s.
    async fn take(&mut self, n: usize) -> Vec<Sse> {
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while out.len() < n {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = Sse {
                    id: 0,
                    event: String::new(),
                    data: Value::Null,
                };
                let mut is_event = false;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        event.id = v.trim().parse().unwrap();
                        is_event = true;
                    } else if let Some(v) = line.strip_prefix("event:") {
                        event.event = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        event.data = serde_json::from_str(v.trim()).unwrap();
                    }
                }
                if is_event {
                    out.push(event);
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} events came: {out:?}", out.len()))
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        out
    }

    /// Nothing more comes within `wait`.
    async fn quiet(&mut self, wait: Duration) {
        let more = tokio::time::timeout(wait, self.take(1)).await;
        assert!(more.is_err(), "an unexpected event: {more:?}");
    }
}

async fn events_key(t: &Tenant<'_>) -> String {
    let (status, _, created) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "Our CRM", "scopes": ["read_events"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    created["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_business_reads_its_own_public_events_in_order_and_resumes_without_gaps() {
    let app = spawn_command_api().await;
    let projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let a = Tenant {
        owner: app.onboard("feed-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("feed-b").await,
        app: &app,
    };
    let service_a = a.configured().await;
    let service_b = b.configured().await;
    let key = events_key(&a).await;

    // From the start of the feed (Last-Event-ID: 0), while another business books too.
    let mut stream = Stream::connect(&query.address, &key, Some("0")).await;
    let (status, booked) = a.book(&service_a, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{booked}");
    let booking = booked["booking_id"].as_str().unwrap().to_owned();
    let (status, _) = b.book(&service_b, &slot(10), "+34600000002", None).await;
    assert_eq!(status, 201);
    let first = stream.take(2).await;
    assert_eq!(
        first
            .iter()
            .map(|e| (e.id, e.event.as_str()))
            .collect::<Vec<_>>(),
        [(1, "booking.created"), (2, "booking.confirmed")]
    );
    let created = &first[0].data;
    assert_eq!(created["type"], "booking.created");
    assert_eq!(created["version"], 1);
    assert_eq!(created["tenant_id"], a.owner.tenant_id.as_str());
    assert_eq!(created["data"]["booking_id"], booking.as_str());
    assert_eq!(created["data"]["customer"]["phone"], "+34600000001");
    assert_eq!(created["data"]["service"]["name"], "Haircut");
    assert_eq!(
        created["data"]["price"],
        json!({"minor": 2500, "currency": "EUR"})
    );
    assert_eq!(created["data"]["channel"], "dashboard");
    // Nothing of the other business, nor internal bookkeeping (holds, reminders).
    stream.quiet(Duration::from_millis(700)).await;

    // The client goes away after event 2; meanwhile the booking moves and is cancelled, and the
    // projector restarts in between.
    drop(stream);
    let (status, _, body) = a
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{booking}/reschedule"),
            &[],
            Some(json!({"start": slot(12)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    projector.shutdown().await;
    let (status, _, body) = a
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{booking}/cancel"),
            &[],
            Some(json!({"reason": "moved away"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;

    let mut resumed = Stream::connect(&query.address, &key, Some("2")).await;
    let rest = resumed.take(2).await;
    assert_eq!(
        rest.iter()
            .map(|e| (e.id, e.event.as_str()))
            .collect::<Vec<_>>(),
        [(3, "booking.rescheduled"), (4, "booking.cancelled")]
    );
    assert_eq!(rest[0].data["data"]["to"]["starts_at"], json!(slot(12)));
    assert_eq!(rest[1].data["data"]["cancelled_by"], "business");
    assert_eq!(rest[1].data["data"]["reason"], "moved away");
    resumed.quiet(Duration::from_millis(500)).await;

    // Without Last-Event-ID the stream starts with the next event.
    let mut fresh = Stream::connect(&query.address, &key, None).await;
    fresh.quiet(Duration::from_millis(500)).await;
    let (status, _) = a.book(&service_a, &slot(14), "+34600000003", None).await;
    assert_eq!(status, 201);
    let next = fresh.take(1).await;
    assert_eq!((next[0].id, next[0].event.as_str()), (5, "booking.created"));
}

#[tokio::test]
async fn the_stream_refuses_keys_without_the_scope_weak_roles_and_a_bad_last_event_id() {
    let app = spawn_command_api().await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("feed-refusals").await,
        app: &app,
    };
    let (_, _, created) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "Bookings only", "scopes": ["read_bookings"]})),
        )
        .await;
    let bookings_only = created["key"].as_str().unwrap();
    assert_eq!(
        Stream::open(&query.address, bookings_only, None)
            .await
            .status()
            .as_u16(),
        403
    );
    let key = events_key(&t).await;
    for bad in ["abc", "-1", "1.5", "99999999999999999999"] {
        let response = Stream::open(&query.address, &key, Some(bad)).await;
        assert_eq!(response.status().as_u16(), 422, "{bad}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "Last-Event-ID", "{problem}");
    }
    let anonymous = reqwest::Client::new()
        .get(format!("{}/v1/events/stream", query.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    // The owner reads it too (a dashboard could).
    let response = Stream::open(&query.address, &t.owner.access_token, None).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[tokio::test]
async fn an_open_stream_ends_when_the_query_api_stops_so_that_it_stops_promptly() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("feed-stop").await,
        app: &app,
    };
    let service = query_api::Application::build(query_api_settings(&app.db, &app.nats))
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", service.port());
    let stop = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(service.run_until_stopped(stop.clone()));
    let mut stream = Stream::connect(&base, &t.owner.access_token, None).await;

    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), running).await;
    assert!(
        matches!(stopped, Ok(Ok(Ok(())))),
        "the query API did not stop: {stopped:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(5), stream.response.chunk()).await;
    assert!(
        matches!(end, Ok(Ok(None))),
        "the stream did not end: {end:?}"
    );
}

#[tokio::test]
async fn the_server_ends_a_stream_after_its_lifetime_and_the_client_resumes_without_a_loss() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let mut settings = query_api_settings(&app.db, &app.nats);
    settings.limits.stream_max_seconds = 2;
    let query = spawn_query_api(settings).await;
    let t = Tenant {
        owner: app.onboard("feed-life").await,
        app: &app,
    };
    let service = t.configured().await;
    let key = events_key(&t).await;

    // The booking's events are in the feed before it opens: under load they could take longer
    // to come than the stream's two seconds of life.
    let (status, booked) = t.book(&service, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201);
    let (status, _) = query
        .get(
            "/v1/bookings",
            &t.owner.access_token,
            booked["consistency_token"].as_str(),
        )
        .await;
    assert_eq!(status, 200);
    let mut stream = Stream::connect(&query.address, &key, Some("0")).await;
    let opened = tokio::time::Instant::now();
    let seen = stream.take(2).await;
    assert_eq!(seen.last().unwrap().id, 2);
    // The server ends it near its lifetime, whatever the client does.
    let end = tokio::time::timeout(Duration::from_secs(6), async {
        while stream.response.chunk().await.unwrap().is_some() {}
    })
    .await;
    assert!(end.is_ok(), "the stream outlived its lifetime");
    assert!(opened.elapsed() >= Duration::from_millis(1500));

    // What happened meanwhile comes with the reconnection, after the last event seen.
    let (status, _) = t.book(&service, &slot(12), "+34600000002", None).await;
    assert_eq!(status, 201);
    let mut resumed = Stream::connect(&query.address, &key, Some("2")).await;
    let rest = resumed.take(2).await;
    assert_eq!(
        rest.iter()
            .map(|e| (e.id, e.event.as_str()))
            .collect::<Vec<_>>(),
        [(3, "booking.created"), (4, "booking.confirmed")]
    );
}
