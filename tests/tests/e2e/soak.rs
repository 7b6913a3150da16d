//! The kill -9 soak: the platform under mixed load (onboarding, configuration edits, bookings
//! and cancellations over the API, WhatsApp conversations with their status callbacks, queries)
//! while a driver SIGKILLs one of its services every few seconds and restarts it, kills NATS
//! once and Redis once, and cuts Postgres off for a few seconds (a `testkit::TcpGate` in front of
//! it closes every connection and drops new ones).
//!
//! What must hold at the end: every acknowledged command is in the log; no two active bookings
//! of a business overlap; no reply is sent twice (only a send cut off mid-call may be missing,
//! recorded as an unknown outcome) and a customer who heard nothing back is one of those; no
//! answer was a 500; the read models equal a rebuild; nothing is dead-lettered.
//!
//! It runs for `SOAK_SECONDS` (45 in the suite); `just soak` runs it for ten minutes.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use e2e_tests::stack::{APP_SECRET, Business, Platform, Routes};
use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};
use testkit::{NatsServer, RedisServer, TcpGate};

/// How long a request is sent again before the soak calls it unsettled: past the idempotency
/// claim a killed command API leaves behind (the request time limit and 5 s) and any outage
/// the driver causes.
const SETTLE: Duration = Duration::from_secs(120);
/// How long a customer waits for the bot's next message before calling it silence.
const PATIENCE: Duration = Duration::from_secs(45);

/// The platform's addresses and what the load has seen acknowledged.
struct Load {
    command: String,
    query: String,
    fake: String,
    client: reqwest::Client,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
}

#[derive(Default, Debug)]
struct Ledger {
    /// Tenants whose onboarding was answered 201.
    onboarded: Vec<String>,
    /// (tenant, service id) answered 201.
    services: Vec<(String, String)>,
    /// (tenant, the configuration's version) answered 200.
    configured: Vec<(String, i64)>,
    /// (tenant, booking id) answered 201, and those whose cancellation was answered 200.
    booked: Vec<(String, String)>,
    cancelled: Vec<(String, String)>,
    /// (tenant, customer, wamid) of every message the webhook answered 200.
    messages: Vec<(String, String, String)>,
    /// Messages Meta (the fake) gave up on: the webhook never answered 200.
    unacknowledged: Vec<String>,
    /// Customers who waited [`PATIENCE`] for an answer that did not come.
    silences: Vec<String>,
    /// Customers whose conversation ended with a booking.
    booked_on_whatsapp: usize,
    /// Requests refused for a reason a retry would repeat (a time taken meanwhile, ...).
    refused: usize,
    /// Requests that got no settled answer within [`SETTLE`].
    unsettled: Vec<String>,
    /// Any 500: a bug, whatever the fault.
    server_errors: Vec<String>,
    queries: usize,
    attempts: usize,
    /// Retries answered 409 "in progress": the key's first request was cut off by a SIGKILL
    /// and its claim holds until the request time limit (30 s) and 5 s have passed.
    waited_on_claims: usize,
}

impl Load {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn note(&self, f: impl FnOnce(&mut Ledger)) {
        f(&mut self.ledger.lock().expect("the ledger"));
    }

    /// Sends a request again (the same idempotency key and body) until an answer settles it:
    /// a 2xx, or a 4xx a retry would repeat. A refused connection, 408, 409 "in progress", 429
    /// and 5xx are tried again; a 500 is also recorded (it is a bug, fault or not).
    async fn settle(
        &self,
        what: &str,
        request: impl Fn() -> RequestBuilder,
    ) -> Option<(u16, reqwest::header::HeaderMap, Value)> {
        let deadline = Instant::now() + SETTLE;
        while Instant::now() < deadline {
            self.note(|l| l.attempts += 1);
            let wait = match request().send().await {
                Err(_) => Duration::from_millis(200),
                Ok(response) => {
                    let status = response.status().as_u16();
                    let headers = response.headers().clone();
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    let in_progress = status == 409
                        && body["detail"]
                            .as_str()
                            .is_some_and(|d| d.contains("in progress"));
                    if status == 500 {
                        self.note(|l| l.server_errors.push(format!("{what}: {body}")));
                    }
                    if in_progress {
                        self.note(|l| l.waited_on_claims += 1);
                    }
                    if !(in_progress || matches!(status, 408 | 429) || status >= 500) {
                        return Some((status, headers, body));
                    }
                    Duration::from_millis(if status == 429 { 1_000 } else { 300 })
                }
            };
            tokio::time::sleep(wait).await;
        }
        self.note(|l| l.unsettled.push(what.to_owned()));
        None
    }

    fn to_command(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.command));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

fn refusal(what: &str, status: u16, body: &Value) -> String {
    format!("{what}: {status} {body}")
}

/// New businesses sign up, add a service and configure their bot, one after the other.
async fn onboarding(load: Arc<Load>) {
    while !load.stopped() {
        let slug = format!("soak-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        let body = e2e_tests::CommandApp::onboarding(&slug);
        let answer = load
            .settle("onboarding", || {
                load.to_command(Method::POST, "/v1/tenants", None)
                    .json(&body)
            })
            .await;
        let (token, tenant) = match answer {
            Some((201, _, b)) => (
                b["access_token"].as_str().unwrap_or_default().to_owned(),
                b["tenant"]["id"].as_str().unwrap_or_default().to_owned(),
            ),
            // The first attempt committed and its answer was lost: the retry finds the slug
            // taken. Acknowledged to nobody, so nothing to check.
            Some((409, _, _)) => {
                load.note(|l| l.refused += 1);
                continue;
            }
            Some((status, _, b)) => panic!("{}", refusal("onboarding", status, &b)),
            None => continue,
        };
        load.note(|l| l.onboarded.push(tenant.clone()));
        let key = uuid::Uuid::new_v4().to_string();
        if let Some((status, _, b)) = load
            .settle("a service", || {
                load.to_command(Method::POST, "/v1/services", Some(&token))
                    .header("idempotency-key", &key)
                    .json(&e2e_tests::tenant::haircut())
            })
            .await
        {
            assert_eq!(status, 201, "{}", refusal("a service", status, &b));
            let id = b["service_id"].as_str().unwrap_or_default().to_owned();
            load.note(|l| l.services.push((tenant.clone(), id)));
        }
        configure(&load, &tenant, &token, 60).await;
        tokio::time::sleep(Duration::from_millis(rand::random_range(500..1_500))).await;
    }
}

/// `PUT /v1/bot-config` at the version the query API shows (the last one acknowledged may be
/// ahead of it, or behind a change whose answer was lost): a 412 is asked again.
async fn configure(load: &Load, tenant: &str, token: &str, min_notice: u32) {
    let mut settings = e2e_tests::tenant::settings();
    settings["rules"]["min_notice_minutes"] = json!(min_notice);
    for _ in 0..20 {
        let version = current_version(load, token).await;
        let answer = load
            .settle("a configuration", || {
                load.to_command(Method::PUT, "/v1/bot-config", Some(token))
                    .header("if-match", format!("\"{version}\""))
                    .json(&settings)
            })
            .await;
        match answer {
            Some((200, headers, _)) => {
                let acknowledged = headers["etag"]
                    .to_str()
                    .ok()
                    .and_then(|e| e.trim_matches('"').parse().ok())
                    .expect("a version as ETag");
                load.note(|l| l.configured.push((tenant.to_owned(), acknowledged)));
                return;
            }
            Some((412, _, _)) => tokio::time::sleep(Duration::from_millis(200)).await,
            Some((status, _, b)) => panic!("{}", refusal("a configuration", status, &b)),
            None => return,
        }
    }
}

async fn current_version(load: &Load, token: &str) -> i64 {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if let Ok(response) = load
            .client
            .get(format!("{}/v1/bot-config", load.query))
            .bearer_auth(token)
            .send()
            .await
        {
            match response.status().as_u16() {
                200 => {
                    let body: Value = response.json().await.unwrap_or(Value::Null);
                    return body["version"].as_i64().expect("a version");
                }
                404 => return 0, // not projected yet
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    0
}

/// A business's staff books over the API at random times and cancels one booking in three.
async fn api_bookings(load: Arc<Load>, business: Arc<Business>) {
    let mut n = 0u32;
    while !load.stopped() {
        n += 1;
        let day = (Utc::now() + chrono::Duration::days(rand::random_range(2..28))).date_naive();
        let start = format!(
            "{day}T{:02}:{:02}:00Z",
            rand::random_range(8..19),
            15 * rand::random_range(0..4)
        );
        let phone = format!("+3469{:07}", rand::random_range(0..10_000_000));
        let body = json!({"service_id": business.service_id, "start": start,
            "customer": {"phone": phone, "name": "Soak"}});
        let key = uuid::Uuid::new_v4().to_string();
        let answer = load
            .settle("a booking", || {
                load.to_command(Method::POST, "/v1/bookings", Some(&business.token))
                    .header("idempotency-key", &key)
                    .json(&body)
            })
            .await;
        match answer {
            Some((201, _, b)) => {
                let id = b["booking_id"].as_str().expect("an id").to_owned();
                load.note(|l| l.booked.push((business.tenant_id.clone(), id.clone())));
                if n.is_multiple_of(3) {
                    cancel(&load, &business, &id).await;
                }
            }
            Some((409, _, b))
                if b["type"]
                    .as_str()
                    .is_some_and(|t| t.ends_with("slot-taken")) =>
            {
                load.note(|l| l.refused += 1);
            }
            Some((status, _, b)) => panic!("{}", refusal("a booking", status, &b)),
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(rand::random_range(50..300))).await;
    }
}

async fn cancel(load: &Load, business: &Business, id: &str) {
    let key = uuid::Uuid::new_v4().to_string();
    let path = format!("/v1/bookings/{id}/cancel");
    let answer = load
        .settle("a cancellation", || {
            load.to_command(Method::POST, &path, Some(&business.token))
                .header("idempotency-key", &key)
                .json(&json!({"reason": "soak"}))
        })
        .await;
    match answer {
        Some((200, _, _)) => load.note(|l| {
            l.cancelled
                .push((business.tenant_id.clone(), id.to_owned()))
        }),
        Some((status, _, b)) => panic!("{}", refusal("a cancellation", status, &b)),
        None => {}
    }
}

/// Customers write to a business on WhatsApp, one after the other, each from "hi" to a
/// booking taking the first choice each time (or until the bot falls silent).
async fn customers(load: Arc<Load>, business: Arc<Business>, worker: usize) {
    let mut round = 0;
    while !load.stopped() {
        round += 1;
        let phone = format!("3475{worker:03}{round:05}");
        let mut chat = Chat {
            load: &load,
            business: &business,
            phone,
            seen: 0,
            last: Vec::new(),
        };
        if !chat.send(json!({"text": "hi"})).await {
            continue;
        }
        for _ in 0..10 {
            if load.stopped() || !chat.tap_first().await {
                break;
            }
            if chat.text().contains("Booked!") {
                load.note(|l| l.booked_on_whatsapp += 1);
                break;
            }
        }
    }
}

struct Chat<'a> {
    load: &'a Load,
    business: &'a Business,
    phone: String,
    seen: usize,
    last: Vec<Value>,
}

impl Chat<'_> {
    /// Sends a message through the fake (which redelivers it until the webhook answers 200)
    /// and waits for the bot's answer. False when it was not acknowledged or not answered.
    async fn send(&mut self, mut message: Value) -> bool {
        message["phone_number_id"] = json!(self.business.number);
        message["from"] = json!(self.phone);
        let delivered: Option<Value> = async {
            let response = self
                .load
                .client
                .post(format!("{}/_fake/inbound", self.load.fake))
                .json(&message)
                .send()
                .await
                .ok()?;
            response.json().await.ok()
        }
        .await;
        let Some(delivered) = delivered.filter(|d| d["webhook_status"] == 200) else {
            let phone = self.phone.clone();
            self.load.note(|l| l.unacknowledged.push(phone));
            return false;
        };
        let wamid = delivered["wamid"].as_str().expect("a wamid").to_owned();
        self.load.note(|l| {
            l.messages
                .push((self.business.tenant_id.clone(), self.phone.clone(), wamid))
        });
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let Some(received) = self.received().await else {
                continue;
            };
            if received.len() > self.seen {
                // Let the rest of this turn's replies arrive.
                tokio::time::sleep(Duration::from_millis(300)).await;
                let received = self.received().await.unwrap_or(received);
                self.last = received[self.seen..].to_vec();
                self.seen = received.len();
                return true;
            }
        }
        let phone = self.phone.clone();
        self.load.note(|l| l.silences.push(phone));
        false
    }

    /// What the fake received for this customer so far; `None` if it did not answer.
    async fn received(&self) -> Option<Vec<Value>> {
        let response = self
            .load
            .client
            .get(format!("{}/_fake/messages", self.load.fake))
            .query(&[("to", &self.phone)])
            .send()
            .await
            .ok()?;
        Some(response.json().await.unwrap_or_default())
    }

    /// Taps the first button or list row of the bot's last interactive message.
    async fn tap_first(&mut self) -> bool {
        let Some(interactive) = self
            .last
            .iter()
            .rev()
            .find(|m| m["body"]["type"] == "interactive")
            .map(|m| m["body"]["interactive"].clone())
        else {
            return false;
        };
        let message = if interactive["type"] == "button" {
            let b = &interactive["action"]["buttons"][0]["reply"];
            json!({"button_reply": {"id": b["id"], "title": b["title"]}})
        } else {
            let r = &interactive["action"]["sections"][0]["rows"][0];
            json!({"list_reply": {"id": r["id"], "title": r["title"]}})
        };
        self.send(message).await
    }

    fn text(&self) -> String {
        self.last
            .iter()
            .filter_map(|m| {
                m["body"]["text"]["body"]
                    .as_str()
                    .or(m["body"]["interactive"]["body"]["text"].as_str())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The businesses' reads, all the while.
async fn queries(load: Arc<Load>, businesses: Vec<Arc<Business>>) {
    let paths = [
        "/v1/bookings",
        "/v1/conversations",
        "/v1/bot-config",
        "/v1/services",
        "/v1/usage",
        "/v1/tenant",
    ];
    while !load.stopped() {
        for business in &businesses {
            for path in paths {
                let answer = load
                    .client
                    .get(format!("{}{path}", load.query))
                    .bearer_auth(&business.token)
                    .send()
                    .await;
                if let Ok(response) = answer {
                    let status = response.status().as_u16();
                    if status == 500 {
                        let body = response.text().await.unwrap_or_default();
                        load.note(|l| l.server_errors.push(format!("GET {path}: {body}")));
                    }
                    load.note(|l| l.queries += 1);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the driver did to the platform.
#[derive(Default, Debug)]
struct Faults {
    kills: Vec<&'static str>,
    nats_restarts: usize,
    redis_restarts: usize,
    postgres_outages: usize,
}

/// The Postgres the tests use (`BOOKING_TEST_ADMIN_URL`'s host and port).
fn postgres_address() -> std::net::SocketAddr {
    let admin = std::env::var("BOOKING_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let url = reqwest::Url::parse(&admin).expect("a database URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    std::net::ToSocketAddrs::to_socket_addrs(&(host, url.port().unwrap_or(5432)))
        .ok()
        .and_then(|mut a| a.next())
        .expect("Postgres's address")
}

const KILLABLE: [&str; 3] = ["command-api", "query-api", "projector"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_platform_survives_kill_9_under_load() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(45);
    let mut nats = NatsServer::start();
    let mut redis = RedisServer::start();
    let postgres = TcpGate::start(postgres_address()).await;
    let namespace = nats::Namespace::unique();
    let routes = Routes {
        redis_url: Some(redis.url()),
        postgres_port: Some(postgres.port()),
        ..Routes::default()
    };
    let mut p = Platform::start_with(&nats.url(), namespace.prefix(), "file", routes).await;
    let soak = Soak::start(&p).await;
    // The faults: a service SIGKILLed every few seconds and restarted; NATS, Redis and Postgres
    // each go once, at a quarter, a half and three quarters of the run.
    let started = Instant::now();
    let run = Duration::from_secs(seconds);
    let mut faults = Faults::default();
    let mut once = [run / 4, run / 2, run * 3 / 4].into_iter().peekable();
    while started.elapsed() < run {
        tokio::time::sleep(Duration::from_millis(rand::random_range(2_000..4_000))).await;
        match once.peek() {
            Some(at) if started.elapsed() >= *at => match once.next().expect("peeked") {
                at if at == run / 4 => {
                    nats.kill();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    nats.restart();
                    faults.nats_restarts += 1;
                }
                at if at == run / 2 => {
                    redis.kill();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    redis.restart();
                    faults.redis_restarts += 1;
                }
                _ => {
                    postgres.cut();
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    postgres.restore();
                    faults.postgres_outages += 1;
                }
            },
            _ => {
                let victim = KILLABLE[rand::random_range(0..KILLABLE.len())];
                p.kill(victim).await;
                tokio::time::sleep(Duration::from_millis(rand::random_range(100..1_000))).await;
                p.spawn(victim).await;
                faults.kills.push(victim);
            }
        }
    }
    soak.finish(&p, seconds, &faults).await;
}

/// The load on a platform, running.
struct Soak {
    load: Arc<Load>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Soak {
    /// Three businesses on Pro, their customers on WhatsApp, bookings over the API, sign-ups,
    /// configuration edits and queries, all at once until [`Soak::finish`].
    async fn start(p: &Platform) -> Self {
        // Like Meta, who keeps redelivering a webhook for days, rather than the fake's few tries.
        let configured = p
            .client
            .post(format!("{}/_fake/config", p.fake))
            .json(
                &json!({"webhook_url": format!("{}/webhooks/whatsapp", p.command),
                "app_secret": APP_SECRET, "status_webhooks": true, "redeliver_for_ms": 90_000}),
            )
            .send()
            .await
            .expect("the fake answers");
        assert_eq!(configured.status().as_u16(), 204);
        let businesses: Vec<Arc<Business>> = futures::future::join_all((0..3).map(|i| {
            let p = &p;
            async move {
                Arc::new(
                    p.business(
                        &format!("soak-salon-{i}"),
                        &format!("{}", 100_000_000_300_000u64 + i),
                    )
                    .await,
                )
            }
        }))
        .await;
        // On Pro: no monthly cap on bookings (the trial's 100 would be used up in a minute).
        for business in &businesses {
            let upgraded = p
                .client
                .post(format!("{}/v1/billing/plan", p.command))
                .bearer_auth(&business.token)
                .json(&json!({"plan": "pro"}))
                .send()
                .await
                .expect("the command API answers");
            assert_eq!(upgraded.status().as_u16(), 200);
        }
        let load = Arc::new(Load {
            command: p.command.clone(),
            query: p.query.clone(),
            fake: p.fake.clone(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .build()
                .expect("a client"),
            stop: AtomicBool::new(false),
            ledger: Mutex::new(Ledger::default()),
        });

        let mut workers = vec![
            tokio::spawn(onboarding(load.clone())),
            tokio::spawn(queries(load.clone(), businesses.clone())),
        ];
        for (i, business) in businesses.iter().enumerate() {
            workers.push(tokio::spawn(api_bookings(load.clone(), business.clone())));
            for c in 0..2 {
                workers.push(tokio::spawn(customers(
                    load.clone(),
                    business.clone(),
                    10 * i + c,
                )));
            }
        }
        // Configuration edits on the businesses taking bookings: the minimum notice toggles.
        workers.push(tokio::spawn({
            let (load, businesses) = (load.clone(), businesses.clone());
            async move {
                let mut n = 0;
                while !load.stopped() {
                    n += 1;
                    let b = &businesses[n % businesses.len()];
                    configure(
                        &load,
                        &b.tenant_id,
                        &b.token,
                        if n % 2 == 0 { 60 } else { 45 },
                    )
                    .await;
                    tokio::time::sleep(Duration::from_millis(700)).await;
                }
            }
        }));
        Soak { load, workers }
    }

    /// Stops the load and checks what must hold whatever the faults were.
    async fn finish(self, p: &Platform, seconds: u64, faults: &impl std::fmt::Debug) {
        let Soak { load, workers } = self;
        load.stop.store(true, Ordering::Relaxed);
        for worker in workers {
            worker.await.expect("a load worker ends without a panic");
        }
        let ledger = std::mem::take(&mut *load.ledger.lock().expect("the ledger"));
        eprintln!("soak: {seconds} s, {faults:?}");
        eprintln!(
            "soak: {} onboarded, {} services, {} configurations, {} API bookings ({} cancelled), \
             {} booked on WhatsApp, {} messages acknowledged, {} refused, {} queries, {} attempts \
             ({} answered 409 in progress)",
            ledger.onboarded.len(),
            ledger.services.len(),
            ledger.configured.len(),
            ledger.booked.len(),
            ledger.cancelled.len(),
            ledger.booked_on_whatsapp,
            ledger.messages.len(),
            ledger.refused,
            ledger.queries,
            ledger.attempts,
            ledger.waited_on_claims,
        );
        let mut server_errors = std::collections::BTreeMap::<&str, usize>::new();
        for error in &ledger.server_errors {
            *server_errors.entry(error).or_default() += 1;
        }
        assert!(server_errors.is_empty(), "500s: {server_errors:#?}");
        assert!(
            ledger.unsettled.is_empty(),
            "requests never settled: {:?}",
            ledger.unsettled
        );
        assert!(
            ledger.unacknowledged.is_empty(),
            "messages the webhook never took: {:?}",
            ledger.unacknowledged
        );
        assert!(
            !ledger.booked.is_empty()
                && !ledger.messages.is_empty()
                && !ledger.onboarded.is_empty(),
            "the load did something: {ledger:?}"
        );

        let log = p.db.superuser_url_pool().await;
        // Every acknowledged command is in the log, once.
        let mut acknowledged: Vec<(&str, &str, &str)> = Vec::new();
        const SIGN_UP: &str = "select count(*) from events where tenant_id = $1::uuid
            and stream_type = 'tenant' and stream_id = $2 and version = 1";
        const SERVICE: &str = "select count(*) from events where tenant_id = $1::uuid
            and event_type = 'ServiceAdded' and payload->'service'->>'id' = $2";
        const CONFIGURATION: &str = "select count(*) from events where tenant_id = $1::uuid
            and stream_type = 'bot_config' and version = $2::int";
        const BOOKING: &str = "select count(*) from events where tenant_id = $1::uuid
            and stream_type = 'booking' and stream_id = $2 and event_type = 'AppointmentRequested'";
        const CANCELLATION: &str = "select count(*) from events where tenant_id = $1::uuid
            and stream_type = 'booking' and stream_id = $2 and event_type = 'AppointmentCancelled'";
        const MESSAGE: &str = "select count(*) from events where tenant_id = $1::uuid
            and event_type = 'MessageReceived' and payload->>'wamid' = $2";
        let versions: Vec<(String, String)> = ledger
            .configured
            .iter()
            .map(|(t, v)| (t.clone(), v.to_string()))
            .collect();
        acknowledged.extend(
            ledger
                .onboarded
                .iter()
                .map(|t| (SIGN_UP, t.as_str(), t.as_str())),
        );
        acknowledged.extend(
            ledger
                .services
                .iter()
                .map(|(t, s)| (SERVICE, t.as_str(), s.as_str())),
        );
        acknowledged.extend(
            versions
                .iter()
                .map(|(t, v)| (CONFIGURATION, t.as_str(), v.as_str())),
        );
        acknowledged.extend(
            ledger
                .booked
                .iter()
                .map(|(t, b)| (BOOKING, t.as_str(), b.as_str())),
        );
        acknowledged.extend(
            ledger
                .cancelled
                .iter()
                .map(|(t, b)| (CANCELLATION, t.as_str(), b.as_str())),
        );
        acknowledged.extend(
            ledger
                .messages
                .iter()
                .map(|(t, _, m)| (MESSAGE, t.as_str(), m.as_str())),
        );
        for (sql, tenant, key) in acknowledged {
            let n: i64 = sqlx::query_scalar(sql)
                .bind(tenant)
                .bind(key)
                .fetch_one(&log)
                .await
                .expect("a count");
            assert_eq!(n, 1, "{key} of {tenant} was acknowledged: {sql}");
        }

        // Every reply gets an outcome, and none is sent twice (only a send the SIGKILL cut off
        // mid-call may be missing at the fake).
        let settled = p.replies_settled(Duration::from_secs(120)).await;
        let total = |f: fn(&e2e_tests::stack::Replies) -> i64| settled.iter().map(f).sum::<i64>();
        let (decided, sent, unknown, delivered) = (
            total(|r| r.decided),
            total(|r| r.sent),
            total(|r| r.unknown),
            total(|r| r.delivered),
        );
        eprintln!(
            "soak: {decided} replies decided, {sent} sent, {unknown} with an unknown outcome, \
             {delivered} at the fake, {} silences",
            ledger.silences.len()
        );
        // A customer who heard nothing back is one whose reply's send failed.
        for customer in &ledger.silences {
            let failed = settled
                .iter()
                .find(|r| r.customer.trim_start_matches('+') == customer)
                .map_or(0, |r| r.failed);
            assert!(failed > 0, "{customer} waited for an answer in silence");
        }

        // No two active bookings of a business overlap.
        if !e2e_tests::projections_caught_up(&log, Duration::from_secs(60)).await {
            eprintln!(
                "soak: the projections have not caught up in 60 s; the pipeline:{}",
                p.pipeline_state().await
            );
        }
        e2e_tests::wait_for_projections(&log).await;
        assert_eq!(
            e2e_tests::overlapping_bookings(&log).await,
            0,
            "double bookings"
        );
        let dead: i64 = sqlx::query_scalar("select count(*) from rm_dead_letters")
            .fetch_one(&log)
            .await
            .expect("the dead letters");
        assert_eq!(dead, 0, "dead letters");
        e2e_tests::assert_read_models_equal_a_rebuild(&p.db, &log).await;
        let logged: i64 = sqlx::query_scalar("select count(*) from events")
            .fetch_one(&log)
            .await
            .expect("the log's size");
        eprintln!(
            "soak: the log holds {logged} events, the stream {} messages",
            stream_messages(
                &p.nats_url,
                &nats::Namespace::with_prefix(&p.namespace).expect("the platform's namespace")
            )
            .await
        );
    }
}

/// What the cluster's driver did.
#[derive(Default, Debug)]
struct ClusterFaults {
    nats_nodes_killed: usize,
    /// The projector that led the relay when it was killed, and how long the other took to
    /// take over.
    relay_leader_killed: Option<(&'static str, Duration)>,
    command_apis_killed: usize,
}

/// How many messages the events stream holds, as the node at `url` reports it (asked again
/// while the stream elects a new leader after a node died).
async fn stream_messages(url: &str, namespace: &nats::Namespace) -> u64 {
    let js = async_nats::jetstream::new(testkit::connect_as(url, "operator").await);
    e2e_tests::eventually(Duration::from_secs(20), || async {
        let mut stream = js.get_stream(namespace.events_stream()).await.ok()?;
        Some(stream.info().await.ok()?.state.messages)
    })
    .await
    .expect("the events stream's state")
}

/// The relay's lines of the metrics of the projector at `url` (empty if it does not answer).
async fn relay_metrics(url: &str) -> String {
    let Ok(response) = reqwest::get(format!("{url}/metrics")).await else {
        return String::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| line.starts_with("relay_"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether the projector at `url` publishes now (its relay leads).
async fn leading(url: &str) -> bool {
    relay_metrics(url)
        .await
        .lines()
        .filter_map(|line| line.strip_prefix("relay_leading ")?.parse::<f64>().ok())
        .any(|value| value == 1.0)
}

/// The soak's load on the cluster topology (`deploy/`: two command APIs behind HAProxy, two
/// projectors electing one relay leader, a 3-node JetStream cluster with the stream on all
/// three), while a NATS node dies and stays down a while, the relay's leader is SIGKILLed, and
/// then a command API. Everything the soak checks holds, and the stream holds each event of the
/// log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cluster_survives_losing_a_nats_node_the_relay_leader_and_a_command_api() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40);
    let step = Duration::from_secs(seconds) / 4;
    let mut nats = testkit::NatsCluster::start();
    let namespace = nats::Namespace::unique();
    let routes = Routes {
        cluster: true,
        ..Routes::default()
    };
    let mut p = Platform::start_with(&nats.url(), namespace.prefix(), "file", routes).await;
    let soak = Soak::start(&p).await;
    let mut faults = ClusterFaults::default();

    // A NATS node dies; the stream's other two replicas go on taking what the relay publishes.
    tokio::time::sleep(step).await;
    nats.kill(0);
    faults.nats_nodes_killed += 1;
    let before = stream_messages(&nats.node_url(1), &namespace).await;
    tokio::time::sleep(step).await;
    let during = stream_messages(&nats.node_url(1), &namespace).await;
    assert!(
        during > before,
        "publishing goes on with a node down ({before} then {during})"
    );
    nats.restart(0);

    // The relay's leader is SIGKILLed: its advisory lock goes with its connection, and the
    // other projector takes over.
    // Which one leads, once exactly one says so (the other may be between terms after the
    // node's restart).
    let leader = e2e_tests::eventually(Duration::from_secs(30), || async {
        match (
            leading(&p.url("projector")).await,
            leading(&p.url("projector-2")).await,
        ) {
            (true, false) => Some("projector"),
            (false, true) => Some("projector-2"),
            _ => None,
        }
    })
    .await
    .expect("one projector leads the relay");
    let other = if leader == "projector" {
        "projector-2"
    } else {
        "projector"
    };
    p.kill(leader).await;
    let killed = Instant::now();
    let took_over = e2e_tests::eventually(Duration::from_secs(30), || async {
        leading(&p.url(other)).await.then_some(())
    })
    .await;
    if took_over.is_none() {
        panic!(
            "{other} does not lead the relay 30 s after {leader} was killed; its metrics:\n{}",
            relay_metrics(&p.url(other)).await
        );
    }
    faults.relay_leader_killed = Some((leader, killed.elapsed()));
    tokio::time::sleep(step / 2).await;
    p.spawn(leader).await;

    // A command API is SIGKILLed behind HAProxy: requests in flight on it fail and are sent
    // again with their keys; new ones go to the other instance.
    tokio::time::sleep(step / 2).await;
    p.kill("command-api").await;
    faults.command_apis_killed += 1;
    tokio::time::sleep(step / 2).await;
    p.spawn("command-api").await;
    tokio::time::sleep(step / 2).await;

    soak.finish(&p, seconds, &faults).await;
    let (took_over, events): (Duration, i64) = (
        faults.relay_leader_killed.expect("killed").1,
        sqlx::query_scalar("select count(*) from events")
            .fetch_one(&p.db.superuser_url_pool().await)
            .await
            .expect("the log's size"),
    );
    assert!(
        took_over < Duration::from_secs(15),
        "taken over in {took_over:?}"
    );
    // Exactly once on the stream: every event, and none twice (the duplicate window keeps a
    // new leader's republishing of the old one's last batch out).
    let published = e2e_tests::eventually(Duration::from_secs(30), || async {
        let messages = stream_messages(&nats.node_url(1), &namespace).await;
        (messages == events as u64).then_some(messages)
    })
    .await;
    assert_eq!(
        published,
        Some(events as u64),
        "the stream holds each of the log's {events} events once"
    );
}
