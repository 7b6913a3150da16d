//! The whole platform as a user runs it: the four binaries (command API, query API, projector,
//! fake Cloud API) as processes over a test's own database, NATS namespace and Redis prefix,
//! configured through the environment exactly as in production. Processes can be killed
//! (SIGKILL) and restarted.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use testkit::TestDb;
use tokio::process::{Child, Command};

use crate::{binary, free_port, wait_for_status};

pub const APP_SECRET: &str = "e2e-app-secret-0123456789";
pub const FAKE_TOKEN: &str = "EAAG-good-token";

pub struct Platform {
    /// Dropped first (fields drop in order): the processes are killed before their database.
    children: HashMap<&'static str, Child>,
    /// The operator's pool, for reading the log as the tests check it (made once: customers
    /// poll it many times a second).
    log: sqlx::PgPool,
    pub db: TestDb,
    pub nats_url: String,
    pub namespace: String,
    /// `memory` on the shared server, `file` on a private one that gets restarted.
    pub storage: &'static str,
    pub command: String,
    pub query: String,
    pub fake: String,
    pub client: reqwest::Client,
    ports: HashMap<&'static str, u16>,
    redis_prefix: String,
    routes: Routes,
}

/// Where the services find Redis and Postgres, when a test takes them away: a Redis server of
/// its own, a [`testkit::TcpGate`] in front of Postgres. By default, the shared ones, directly.
#[derive(Debug, Default, Clone)]
pub struct Routes {
    pub redis_url: Option<String>,
    pub postgres_port: Option<u16>,
    /// An OTLP endpoint the services export their traces to (off when `None`, as by default).
    pub traces: Option<String>,
    /// The cluster topology (`deploy/`): a second command API and a second projector, the
    /// command APIs behind HAProxy (`deploy/haproxy.cfg`, which the platform's command URL
    /// then is), the events stream with 3 replicas (for a NATS cluster's URLs).
    pub cluster: bool,
}

pub const SERVICES: [&str; 4] = ["fake-whatsapp", "command-api", "query-api", "projector"];
/// The second instances the cluster topology adds; `name-2` runs the binary `name`.
pub const SECOND_INSTANCES: [&str; 2] = ["command-api-2", "projector-2"];
/// HAProxy, in the cluster topology.
pub const HAPROXY: &str = "haproxy";

/// The binary an instance name runs.
fn binary_of(name: &str) -> &str {
    name.strip_suffix("-2").unwrap_or(name)
}

impl Platform {
    pub async fn start(nats_url: &str, namespace: &str, storage: &'static str) -> Self {
        Self::start_with(nats_url, namespace, storage, Routes::default()).await
    }

    /// [`Platform::start`] with the services reaching Redis and Postgres by `routes`.
    pub async fn start_with(
        nats_url: &str,
        namespace: &str,
        storage: &'static str,
        routes: Routes,
    ) -> Self {
        let db = TestDb::new().await;
        let log = db.operator_pool().await;
        let instances: Vec<&'static str> = if routes.cluster {
            [&SERVICES[..], &SECOND_INSTANCES[..], &[HAPROXY]].concat()
        } else {
            SERVICES.to_vec()
        };
        let ports: HashMap<&'static str, u16> =
            instances.iter().map(|s| (*s, free_port())).collect();
        let url = |name: &str| format!("http://127.0.0.1:{}", ports[name]);
        let command = if routes.cluster {
            url(HAPROXY)
        } else {
            url("command-api")
        };
        let mut platform = Self {
            children: HashMap::new(),
            log,
            db,
            nats_url: nats_url.to_owned(),
            namespace: namespace.to_owned(),
            storage,
            command,
            query: url("query-api"),
            fake: url("fake-whatsapp"),
            // A webhook turn on debug binaries sharing two cores with the suite can take many
            // seconds under a crowd; the fake answers once the platform has.
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("a client"),
            ports,
            redis_prefix: format!("e2e:{}:", uuid::Uuid::new_v4().simple()),
            routes,
        };
        for name in instances {
            platform.spawn(name).await;
        }
        platform
    }

    /// HAProxy with the shipped configuration, before the two command APIs.
    fn haproxy(&self) -> Command {
        let at = |name: &str| format!("127.0.0.1:{}", self.ports[name]);
        let mut command = Command::new("haproxy");
        command
            .args(["-W", "-db", "-f"])
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../deploy/haproxy.cfg"
            ))
            .env("COMMAND_BIND", at(HAPROXY))
            .env("COMMAND_API_1", at("command-api"))
            .env("COMMAND_API_2", at("command-api-2"))
            // One query API here: both of the configuration's servers are it.
            .env("QUERY_BIND", format!("127.0.0.1:{}", free_port()))
            .env("QUERY_API_1", at("query-api"))
            .env("QUERY_API_2", at("query-api"))
            .env("STATS_BIND", format!("127.0.0.1:{}", free_port()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        command
    }

    /// Starts (or starts again) one binary and waits until it is ready.
    pub async fn spawn(&mut self, name: &'static str) {
        let port = self.ports[name];
        if name == HAPROXY {
            let child = self
                .haproxy()
                .spawn()
                .expect("haproxy starts (Debian's haproxy)");
            self.children.insert(name, child);
            let ready = wait_for_status(
                &format!("{}/readyz", self.command),
                200,
                Duration::from_secs(30),
            )
            .await;
            assert_eq!(ready, Some(200), "HAProxy does not reach a command API");
            return;
        }
        let mut command = Command::new(binary(binary_of(name)));
        command
            .env("APP__HTTP__PORT", port.to_string())
            .env("APP__DATABASE__URL", self.db.app_url())
            .env("APP__DATABASE__OPERATOR_URL", self.db.operator_url())
            // Four services at once share the test server's connection slots with other tests.
            .env("APP__DATABASE__MAX_CONNECTIONS", "10")
            .env("APP__NATS__URL", &self.nats_url)
            .env("APP__NATS__NAMESPACE", &self.namespace)
            .env("APP__NATS__STORAGE", self.storage)
            .env("APP__REDIS__KEY_PREFIX", &self.redis_prefix)
            // `E2E_LOG=warn` shows what the services log.
            .env(
                "APP__LOG__FILTER",
                std::env::var("E2E_LOG").unwrap_or_else(|_| "error".into()),
            )
            .env("APP__WHATSAPP__API_BASE_URL", &self.fake)
            .env("APP__SENDER__API_BASE_URL", &self.fake)
            .env("APP__SENDER__BACKOFF_BASE_MS", "20")
            .env("APP__SENDER__BREAKER_OPEN_MS", "500")
            // A claim a killed sender left behind resolves (as "outcome unknown") once the
            // message is redelivered, instead of a minute later.
            .env("APP__SENDER__STALE_CLAIM_MS", "5000")
            .env("APP__SENDER__TIMEOUT_MS", "2000")
            .env("APP__RELAY__IDLE_WAIT_MS", "200")
            // No Stripe and no SMTP server in these tests: the billing reactor and the
            // notifier stay off (their own tests run them against the fakes).
            .env("APP__STRIPE__ENABLED", "false")
            .env("APP__NOTIFIER__ENABLED", "false")
            .env("APP__LIMITS__ONBOARD_PER_IP_PER_MINUTE", "100000")
            .env("APP__LIMITS__ONBOARD_PER_MINUTE", "100000")
            // The owners verifying their email are counted per address, named by this machine
            // acting as their proxy (`verify_email`): a thousand of them are not one client.
            .env("APP__LIMITS__TRUSTED_PROXIES", "127.0.0.1")
            // Test customers tap far faster than people do.
            .env("APP__LIMITS__WEBHOOK_PER_PHONE_PER_MINUTE", "6000")
            .env("APP__LIMITS__WEBHOOK_PER_PHONE_BURST", "100")
            .env("FAKE_WHATSAPP_ADDR", format!("127.0.0.1:{port}"))
            .stdout(if std::env::var_os("E2E_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true);
        if let Some(url) = &self.routes.redis_url {
            command.env("APP__REDIS__URL", url);
        }
        if let Some(port) = self.routes.postgres_port {
            let via = |url: String| {
                let mut url = reqwest::Url::parse(&url).expect("a database URL");
                url.set_port(Some(port)).expect("a port");
                url.to_string()
            };
            command
                .env("APP__DATABASE__URL", via(self.db.app_url()))
                .env("APP__DATABASE__OPERATOR_URL", via(self.db.operator_url()));
        }
        if let Some(endpoint) = &self.routes.traces {
            command
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                .env("OTEL_SERVICE_NAME", name)
                // Spans leave every 100 ms rather than every 5 s.
                .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        }
        // Each service as its own NATS user, with only the subjects it needs (nats/auth.conf).
        if name != "fake-whatsapp" {
            command.envs(crate::nats_login_env(binary_of(name)));
        }
        if self.routes.cluster && binary_of(name) == "projector" {
            command.env("APP__RELAY__REPLICAS", "3");
        }
        let child = command.spawn().expect("the binary starts");
        self.children.insert(name, child);
        let probe = if name == "fake-whatsapp" {
            format!("http://127.0.0.1:{port}/_fake/messages")
        } else {
            format!("http://127.0.0.1:{port}/readyz")
        };
        let ready = wait_for_status(&probe, 200, Duration::from_secs(30)).await;
        assert_eq!(ready, Some(200), "{name} did not become ready");
        if name == "fake-whatsapp" {
            let configured = self
                .client
                .post(format!("{}/_fake/config", self.fake))
                .json(
                    &json!({"webhook_url": format!("{}/webhooks/whatsapp", self.command),
                    "app_secret": APP_SECRET, "status_webhooks": true}),
                )
                .send()
                .await
                .expect("the fake answers");
            assert_eq!(configured.status().as_u16(), 204);
        }
    }

    /// A service's base URL (its port serves `/healthz`, `/readyz` and `/metrics` too).
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}", self.ports[name])
    }

    /// The running services' process ids, by service name (for [`crate::cpu::Snapshot`]).
    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        self.children
            .iter()
            .filter_map(|(name, child)| Some((*name, child.id()?)))
            .collect()
    }

    /// The event pipeline's state, for a failure to say where it stopped: each projector's
    /// relay and projection metrics, the events stream and the projections' consumer as NATS
    /// has them, the relay's checkpoint, and the database's sessions that are not idle (with
    /// the locks they wait for).
    pub async fn pipeline_state(&self) -> String {
        let mut out = String::new();
        let mut projectors: Vec<&&str> = self
            .children
            .keys()
            .filter(|name| binary_of(name) == "projector")
            .collect();
        projectors.sort();
        for name in projectors {
            let metrics = match reqwest::get(format!("{}/metrics", self.url(name))).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(err) => format!("no metrics: {err}"),
            };
            let lines: Vec<&str> = metrics
                .lines()
                .filter(|line| {
                    [
                        "relay_leading",
                        "projections_active",
                        "relay_lag_seconds",
                        "relay_events_total",
                        "relay_leaderships_total",
                        "projection_batches_total",
                        "projection_transient_failures_total",
                        "projection_events_total{projection=\"integrations\"",
                    ]
                    .iter()
                    .any(|prefix| line.starts_with(prefix))
                })
                .collect();
            out += &format!("\n{name}:\n  {}", lines.join("\n  "));
        }
        if let Ok(ns) = nats::Namespace::with_prefix(&self.namespace) {
            let js =
                async_nats::jetstream::new(testkit::connect_as(&self.nats_url, "operator").await);
            match js.get_stream(ns.events_stream()).await {
                Ok(mut stream) => {
                    match stream.info().await {
                        Ok(info) => out += &format!("\nstream: {:?}", info.state),
                        Err(err) => out += &format!("\nstream: {err}"),
                    }
                    match stream
                        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(
                            "projections",
                        )
                        .await
                    {
                        Ok(mut consumer) => match consumer.info().await {
                            Ok(info) => {
                                out += &format!(
                                    "\nconsumer projections: delivered {:?}, ack floor {:?}, \
                                     {} pending, {} ack pending, {} redelivered, {} waiting, \
                                     cluster {:?}",
                                    info.delivered,
                                    info.ack_floor,
                                    info.num_pending,
                                    info.num_ack_pending,
                                    info.num_redelivered,
                                    info.num_waiting,
                                    info.cluster,
                                )
                            }
                            Err(err) => out += &format!("\nconsumer: {err}"),
                        },
                        Err(err) => out += &format!("\nconsumer: {err}"),
                    }
                }
                Err(err) => out += &format!("\nstream: {err}"),
            }
        }
        let superuser = self.db.superuser_url_pool().await;
        let checkpoints: Vec<(String, String, i64)> = sqlx::query_as(
            "select relay, transaction_id::text, global_position from relay_checkpoints",
        )
        .fetch_all(&superuser)
        .await
        .unwrap_or_default();
        out += &format!("\nrelay checkpoints: {checkpoints:?}");
        let sessions: Vec<(i32, String, String, String, String, String, String)> = sqlx::query_as(
            "select pid, usename::text, coalesce(state, ''),
                        coalesce(wait_event_type || ':' || wait_event, ''),
                        coalesce(backend_xid::text, ''),
                        coalesce(to_char(now() - xact_start, 'SS.MS'), ''),
                        left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
                   from pg_stat_activity
                  where datname = current_database() and pid <> pg_backend_pid()
                    and state is distinct from 'idle'",
        )
        .fetch_all(&superuser)
        .await
        .unwrap_or_default();
        out +=
            "\nsessions not idle (pid, user, state, waiting for, xid, in transaction for, query):";
        for session in sessions {
            out += &format!("\n  {session:?}");
        }
        let waits: Vec<(i32, String, String)> = sqlx::query_as(
            "select l.pid, l.locktype || ' ' || l.mode,
                    coalesce(array_to_string(pg_blocking_pids(l.pid), ','), '')
               from pg_locks l where not l.granted",
        )
        .fetch_all(&superuser)
        .await
        .unwrap_or_default();
        out += &format!("\nlocks waited for (pid, lock, blocked by): {waits:?}");
        out
    }

    /// SIGKILL: no shutdown hook runs, work in hand is cut wherever it is.
    pub async fn kill(&mut self, name: &'static str) {
        if let Some(mut child) = self.children.remove(name) {
            child.start_kill().expect("a signal");
            child.wait().await.expect("the process ends");
        }
    }

    /// Onboards a tenant, connects its WhatsApp number (on the fake) and configures its bot:
    /// open 08:00-20:00 UTC every day, one 45-minute haircut, cash. Returns its id and token.
    pub async fn business(&self, slug: &str, number: &str) -> Business {
        self.business_with(slug, number, crate::tenant::settings())
            .await
    }

    /// [`Platform::business`] with its bot configured with `settings`.
    pub async fn business_with(&self, slug: &str, number: &str, settings: Value) -> Business {
        let onboarded: Value = self
            .post(None, "/v1/tenants", crate::CommandApp::onboarding(slug))
            .await;
        let token = onboarded["access_token"]
            .as_str()
            .expect("a token")
            .to_owned();
        let tenant_id = onboarded["tenant"]["id"]
            .as_str()
            .expect("an id")
            .to_owned();
        crate::verify_email(
            &self.client,
            &self.command,
            &self.db.superuser_url(),
            &tenant_id,
            &format!("owner@{slug}.example"),
        )
        .await;
        let connected: Value = self
            .put(
                &token,
                "/v1/whatsapp",
                None,
                json!({"phone_number_id": number,
                "access_token": FAKE_TOKEN, "app_secret": APP_SECRET,
                "verify_token": format!("verify-token-{slug}-0000")}),
            )
            .await;
        assert_eq!(connected["phone_number_id"], number, "{connected}");
        self.put(&token, "/v1/bot-config", Some("\"0\""), settings)
            .await;
        let service: Value = self
            .post(Some(&token), "/v1/services", crate::tenant::haircut())
            .await;
        Business {
            tenant_id,
            token,
            number: number.to_owned(),
            service_id: service["service_id"]
                .as_str()
                .expect("a service")
                .to_owned(),
        }
    }

    async fn post(&self, token: Option<&str>, path: &str, body: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}{path}", self.command))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the command API answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "POST {path}: {status} {body}");
        body
    }

    async fn put(&self, token: &str, path: &str, if_match: Option<&str>, body: Value) -> Value {
        let mut request = self
            .client
            .put(format!("{}{path}", self.command))
            .bearer_auth(token)
            .json(&body);
        if let Some(v) = if_match {
            request = request.header("if-match", v);
        }
        let response = request.send().await.expect("the command API answers");
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!((200..300).contains(&status), "PUT {path}: {status} {body}");
        body
    }

    /// GET on the query API; status and body.
    pub async fn read(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.query))
            .bearer_auth(token)
            .send()
            .await
            .expect("the query API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// What the fake received for a customer, oldest first.
    pub async fn received(&self, customer: &str) -> Vec<Value> {
        self.client
            .get(format!("{}/_fake/messages", self.fake))
            .query(&[("to", customer.trim_start_matches('+'))])
            .send()
            .await
            .expect("the fake answers")
            .json()
            .await
            .expect("a list")
    }

    /// Waits (up to `timeout`) until every reply the platform decided has an outcome, then
    /// checks that none was sent twice: a reply whose send was cut off mid-call is recorded
    /// failed with an unknown outcome rather than sent again (at most once), so only those may
    /// be missing at the fake, or present there without a recorded send. Each customer's
    /// figures.
    pub async fn replies_settled(&self, timeout: Duration) -> Vec<Replies> {
        let settled = crate::eventually(timeout, || async {
            let rows: Vec<(String, i64, i64, i64, i64)> = sqlx::query_as(
                "select k.phone,
                        count(*) filter (where event_type = 'BotReplied'),
                        count(*) filter (where event_type = 'OutboundMessageSent'),
                        count(*) filter (where event_type = 'OutboundMessageFailed'),
                        count(*) filter (where event_type = 'OutboundMessageFailed'
                                           and payload->>'reason' like '%outcome is unknown%')
                 from events e
                 join customer_keys k on k.tenant_id = e.tenant_id
                                     and k.subject_id::text = e.stream_id
                 where e.stream_type = 'conversation' group by 1",
            )
            .fetch_all(&self.log)
            .await
            .expect("the outcomes");
            rows.iter()
                .all(|(_, decided, sent, failed, _)| sent + failed == *decided)
                .then_some(rows)
        })
        .await
        .expect("every reply has an outcome");
        let mut out = Vec::with_capacity(settled.len());
        for (customer, decided, sent, failed, unknown) in settled {
            let delivered = self.received(&customer).await.len() as i64;
            assert!(
                sent <= delivered && delivered <= sent + unknown && delivered <= decided,
                "{customer}: {decided} replies, {sent} sent, {unknown} unknown, {delivered} at the fake"
            );
            out.push(Replies {
                customer,
                decided,
                sent,
                failed,
                unknown,
                delivered,
            });
        }
        out
    }

    /// How many replies the platform decided for a customer of a tenant (from the log).
    pub async fn replies_decided(&self, tenant_id: &str, customer: &str) -> usize {
        let n: i64 = sqlx::query_scalar(
            "select count(*) from events e
              join customer_keys k on k.tenant_id = e.tenant_id and k.subject_id::text = e.stream_id
             where e.tenant_id = $1::uuid and e.stream_type = 'conversation'
               and k.phone = $2 and e.event_type = 'BotReplied'",
        )
        .bind(tenant_id)
        .bind(format!("+{}", customer.trim_start_matches('+')))
        .fetch_one(&self.log)
        .await
        .expect("a count");
        n as usize
    }
}

/// One customer's replies, as the log and the fake tell them.
#[derive(Debug, Clone)]
pub struct Replies {
    /// The customer's phone, E.164 (their conversation's stream is named by their subject id).
    pub customer: String,
    pub decided: i64,
    pub sent: i64,
    pub failed: i64,
    /// Failed with an unknown outcome: the send was cut off mid-call (a SIGKILL).
    pub unknown: i64,
    /// What the fake received.
    pub delivered: i64,
}

pub struct Business {
    pub tenant_id: String,
    pub token: String,
    pub number: String,
    pub service_id: String,
}

/// A customer on WhatsApp, talking to one business through the fake.
pub struct Customer<'a> {
    pub platform: &'a Platform,
    pub business: &'a Business,
    pub phone: String,
    seen: usize,
    /// The last message the bot sent.
    pub last: Vec<Value>,
}

impl<'a> Customer<'a> {
    pub fn new(platform: &'a Platform, business: &'a Business, phone: &str) -> Self {
        Self {
            platform,
            business,
            phone: phone.trim_start_matches('+').to_owned(),
            seen: 0,
            last: Vec::new(),
        }
    }

    async fn send(&mut self, message: Value) -> Vec<Value> {
        let mut message = message;
        message["phone_number_id"] = json!(self.business.number);
        message["from"] = json!(self.phone);
        message["name"] = json!("Customer");
        let response: Value = self
            .platform
            .client
            .post(format!("{}/_fake/inbound", self.platform.fake))
            .json(&message)
            .send()
            .await
            .expect("the fake answers")
            .json()
            .await
            .expect("json");
        assert_eq!(response["webhook_status"], 200, "{response}");
        // Every reply the platform decided arrives at the fake, and nothing more.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let decided = self
                .platform
                .replies_decided(&self.business.tenant_id, &self.phone)
                .await;
            let received = self.platform.received(&self.phone).await;
            assert!(
                received.len() <= decided,
                "more messages than replies: {received:?}"
            );
            if received.len() == decided && decided > self.seen {
                let new = received[self.seen..].to_vec();
                self.seen = received.len();
                self.last = new.clone();
                return new;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {} replies decided, {} received",
                self.phone,
                decided,
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn say(&mut self, text: &str) -> Vec<Value> {
        self.send(json!({"text": text})).await
    }

    /// Taps the `n`th (from 1) button or list row of the bot's last interactive message.
    pub async fn tap(&mut self, n: usize) -> Vec<Value> {
        let interactive = self
            .last
            .iter()
            .rev()
            .find(|m| m["body"]["type"] == "interactive")
            .map(|m| m["body"]["interactive"].clone())
            .expect("an interactive message to tap");
        let message = if interactive["type"] == "button" {
            let b = &interactive["action"]["buttons"][n - 1]["reply"];
            json!({"button_reply": {"id": b["id"], "title": b["title"]}})
        } else {
            let rows: Vec<Value> = interactive["action"]["sections"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
                .collect();
            let r = &rows[n - 1];
            json!({"list_reply": {"id": r["id"], "title": r["title"]}})
        };
        self.send(message).await
    }

    /// The texts of the last replies, joined.
    pub fn last_text(&self) -> String {
        self.last
            .iter()
            .map(|m| {
                m["body"]["text"]["body"]
                    .as_str()
                    .or(m["body"]["interactive"]["body"]["text"].as_str())
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// From "hi" to booked, taking the first choice each time: the first service, day and
    /// time, then "Confirm" (the profile's name, the one payment method). A time taken
    /// meanwhile is replaced by the nearest one kept, or the free times offered: the first
    /// again. The last replies' text.
    pub async fn book_first_slot(&mut self) -> String {
        self.say("hi").await;
        for _ in 0..10 {
            self.tap(1).await;
            if self.last_text().contains("Booked!") {
                break;
            }
        }
        self.last_text()
    }
}
