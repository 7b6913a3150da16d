//! Signed webhooks as a business's receiver sees them: its own events only, of the topics it
//! chose, in order, each signed with its endpoint's secret; a receiver that is down gets
//! everything once it is back, also across a restart of the projector; an endpoint failing for
//! three days is disabled and its owners emailed; an event is delivered again on request.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    deliverer, eventually, free_port, member_token, projector_settings, query_api_settings,
    spawn_command_api, spawn_projector, spawn_query_api,
};
use serde_json::{Value, json};
use smtp_sink::Sink;

/// One delivery as the receiver got it.
#[derive(Debug, Clone)]
struct Got {
    signature: String,
    event_id: String,
    seq: i64,
    topic: String,
    raw: Vec<u8>,
    body: Value,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    /// What it answers (200 unless set).
    answer: Arc<Mutex<Option<u16>>>,
}

impl Receiver {
    /// Listens on `port` until the returned handle is aborted.
    async fn listen(&self, port: u16) -> tokio::task::JoinHandle<()> {
        async fn take(
            State(r): State<Receiver>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            let h = |name: &str| headers[name].to_str().unwrap().to_owned();
            r.got.lock().unwrap().push(Got {
                signature: h("booking-signature"),
                event_id: h("booking-event-id"),
                seq: h("booking-event-seq").parse().unwrap(),
                topic: h("booking-topic"),
                raw: body.to_vec(),
                body: serde_json::from_slice(&body).unwrap(),
            });
            StatusCode::from_u16(r.answer.lock().unwrap().unwrap_or(200)).unwrap()
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let router = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(self.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        })
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// The topics received, once `n` have come (within 15 s).
    async fn wait_for(&self, n: usize) -> Vec<Got> {
        eventually(Duration::from_secs(15), || async {
            let got = self.got();
            (got.len() >= n).then_some(got)
        })
        .await
        .unwrap_or_else(|| panic!("only {:?} arrived", self.topics()))
    }

    fn topics(&self) -> Vec<(i64, String)> {
        self.got().into_iter().map(|g| (g.seq, g.topic)).collect()
    }
}

async fn register(t: &Tenant<'_>, url: &str, topics: Value) -> (String, String) {
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/webhook-endpoints",
            &[],
            Some(json!({"url": url, "topics": topics, "description": "Our CRM"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{secret}");
    (body["endpoint_id"].as_str().unwrap().to_owned(), secret)
}

fn signed(got: &Got, secret: &str) -> bool {
    projector::webhooks::verify(
        secret,
        &got.signature,
        &got.raw,
        Utc::now().timestamp(),
        300,
    )
}

#[tokio::test]
async fn each_business_receives_its_own_events_of_its_topics_signed_and_in_order() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let a = Tenant {
        owner: app.onboard("hooks-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("hooks-b").await,
        app: &app,
    };
    let (service_a, service_b) = (a.configured().await, b.configured().await);
    let (receiver_a, receiver_b) = (Receiver::default(), Receiver::default());
    let (port_a, port_b) = (free_port(), free_port());
    let _a = receiver_a.listen(port_a).await;
    let _b = receiver_b.listen(port_b).await;
    let (endpoint_a, secret_a) =
        register(&a, &format!("http://127.0.0.1:{port_a}/hook"), json!([])).await;
    let (_, secret_b) = register(
        &b,
        &format!("http://127.0.0.1:{port_b}/hook"),
        json!(["booking.cancelled"]),
    )
    .await;

    let (status, booked) = a.book(&service_a, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{booked}");
    let (status, booked_b) = b.book(&service_b, &slot(10), "+34600000002", None).await;
    assert_eq!(status, 201);
    let (status, _, body) = b
        .send(
            reqwest::Method::POST,
            &format!(
                "/v1/bookings/{}/cancel",
                booked_b["booking_id"].as_str().unwrap()
            ),
            &[],
            Some(json!({"reason": "ill"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let got = receiver_a.wait_for(2).await;
    assert_eq!(
        receiver_a.topics(),
        [
            (1, "booking.created".into()),
            (2, "booking.confirmed".into())
        ]
    );
    for g in &got {
        assert!(signed(g, &secret_a), "{g:?}");
        assert!(
            !signed(g, &secret_b),
            "another endpoint's secret must not verify"
        );
        assert_eq!(g.body["tenant_id"], a.owner.tenant_id.as_str());
        assert_eq!(g.body["id"], g.event_id.as_str());
        assert_eq!(g.body["type"], g.topic.as_str());
    }
    assert_eq!(got[0].body["data"]["booking_id"], booked["booking_id"]);
    // B asked for cancellations only: its booking's creation and confirmation are passed over.
    let got_b = receiver_b.wait_for(1).await;
    assert_eq!(receiver_b.topics(), [(3, "booking.cancelled".into())]);
    assert!(signed(&got_b[0], &secret_b));
    assert_eq!(got_b[0].body["tenant_id"], b.owner.tenant_id.as_str());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver_a.got().len(), 2, "nothing of B's reaches A");
    assert_eq!(receiver_b.got().len(), 1);

    // The endpoint and its delivery log, as the query API shows them (once the run that
    // delivered them is recorded): no secret.
    let endpoints = eventually(Duration::from_secs(10), || async {
        let (status, endpoints) = query
            .get("/v1/webhook-endpoints", &a.owner.access_token, None)
            .await;
        assert_eq!(status, 200, "{endpoints}");
        (endpoints[0]["next_seq"] == 3).then_some(endpoints)
    })
    .await
    .expect("the cursor is past both events");
    assert_eq!(endpoints.as_array().unwrap().len(), 1);
    assert_eq!(endpoints[0]["status"], "enabled");
    assert!(!endpoints.to_string().contains(&secret_a));
    let (status, log) = query
        .get(
            &format!("/v1/webhook-endpoints/{endpoint_a}/deliveries"),
            &a.owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|d| (d["seq"].as_i64().unwrap(), d["status"].as_str().unwrap()))
            .collect::<Vec<_>>(),
        [(2, "delivered"), (1, "delivered")]
    );
    assert_eq!(items[0]["response_status"], 200);
    assert_eq!(items[0]["attempts"], 1);
    // Another business's endpoint reads as absent.
    let (status, _) = query
        .get(
            &format!("/v1/webhook-endpoints/{endpoint_a}/deliveries"),
            &b.owner.access_token,
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Asked for again, event 1 is posted once more, with the same id.
    let (status, _, body) = a
        .send(
            reqwest::Method::POST,
            &format!("/v1/webhook-endpoints/{endpoint_a}/deliveries/1/retry"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let again = receiver_a.wait_for(3).await;
    assert_eq!(again[2].seq, 1);
    assert_eq!(again[2].event_id, again[0].event_id);
    assert!(signed(&again[2], &secret_a));
    let attempts = eventually(Duration::from_secs(5), || async {
        let (_, log) = query
            .get(
                &format!("/v1/webhook-endpoints/{endpoint_a}/deliveries"),
                &a.owner.access_token,
                None,
            )
            .await;
        let first = log["items"][1].clone();
        (first["attempts"] == 2).then_some(first)
    })
    .await;
    assert!(attempts.is_some(), "the log counts the second delivery");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(receiver_a.got().len(), 3, "a request is delivered once");
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_everything_in_order_once_back_across_a_restart() {
    let app = spawn_command_api().await;
    let projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("hooks-down").await,
        app: &app,
    };
    let service = t.configured().await;
    let receiver = Receiver::default();
    let port = free_port();
    let (endpoint, secret) =
        register(&t, &format!("http://127.0.0.1:{port}/hook"), json!([])).await;

    // Nobody listens: the first event is tried, and tried again.
    for hour in [9, 11] {
        let (status, body) = t.book(&service, &slot(hour), "+34600000001", None).await;
        assert_eq!(status, 201, "{body}");
    }
    let failing = eventually(Duration::from_secs(15), || async {
        let (_, log) = query
            .get(
                &format!("/v1/webhook-endpoints/{endpoint}/deliveries"),
                &t.owner.access_token,
                None,
            )
            .await;
        let item = log["items"][0].clone();
        (item["attempts"].as_i64() >= Some(2)).then_some(item)
    })
    .await
    .expect("the first event is retried");
    assert_eq!(failing["seq"], 1);
    assert_eq!(failing["status"], "retrying");
    assert!(
        failing["error"]
            .as_str()
            .unwrap()
            .starts_with("could not connect"),
        "{failing}"
    );
    assert!(failing["next_attempt_at"].is_string());

    // The projector restarts while the receiver is still down, and a third booking comes.
    projector.shutdown().await;
    let (status, _) = t.book(&service, &slot(13), "+34600000002", None).await;
    assert_eq!(status, 201);
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Back: a server that first answers 503, then 200.
    *receiver.answer.lock().unwrap() = Some(503);
    let _listening = receiver.listen(port).await;
    receiver.wait_for(1).await;
    *receiver.answer.lock().unwrap() = None;
    let got = receiver.wait_for(7).await;
    let delivered: Vec<(i64, String)> = receiver.topics();
    // The 503s were of event 1 (retried in place); then every event once, in order.
    let first_ok = delivered.iter().rposition(|(seq, _)| *seq == 1).unwrap();
    assert_eq!(
        delivered[first_ok..]
            .iter()
            .map(|(seq, _)| *seq)
            .collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(got.iter().all(|g| signed(g, &secret)));
    // The run's deliveries are recorded together once it ends.
    let endpoints = eventually(Duration::from_secs(10), || async {
        let (_, endpoints) = query
            .get("/v1/webhook-endpoints", &t.owner.access_token, None)
            .await;
        (endpoints[0]["next_seq"] == 7).then_some(endpoints)
    })
    .await
    .expect("the cursor is past every event");
    assert_eq!(endpoints[0]["failing_since"], Value::Null);
}

#[tokio::test]
async fn an_endpoint_failing_for_three_days_is_disabled_its_owner_emailed_and_resumes_when_enabled()
{
    let sink = Sink::new();
    let smtp_port = sink.clone().spawn().await;
    let app = spawn_command_api().await;
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.notifier.smtp_url = format!("smtp://127.0.0.1:{smtp_port}").into();
    settings.notifier.enabled = true;
    // This test moves time itself.
    settings.webhooks.enabled = false;
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("hooks-gone").await,
        app: &app,
    };
    let service = t.configured().await;
    let receiver = Receiver::default();
    *receiver.answer.lock().unwrap() = Some(500);
    let port = free_port();
    let _listening = receiver.listen(port).await;
    let (endpoint, _) = register(&t, &format!("http://127.0.0.1:{port}/hook"), json!([])).await;
    let (status, _) = t.book(&service, &slot(9), "+34600000001", None).await;
    assert_eq!(status, 201);
    let deliverer = deliverer(&app.db);
    let start = Utc::now();
    eventually(Duration::from_secs(10), || async {
        let ticked = deliverer.run_once(start).await.unwrap();
        (ticked.failed == 1).then_some(())
    })
    .await
    .expect("the first event is tried");

    // Not due again before its backoff; due after it, and every retry fails.
    assert_eq!(deliverer.run_once(start).await.unwrap().failed, 0);
    let mut now = start;
    for _ in 0..3 {
        now += chrono::Duration::hours(7);
        assert_eq!(deliverer.run_once(now).await.unwrap().failed, 1);
    }
    let ticked = deliverer
        .run_once(start + chrono::Duration::days(3) + chrono::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!((ticked.failed, ticked.disabled), (1, 1));
    assert_eq!(receiver.topics().iter().filter(|(s, _)| *s == 1).count(), 5);

    // Disabled, with why; its owner is told by email.
    let view = eventually(Duration::from_secs(10), || async {
        let (_, view) = query
            .get(
                &format!("/v1/webhook-endpoints/{endpoint}"),
                &t.owner.access_token,
                None,
            )
            .await;
        (view["status"] == "disabled").then_some(view)
    })
    .await
    .expect("the endpoint is disabled");
    assert_eq!(view["disabled_reason"]["kind"], "failing");
    assert_eq!(view["disabled_reason"]["last_error"], "HTTP 500");
    let mail = eventually(Duration::from_secs(10), || async {
        e2e_tests::mails_to(&sink, "owner@hooks-gone.example")
            .into_iter()
            .next()
    })
    .await
    .expect("the owner is emailed");
    assert!(
        mail.subject.contains("webhook deliveries"),
        "{}",
        mail.subject
    );
    assert!(
        mail.body.contains(&format!("127.0.0.1:{port}/hook")),
        "{}",
        mail.body
    );
    assert!(mail.body.contains("HTTP 500"), "{}", mail.body);
    let (_, log) = query
        .get(
            &format!("/v1/webhook-endpoints/{endpoint}/deliveries?status=failed"),
            &t.owner.access_token,
            None,
        )
        .await;
    assert_eq!(log["items"][0]["seq"], 1, "{log}");

    // Disabled, nothing is posted; the receiver fixed and the endpoint enabled, it resumes
    // at the event that failed.
    let later = start + chrono::Duration::days(4);
    assert_eq!(deliverer.run_once(later).await.unwrap(), Default::default());
    *receiver.answer.lock().unwrap() = None;
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/webhook-endpoints/{endpoint}/enable"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let delivered = eventually(Duration::from_secs(10), || async {
        let ticked = deliverer.run_once(later).await.unwrap();
        (ticked.delivered > 0).then_some(ticked.delivered)
    })
    .await
    .expect("it resumes");
    assert_eq!(delivered, 2);
    let seqs: Vec<i64> = receiver.topics().iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs[seqs.len() - 2..], [1, 2]);
}

#[tokio::test]
async fn bad_registrations_weak_roles_and_other_tenants_ids_are_refused() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("hooks-refusals").await,
        app: &app,
    };
    let other = Tenant {
        owner: app.onboard("hooks-other").await,
        app: &app,
    };
    for (body, field) in [
        (json!({"url": "ftp://hooks.example.com/x"}), "url"),
        (json!({"url": "https://user:pw@hooks.example.com/x"}), "url"),
        (json!({"url": "not a url"}), "url"),
        (
            json!({"url": "https://hooks.example.com/x", "topics": ["booking.created", "booking.eaten"]}),
            "topics[1]",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "description": "x".repeat(201)}),
            "description",
        ),
        (
            json!({"url": "https://hooks.example.com/x", "secret": "mine"}),
            "secret",
        ),
    ] {
        let (status, _, problem) = t
            .send(
                reqwest::Method::POST,
                "/v1/webhook-endpoints",
                &[],
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body} -> {problem}");
        assert!(
            problem["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"].as_str().unwrap().contains(field)),
            "{body} -> {problem}"
        );
    }
    let superuser = app.db.superuser_url_pool().await;
    let count = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from events where stream_type = 'webhook_endpoint'",
        )
        .fetch_one(&superuser)
        .await
        .unwrap()
    };
    assert_eq!(count().await, 0, "a refused registration appends nothing");

    let tenant_id: uuid::Uuid = t.owner.tenant_id.parse().unwrap();
    let staff = member_token(&superuser, tenant_id, domain::access::Role::Staff).await;
    let (status, _, _) = t
        .send_as(
            &staff,
            reqwest::Method::POST,
            "/v1/webhook-endpoints",
            &[],
            Some(json!({"url": "https://hooks.example.com/x"})),
        )
        .await;
    assert_eq!(status, 403);

    let (endpoint, _) = register(&t, "https://hooks.example.com/x", json!([])).await;
    for path in [
        format!("/v1/webhook-endpoints/{endpoint}/disable"),
        format!("/v1/webhook-endpoints/{endpoint}/enable"),
        format!("/v1/webhook-endpoints/{endpoint}/deliveries/1/retry"),
        "/v1/webhook-endpoints/not-an-id/disable".into(),
    ] {
        let (status, _, body) = other.send(reqwest::Method::POST, &path, &[], None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _, _) = other
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/webhook-endpoints/{endpoint}/enable"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 409, "already enabled: {body}");
    let (status, _, _) = t
        .send(
            reqwest::Method::DELETE,
            &format!("/v1/webhook-endpoints/{endpoint}"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _, _) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/webhook-endpoints/{endpoint}/disable"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 404, "a deleted endpoint is gone");
}

#[tokio::test]
async fn a_deliverer_on_a_public_network_refuses_loopback_and_private_receivers() {
    let app = spawn_command_api().await;
    let _projector = {
        let mut settings = projector_settings(&app.db, &app.nats);
        settings.webhooks.enabled = false;
        spawn_projector(settings).await
    };
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("hooks-private").await,
        app: &app,
    };
    let service = t.configured().await;
    let receiver = Receiver::default();
    let port = free_port();
    let _listening = receiver.listen(port).await;
    let (endpoint, _) = register(&t, &format!("http://127.0.0.1:{port}/hook"), json!([])).await;
    let (local, _) = register(&t, &format!("http://localhost:{port}/hook"), json!([])).await;
    let (status, _) = t.book(&service, &slot(9), "+34600000001", None).await;
    assert_eq!(status, 201);
    let public_only = projector::webhooks::Deliverer::new(
        e2e_tests::use_cases(&app.db),
        sqlx::postgres::PgPoolOptions::new()
            .connect_lazy(&app.db.operator_url())
            .unwrap(),
        projector::webhooks::DelivererConfig::default(),
    )
    .unwrap();
    eventually(Duration::from_secs(10), || async {
        let ticked = public_only.run_once(Utc::now()).await.unwrap();
        (ticked.failed == 2).then_some(())
    })
    .await
    .expect("both are tried");
    assert!(
        receiver.got().is_empty(),
        "nothing reaches a loopback receiver"
    );
    for (id, error) in [
        (endpoint, "127.0.0.1 is not a public address"),
        (local, "no public address"),
    ] {
        let (_, log) = query
            .get(
                &format!("/v1/webhook-endpoints/{id}/deliveries"),
                &t.owner.access_token,
                None,
            )
            .await;
        let got = log["items"][0]["error"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(got.contains(error), "{id}: {log}");
    }
}
