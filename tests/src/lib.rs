//! Helpers for end-to-end tests: finding the workspace's binaries and waiting on HTTP.
//! The tests themselves are in `tests/`.

#![forbid(unsafe_code)]

pub mod backlog;
pub mod cpu;
pub mod otlp;
pub mod stack;
pub mod statements;
pub mod tenant;
pub mod wa;

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A binary of the workspace, built by `cargo build --bins` (which `just test` runs first).
/// `BOOKING_BIN_DIR` overrides where to look.
pub fn binary(name: &str) -> PathBuf {
    let dir = std::env::var_os("BOOKING_BIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            // target/<profile>/deps/<test binary> -> target/<profile>
            let exe = std::env::current_exe().expect("the test binary's path");
            exe.parent()
                .and_then(|deps| deps.parent())
                .expect("a target directory")
                .to_path_buf()
        });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` first (`just test` does)",
        path.display()
    );
    path
}

/// Polls `url` until it answers `status` or `timeout` passes; returns the last status seen.
pub async fn wait_for_status(url: &str, status: u16, timeout: Duration) -> Option<u16> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client");
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(response) = client.get(url).send().await {
            last = Some(response.status().as_u16());
            if last == Some(status) {
                return last;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    last
}

/// A port nothing listens on right now, for a service a test starts as a process
/// ([`testkit::free_port`]).
pub use testkit::free_port;

use platform::settings::{LogFormat, StorageSetting};
use platform::{
    DatabaseSettings, HttpSettings, LogSettings, NatsSettings, RedisSettings, ServiceSettings,
};
use secrecy::SecretString;
use serde_json::{Value, json};
use testkit::{TestDb, TestNats};
use tokio_util::sync::CancellationToken;

pub const REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The key test services seal WhatsApp credentials with (the command API) and open them with
/// (the sender).
pub const TEST_ENCRYPTION_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

/// Settings for a service under test: its own database and NATS namespace, port 0.
pub fn service_settings(db: &TestDb, nats: &TestNats, redis_url: &str) -> ServiceSettings {
    ServiceSettings {
        http: HttpSettings {
            host: "127.0.0.1".into(),
            port: 0,
            request_seconds: 30,
            max_in_flight: 64,
            queue_ms: 5_000,
        },
        database: DatabaseSettings {
            url: SecretString::from(db.app_url()),
            operator_url: SecretString::from(db.operator_url()),
            max_connections: 8,
            acquire_timeout_ms: 2000,
            replica_url: None,
        },
        nats: NatsSettings {
            url: nats.url.clone(),
            namespace: nats.ns.prefix().to_owned(),
            storage: StorageSetting::Memory,
            user: None,
            password: None,
        },
        redis: RedisSettings {
            url: SecretString::from(redis_url.to_owned()),
            // One per database: the services of a test share limits and caches, as deployed
            // services do; parallel tests never do.
            key_prefix: format!("test:{}:", db.name),
        },
        log: LogSettings {
            filter: "warn".into(),
            format: LogFormat::Pretty,
        },
    }
}

/// An access token of a member made up for `tenant_id`, with the vault's rows a sign-in would
/// have left (a credential and a live session), for benches and tests that need a caller
/// without signing one in over HTTP. `pool` must see every tenant (the superuser's).
pub async fn member_token(
    pool: &sqlx::PgPool,
    tenant_id: uuid::Uuid,
    role: domain::access::Role,
) -> String {
    let (user_id, session) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    sqlx::query(
        "insert into user_credentials (tenant_id, user_id, email, password_hash, role)
         values ($1, $2, $3, '', $4)",
    )
    .bind(tenant_id)
    .bind(user_id)
    .bind(format!("{user_id}@members.example"))
    .bind(role.as_str())
    .execute(pool)
    .await
    .expect("a member's credential");
    sqlx::query(
        "insert into refresh_tokens (tenant_id, token_hash, family_id, user_id, expires_at)
         values ($1, $2, $3, $4, now() + interval '1 day')",
    )
    .bind(tenant_id)
    .bind(session.as_bytes().to_vec())
    .bind(session)
    .bind(user_id)
    .execute(pool)
    .await
    .expect("a live session");
    platform::auth::JwtKeys::from_settings(&test_auth_settings())
        .expect("the test keys")
        .issue(
            tenant_id,
            user_id,
            role,
            platform::auth::SessionRef {
                id: session,
                epoch: 0,
            },
        )
        .expect("a token")
}

pub fn test_auth_settings() -> platform::auth::AuthSettings {
    platform::auth::AuthSettings {
        issuer: "booking".into(),
        access_ttl_secs: 900,
        refresh_ttl_days: 30,
        active_kid: "test-1".into(),
        keys: vec![platform::auth::KeySetting {
            kid: "test-1".into(),
            secret: SecretString::from("test-secret-test-secret-test-secret-42"),
        }],
    }
}

pub fn test_operator_settings() -> platform::auth::AuthSettings {
    platform::auth::AuthSettings {
        issuer: "booking-operator".into(),
        access_ttl_secs: 600,
        refresh_ttl_days: 1,
        active_kid: "op-test-1".into(),
        keys: vec![platform::auth::KeySetting {
            kid: "op-test-1".into(),
            secret: SecretString::from("operator-test-secret-operator-test-secret"),
        }],
    }
}

/// A platform operator's bearer token for the test services.
pub fn operator_token() -> String {
    let keys = platform::auth::OperatorKeys(
        platform::auth::JwtKeys::from_settings(&test_operator_settings()).unwrap(),
    );
    keys.issue("alice", std::time::Duration::from_secs(600))
        .unwrap()
}

/// `nats` as the NATS user `user` of `nats/auth.conf`: each service runs in the tests with
/// only the subjects it has in production.
pub fn nats_as(nats: NatsSettings, user: &str) -> NatsSettings {
    let login = testkit::login(user);
    NatsSettings {
        user: Some(login.user),
        password: Some(login.password),
        ..nats
    }
}

/// The environment that makes a service binary connect as its own NATS user (and the
/// projector's relay as the relay's).
pub fn nats_login_env(service: &str) -> Vec<(&'static str, String)> {
    use secrecy::ExposeSecret as _;
    let login = testkit::login(service);
    let mut env = vec![
        ("APP__NATS__USER", login.user),
        (
            "APP__NATS__PASSWORD",
            login.password.expose_secret().to_owned(),
        ),
    ];
    if service == "projector" {
        let relay = testkit::login("relay");
        env.push(("APP__RELAY__NATS_USER", relay.user));
        env.push((
            "APP__RELAY__NATS_PASSWORD",
            relay.password.expose_secret().to_owned(),
        ));
    }
    env
}

pub fn command_api_settings(s: ServiceSettings) -> command_api::Settings {
    command_api_settings_with_graph(s, "http://127.0.0.1:1")
}

pub fn command_api_settings_with_graph(
    s: ServiceSettings,
    graph_url: &str,
) -> command_api::Settings {
    command_api::Settings {
        http: s.http,
        database: s.database,
        nats: nats_as(s.nats, "command-api"),
        redis: s.redis,
        log: s.log,
        auth: test_auth_settings(),
        operator_auth: test_operator_settings(),
        limits: command_api::LimitSettings {
            onboard_per_ip_per_minute: 20,
            onboard_per_minute: 60,
            // As shipped (command-api's defaults).
            webhook_per_phone_per_minute: 20,
            webhook_per_phone_burst: 20,
            per_credential_per_minute: 600,
            per_credential_burst: 100,
            trusted_proxies: String::new(),
        },
        whatsapp: command_api::WhatsAppSettings {
            api_base_url: graph_url.to_owned(),
            api_version: "v21.0".into(),
            encryption_key: SecretString::from(TEST_ENCRYPTION_KEY),
        },
        billing: command_api::BillingSettings {
            trial_days: 14,
            grace_days: 7,
            upgrade_url: TEST_UPGRADE_URL.into(),
        },
        stripe: stripe_settings("http://127.0.0.1:1/"),
        // The tests' receivers listen on this machine.
        webhooks: command_api::WebhookSettings { allow_http: true },
    }
}

/// The billing reactor's Stripe at `api_base_url`, on: quick retries, a quick breaker.
pub fn projector_stripe_settings(api_base_url: &str) -> projector::StripeSettings {
    projector::StripeSettings {
        enabled: true,
        api_base_url: api_base_url.to_owned(),
        secret_key: SecretString::from("sk_test_e2e"),
        timeout_ms: 2000,
        batch_size: 256,
        concurrency: 16,
        backoff_base_ms: 50,
        backoff_max_ms: 1000,
        breaker_failures: 5,
        breaker_open_ms: 500,
    }
}

/// The secret the tests' Stripe webhooks are signed with.
pub const TEST_STRIPE_WEBHOOK_SECRET: &str = "whsec_test_0123456789abcdef";

/// Stripe at `api_base_url` (a fake's), with the tests' webhook secret.
pub fn stripe_settings(api_base_url: &str) -> command_api::StripeSettings {
    command_api::StripeSettings {
        api_base_url: api_base_url.to_owned(),
        secret_key: SecretString::from("sk_test_e2e"),
        webhook_secrets: SecretString::from(format!(
            "whsec_old_rotated_out,{TEST_STRIPE_WEBHOOK_SECRET}"
        )),
        timeout_ms: 2000,
        success_url: "http://dashboard.test/billing?checkout=done".into(),
        cancel_url: "http://dashboard.test/billing?checkout=cancelled".into(),
    }
}

/// The use cases over a test's database, as the services run them (a test's stand-in for a
/// reactor or the Stripe webhook).
pub fn use_cases(db: &TestDb) -> app::App {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(&db.app_url())
        .expect("a valid URL");
    app::App {
        store: eventstore::EventStore::new(pool).with_upcasters(app::events::upcasters()),
        states: app::StateCache::default(),
        sealer: vault::Sealer::from_base64(TEST_ENCRYPTION_KEY).expect("a valid key"),
        policy: app::Policy {
            upgrade_url: TEST_UPGRADE_URL.into(),
            webhooks_allow_http: true,
            ..app::Policy::default()
        },
    }
}

/// The billing clock over a test's database, run by hand with the time the test chooses.
pub fn billing_clock(db: &TestDb) -> projector::billing_clock::BillingClock {
    let operator = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&db.operator_url())
        .expect("a valid URL");
    projector::billing_clock::BillingClock {
        app: use_cases(db),
        operator,
        gates: platform::tenant_gate::TenantStatusCache::new(platform::redis_link::RedisLink::new(
            Some(redis::Client::open(REDIS_URL).expect("a valid URL")),
            &format!("test:{}:", db.name),
        )),
        every: Duration::from_secs(3600),
    }
}

/// The conversation clock over a test's database, run by hand with the time the test chooses.
pub fn conversation_clock(db: &TestDb) -> projector::conversation_clock::ConversationClock {
    let operator = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&db.operator_url())
        .expect("a valid URL");
    projector::conversation_clock::ConversationClock {
        app: use_cases(db),
        operator,
        every: Duration::from_secs(3600),
    }
}

/// Where problem answers send a business to upgrade, in tests.
pub const TEST_UPGRADE_URL: &str = "http://dashboard.test/billing";

/// The command API on a port of its own, over its own database and namespace.
pub struct CommandApp {
    pub address: String,
    pub db: TestDb,
    pub nats: TestNats,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

/// A tenant onboarded through the API.
#[derive(Clone)]
pub struct Onboarded {
    pub tenant_id: String,
    pub owner_id: String,
    pub access_token: String,
    pub refresh_token: String,
    pub body: Value,
}

pub async fn spawn_command_api() -> CommandApp {
    spawn_command_api_with_graph("http://127.0.0.1:1").await
}

/// The command API, its Cloud API client pointed at `graph_url`.
pub async fn spawn_command_api_with_graph(graph_url: &str) -> CommandApp {
    spawn_command_api_custom(graph_url, REDIS_URL).await
}

/// The command API with its Cloud API client at `graph_url` and Redis at `redis_url`.
pub async fn spawn_command_api_custom(graph_url: &str, redis_url: &str) -> CommandApp {
    spawn_command_api_tuned(graph_url, redis_url, |_| {}).await
}

/// `RUST_LOG=warn cargo test …` shows what the services running in the test's process logged
/// (e.g. the cause of a 500, or why a projection retried).
fn show_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// The command API with its settings adjusted by `tune` (e.g. the benchmark's limits).
pub async fn spawn_command_api_tuned(
    graph_url: &str,
    redis_url: &str,
    tune: impl FnOnce(&mut command_api::Settings),
) -> CommandApp {
    show_logs();
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    spawn_command_api_on(db, nats, graph_url, redis_url, tune).await
}

/// The command API over a database and namespace of the caller's (e.g. a restored database).
pub async fn spawn_command_api_on(
    db: TestDb,
    nats: TestNats,
    graph_url: &str,
    redis_url: &str,
    tune: impl FnOnce(&mut command_api::Settings),
) -> CommandApp {
    let mut settings =
        command_api_settings_with_graph(service_settings(&db, &nats, redis_url), graph_url);
    tune(&mut settings);
    let app = command_api::Application::build(settings)
        .await
        .expect("the command API builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    CommandApp {
        address,
        db,
        nats,
        client: reqwest::Client::new(),
        stop,
    }
}

impl Drop for CommandApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl CommandApp {
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.address))
            .json(body)
            .send()
            .await
            .expect("the request is sent")
    }

    pub async fn get_with(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token)
            .send()
            .await
            .expect("the request is sent")
    }

    pub fn onboarding(slug: &str) -> Value {
        json!({
            "business_name": "Demo Salon",
            "slug": slug,
            "owner_email": format!("owner@{slug}.example"),
            "owner_password": "correct horse battery staple",
            "time_zone": "Europe/Madrid",
        })
    }

    /// Onboards a business and verifies its email, as its owner following the emailed link
    /// would: what most tests start from.
    pub async fn onboard(&self, slug: &str) -> Onboarded {
        let onboarded = self.onboard_unverified(slug).await;
        verify_email(
            &self.client,
            &self.address,
            &self.db.superuser_url(),
            &onboarded.tenant_id,
            &format!("owner@{slug}.example"),
        )
        .await;
        onboarded
    }

    /// Onboards a business whose owner has not followed the verification link.
    pub async fn onboard_unverified(&self, slug: &str) -> Onboarded {
        let response = self.post("/v1/tenants", &Self::onboarding(slug)).await;
        assert_eq!(response.status().as_u16(), 201, "onboarding {slug}");
        let body: Value = response.json().await.unwrap();
        Onboarded {
            tenant_id: body["tenant"]["id"].as_str().unwrap().to_owned(),
            owner_id: body["owner_id"].as_str().unwrap().to_owned(),
            access_token: body["access_token"].as_str().unwrap().to_owned(),
            refresh_token: body["refresh_token"].as_str().unwrap().to_owned(),
            body,
        }
    }
}

/// The emails `sink` received for `address`, but the link that verifies a new business's email
/// (every owner is sent one, or not when the test verified the email first): what a test about
/// another email looks at.
pub fn mails_to(sink: &smtp_sink::Sink, address: &str) -> Vec<smtp_sink::Mail> {
    sink.to(address)
        .into_iter()
        .filter(|m| !m.subject.ends_with(": confirm your email"))
        .collect()
}

/// Follows a verification link of the business `tenant_id` for `email` through the command API
/// at `address`, as its owner would. The link is made here as the platform makes one (its
/// hash in the vault), not taken from the email: the notifier, where one runs, may have sent
/// and forgotten the platform's own already. `database_url` must see every tenant.
pub async fn verify_email(
    client: &reqwest::Client,
    address: &str,
    database_url: &str,
    tenant_id: &str,
    email: &str,
) {
    let tenant: uuid::Uuid = tenant_id.parse().expect("a tenant id");
    let token = vault::new_token(tenant);
    let pool = sqlx::PgPool::connect(database_url)
        .await
        .expect("the database");
    sqlx::query(
        "insert into email_verifications (token_hash, tenant_id, email, expires_at)
         values ($1, $2, $3, now() + interval '1 hour')",
    )
    .bind(vault::sha256(&token))
    .bind(tenant)
    .bind(email)
    .execute(&pool)
    .await
    .expect("a verification link");
    pool.close().await;
    // Many businesses verified at once from one address meet its rate limit: wait as told.
    // Where the API trusts this machine as a proxy (the benchmarks' platform, whose thousand
    // businesses stand in for a thousand owners on their own connections), each business is
    // counted under an address of its own; elsewhere the header is ignored.
    let own = tenant.into_bytes();
    let forwarded = format!("10.{}.{}.{}", own[0], own[1], own[2]);
    let mut attempts = 0;
    let response = loop {
        let response = client
            .post(format!("{address}/v1/auth/verify-email"))
            .header("x-forwarded-for", &forwarded)
            .json(&json!({ "token": token }))
            .send()
            .await
            .expect("the request is sent");
        attempts += 1;
        if response.status().as_u16() != 429 || attempts == 60 {
            break response;
        }
        let wait = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1u64);
        tokio::time::sleep(std::time::Duration::from_secs(wait.min(5))).await;
    };
    assert_eq!(
        response.status().as_u16(),
        200,
        "verifying {tenant_id}'s email: {}",
        response.text().await.unwrap_or_default()
    );
}

/// A stand-in for the Cloud API's `GET /{version}/{phone_number_id}`: Meta's answers and error
/// envelopes for one token and any id of 12 or more digits. (The full fake, with sending and webhooks, is
/// its own binary.)
pub struct FakeGraph {
    pub base_url: String,
}

pub const FAKE_NUMBER_ID: &str = "106540352242922";
pub const FAKE_TOKEN: &str = "EAAG-good-token";

impl FakeGraph {
    pub async fn start() -> Self {
        use axum::extract::Path;
        use axum::http::{HeaderMap, StatusCode};
        use axum::routing::get;
        async fn number(
            Path((_version, id)): Path<(String, String)>,
            headers: HeaderMap,
        ) -> (StatusCode, axum::Json<Value>) {
            let token = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if token != format!("Bearer {FAKE_TOKEN}") {
                return (
                    StatusCode::UNAUTHORIZED,
                    axum::Json(
                        json!({"error": {"message": "Error validating access token: Session has expired", "type": "OAuthException", "code": 190, "fbtrace_id": "A1"}}),
                    ),
                );
            }
            // Numbers of 12 digits or more exist; shorter ids do not.
            if id.len() < 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
                return (
                    StatusCode::BAD_REQUEST,
                    axum::Json(
                        json!({"error": {"message": format!("Unsupported get request. Object with ID '{id}' does not exist"), "type": "GraphMethodException", "code": 100, "fbtrace_id": "A2"}}),
                    ),
                );
            }
            (
                StatusCode::OK,
                axum::Json(
                    json!({"id": id, "display_phone_number": "+1 555-078-3881", "verified_name": "Demo Salon", "quality_rating": "GREEN"}),
                ),
            )
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            axum::serve(
                listener,
                axum::Router::new().route("/{version}/{id}", get(number)),
            )
            .await
        });
        Self { base_url }
    }
}

/// The projector (relay, projections) running in this process over a test's database and
/// namespace, until dropped.
pub struct ProjectorHandle {
    pub stats: Vec<(
        projector::projection::Projection,
        std::sync::Arc<projector::consumer::ProjectionStats>,
    )>,
    pub sender: Option<std::sync::Arc<projector::sender::SenderStats>>,
    stop: CancellationToken,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn projector_settings(db: &TestDb, nats: &TestNats) -> projector::Settings {
    let s = service_settings(db, nats, REDIS_URL);
    let relay = testkit::login("relay");
    projector::Settings {
        http: s.http,
        database: s.database,
        nats: nats_as(s.nats, "projector"),
        redis: s.redis,
        log: s.log,
        relay: projector::RelaySettings {
            enabled: true,
            batch_size: 1000,
            idle_wait_ms: 200,
            replicas: 1,
            nats_user: Some(relay.user),
            nats_password: Some(relay.password),
        },
        projections: projector::ProjectionSettings {
            enabled: true,
            batch_size: 500,
            max_attempts: 3,
            retry_delay_ms: 50,
            parallelism: 4,
        },
        // Tests that need them turn them on (and move the clock by hand): elsewhere they would
        // only retry an absent Stripe and SMTP server.
        billing_clock: projector::BillingClockSettings {
            enabled: false,
            every_ms: 500,
        },
        conversation_clock: projector::ConversationClockSettings {
            enabled: false,
            every_ms: 200,
        },
        stripe: projector::StripeSettings {
            enabled: false,
            ..projector_stripe_settings("http://127.0.0.1:1/")
        },
        notifier: projector::NotifierSettings {
            enabled: false,
            smtp_url: SecretString::from("smtp://127.0.0.1:1"),
            from: "Booking platform <billing@booking.test>".into(),
            billing_url: TEST_UPGRADE_URL.into(),
            invitation_url: "http://dashboard.test/accept-invitation".into(),
            reset_url: "http://dashboard.test/reset-password".into(),
            verify_email_url: "http://dashboard.test/verify-email".into(),
            retry_ms: 100,
        },
        sender: projector::SenderSettings {
            enabled: true,
            api_base_url: "http://127.0.0.1:1".into(),
            api_version: "v21.0".into(),
            encryption_key: SecretString::from(TEST_ENCRYPTION_KEY),
            timeout_ms: 2000,
            max_attempts: 6,
            backoff_base_ms: 20,
            backoff_max_ms: 200,
            per_number_per_second: 80,
            breaker_failures: 5,
            breaker_open_ms: 1000,
            concurrency: 64,
            stale_claim_ms: 60_000,
        },
        // On, for receivers on this machine, retrying quickly; tests that move time run a
        // deliverer of their own (`deliverer`) with this one off.
        webhooks: projector::WebhookSettings {
            enabled: true,
            every_ms: 100,
            timeout_ms: 2000,
            first_backoff_ms: 200,
            max_backoff_ms: 1000,
            give_up_after_hours: 72,
            allow_private_networks: true,
        },
    }
}

/// A webhook deliverer over a test's database, run by hand with the time the test chooses
/// (receivers on this machine allowed).
pub fn deliverer(db: &TestDb) -> projector::webhooks::Deliverer {
    let operator = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_lazy(&db.operator_url())
        .expect("a valid URL");
    projector::webhooks::Deliverer::new(
        use_cases(db),
        operator,
        projector::webhooks::DelivererConfig {
            timeout: std::time::Duration::from_secs(2),
            allow_private_networks: true,
            ..projector::webhooks::DelivererConfig::default()
        },
    )
    .expect("a deliverer")
}

pub async fn spawn_projector(settings: projector::Settings) -> ProjectorHandle {
    show_logs();
    let app = projector::Application::build(settings)
        .await
        .expect("the projector builds");
    let stats = app.stats().to_vec();
    let sender_stats = app.sender_stats();
    let stop = CancellationToken::new();
    let done = tokio::spawn(app.run_until_stopped(stop.clone()));
    ProjectorHandle {
        stats,
        sender: sender_stats,
        stop,
        done: Some(done),
    }
}

impl ProjectorHandle {
    /// Stops it the way SIGTERM does and waits until every consumer has finished its batch.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            done.await
                .expect("the projector task")
                .expect("the projector stops cleanly");
        }
    }
}

impl Drop for ProjectorHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Polls `check` every 25 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn query_api_settings(db: &TestDb, nats: &TestNats) -> query_api::Settings {
    let s = service_settings(db, nats, REDIS_URL);
    query_api::Settings {
        http: s.http,
        database: s.database,
        nats: nats_as(s.nats, "query-api"),
        redis: s.redis,
        log: s.log,
        auth: test_auth_settings(),
        operator_auth: test_operator_settings(),
        // Longer than shipped (2 s): six tests at once on two shared cores can keep the
        // projections a few seconds behind, and a read with a token is then only slower.
        consistency: query_api::ConsistencySettings {
            max_wait_ms: 10_000,
        },
        billing: query_api::BillingSettings { trial_days: 14 },
        // As shipped.
        limits: query_api::LimitSettings {
            per_credential_per_minute: 1200,
            per_credential_burst: 200,
            stream_max_seconds: 600,
        },
    }
}

/// The query API on a port of its own over a command API's database and namespace, until
/// dropped.
pub struct QueryApp {
    pub address: String,
    pub client: reqwest::Client,
    stop: CancellationToken,
}

pub async fn spawn_query_api(settings: query_api::Settings) -> QueryApp {
    let app = query_api::Application::build(settings)
        .await
        .expect("the query API builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    QueryApp {
        address,
        client: reqwest::Client::new(),
        stop,
    }
}

impl Drop for QueryApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl QueryApp {
    /// GET with a bearer token and, optionally, a consistency token; status and JSON body.
    pub async fn get(&self, path: &str, token: &str, consistency: Option<&str>) -> (u16, Value) {
        let mut request = self
            .client
            .get(format!("{}{path}", self.address))
            .bearer_auth(token);
        if let Some(c) = consistency {
            request = request.header("x-consistency-token", c);
        }
        let response = request.send().await.expect("the request is sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Whether every projection has applied the log up to `at`, as its watermark in
/// `rm_positions` shows.
pub async fn projections_at(superuser: &sqlx::PgPool, at: eventstore::Position) -> bool {
    let reached: i64 = sqlx::query_scalar(
        "select count(*) from rm_positions
          where (transaction_id, global_position) >= ($1::text::xid8, $2)",
    )
    .bind(at.transaction_id.to_string())
    .bind(at.global_position as i64)
    .fetch_one(superuser)
    .await
    .expect("the watermarks");
    reached == projector::projection::Projection::ALL.len() as i64
}

/// Whether every projection has applied the whole log (as it stands when called) within
/// `timeout`.
pub async fn projections_caught_up(superuser: &sqlx::PgPool, timeout: Duration) -> bool {
    let head = backlog::last_position(superuser).await;
    eventually(timeout, || async {
        projections_at(superuser, head).await.then_some(())
    })
    .await
    .is_some()
}

/// Waits (up to a minute) until every projection has applied the whole log.
pub async fn wait_for_projections(superuser: &sqlx::PgPool) {
    if !projections_caught_up(superuser, Duration::from_secs(60)).await {
        // Which projection stopped where, for the failure to say.
        let watermarks: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "select projection, stream_sequence, transaction_id::text, global_position
               from rm_positions order by projection",
        )
        .fetch_all(superuser)
        .await
        .unwrap_or_default();
        let head = backlog::last_position(superuser).await;
        panic!(
            "the projections did not catch up in 60 s: the log's head is {head}; \
             (projection, stream sequence, transaction, position): {watermarks:?}"
        );
    }
}

/// How many pairs of a business's active bookings overlap in time (the agenda's invariant:
/// none), as the bookings read model has them.
pub async fn overlapping_bookings(superuser: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar(
        "select count(*) from rm_bookings a join rm_bookings b
           on a.tenant_id = b.tenant_id and a.booking_id < b.booking_id
          and a.status in ('requested', 'confirmed') and b.status in ('requested', 'confirmed')
          and a.starts_at < b.ends_at and b.starts_at < a.ends_at",
    )
    .fetch_one(superuser)
    .await
    .expect("the overlaps")
}

/// Every read-model row of every tenant (read as the superuser, past RLS), table by table, as
/// the `rm_tables` catalogue lists the projections' tables.
pub async fn read_models(superuser: &sqlx::PgPool) -> Vec<(String, Vec<Value>)> {
    let tables: Vec<String> =
        sqlx::query_scalar("select table_name from rm_tables order by projection, table_name")
            .fetch_all(superuser)
            .await
            .expect("the catalogue of read models");
    let mut out = Vec::new();
    for table in tables {
        let rows: Vec<(Value,)> =
            sqlx::query_as(&format!("select to_jsonb(t) from {table} t order by 1"))
                .fetch_all(superuser)
                .await
                .expect("a read model");
        out.push((table, rows.into_iter().map(|(v,)| v).collect()));
    }
    out
}

/// Waits for the projections to apply the whole log (statuses still arriving are let settle
/// first), then checks every read model equals a rebuild from the log.
///
/// The platform may still be appending (a status webhook, a clock's turn): a rebuild made
/// after events the live models were read without would differ for that alone. So the
/// comparison counts only when the log did not grow from before the live models were read
/// until after the rebuild; otherwise it is made again, a few times.
pub async fn assert_read_models_equal_a_rebuild(db: &TestDb, superuser: &sqlx::PgPool) {
    let logged = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events")
            .fetch_one(superuser)
            .await
            .expect("the log's size")
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..5 {
        let before = logged().await;
        wait_for_projections(superuser).await;
        let live = read_models(superuser).await;
        rebuild_everything(db).await;
        let rebuilt = read_models(superuser).await;
        let after = logged().await;
        if after != before {
            eprintln!(
                "the log grew from {before} to {after} events while the read models were \
                 compared; again"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            continue;
        }
        assert_same_read_models(&live, &rebuilt);
        return;
    }
    panic!("the log never stood still for a rebuild to be compared with the live read models");
}

/// Each table's rows, live and rebuilt, are the same.
fn assert_same_read_models(live: &[(String, Vec<Value>)], rebuilt: &[(String, Vec<Value>)]) {
    for ((table, before), (_, after)) in live.iter().zip(rebuilt) {
        if before.len() != after.len() {
            // The rows each side lacks (a few of them).
            let only = |a: &[Value], b: &[Value]| -> Vec<String> {
                a.iter()
                    .filter(|row| !b.contains(row))
                    .take(5)
                    .map(Value::to_string)
                    .collect()
            };
            panic!(
                "{table}: {} rows live, {} rebuilt\n  only live: {:#?}\n  only rebuilt: {:#?}",
                before.len(),
                after.len(),
                only(before, after),
                only(after, before),
            );
        }
        // The first row that differs, not the whole table.
        if let Some((live_row, rebuilt_row)) = before.iter().zip(after).find(|(a, b)| a != b) {
            panic!(
                "{table}: the live model differs from a rebuild:\n  live:    {live_row}\n  \
                 rebuilt: {rebuilt_row}"
            );
        }
    }
}

/// Rebuilds every projection from the event store (shadow tables swapped in).
pub async fn rebuild_everything(db: &TestDb) -> projector::rebuild::RebuildReport {
    let rebuilder = projector::rebuild::Rebuilder {
        log: eventstore::GlobalLog::new(db.operator_pool().await)
            .with_upcasters(app::events::upcasters()),
        store: eventstore::EventStore::new(db.app_pool().await)
            .with_upcasters(app::events::upcasters()),
        app_pool: db.app_pool().await,
        operator_pool: db.operator_pool().await,
        // Small pages: a tenant's events span several, and a page several tenants.
        page: 50,
    };
    rebuilder
        .run(&projector::rebuild::RebuildRequest {
            projections: projector::projection::Projection::ALL.to_vec(),
            tenant: None,
            progress: false,
        })
        .await
        .expect("a rebuild")
}

/// The analytics consumer over a command API's database and namespace, until dropped.
pub struct AnalyticsHandle {
    pub stats: std::sync::Arc<analytics::consumer::Stats>,
    /// Its HTTP address (health, the events stream's AsyncAPI document).
    pub address: String,
    stop: CancellationToken,
    done: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub fn analytics_settings(db: &TestDb, nats: &TestNats) -> analytics::Settings {
    let s = service_settings(db, nats, REDIS_URL);
    analytics::Settings {
        http: s.http,
        database: s.database,
        nats: nats_as(s.nats, "analytics"),
        log: s.log,
        consumer: analytics::ConsumerSettings {
            batch_size: 500,
            attempts: 3,
            retry_delay_ms: 50,
        },
    }
}

pub async fn spawn_analytics(settings: analytics::Settings) -> AnalyticsHandle {
    let app = analytics::Application::build(settings)
        .await
        .expect("analytics builds");
    let stats = app.stats();
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    let done = tokio::spawn(app.run_until_stopped(stop.clone()));
    AnalyticsHandle {
        stats,
        address,
        stop,
        done: Some(done),
    }
}

impl AnalyticsHandle {
    /// Stops it as SIGTERM would: the batch in hand is committed first.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(done) = self.done.take() {
            done.await
                .expect("analytics did not panic")
                .expect("analytics stopped cleanly");
        }
    }
}

impl Drop for AnalyticsHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The dashboard over a test's command and query APIs, on a port of its own, until dropped.
pub struct DashboardApp {
    pub address: String,
    /// Its Redis key prefix (the test's own).
    pub key_prefix: String,
    stop: CancellationToken,
}

impl Drop for DashboardApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn spawn_dashboard(
    db: &TestDb,
    nats: &TestNats,
    command_url: &str,
    query_url: &str,
) -> DashboardApp {
    let s = service_settings(db, nats, REDIS_URL);
    let key_prefix = s.redis.key_prefix.clone();
    let app = dashboard::Application::build(dashboard::Settings {
        http: s.http,
        redis: s.redis,
        log: s.log,
        apis: dashboard::ApiSettings {
            command_url: command_url.to_owned(),
            query_url: query_url.to_owned(),
            timeout_ms: 5000,
        },
        session: dashboard::SessionSettings {
            secure_cookie: false,
            idle_hours: 24,
        },
    })
    .await
    .expect("the dashboard builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let stop = CancellationToken::new();
    tokio::spawn(app.run_until_stopped(stop.clone()));
    DashboardApp {
        address,
        key_prefix,
        stop,
    }
}

/// A database failing for a moment, as a test makes it: while it is on, every write to one
/// table fails with a serialization failure (SQLSTATE 40001), which a service must retry and
/// never take for the event's fault. Installed as the superuser (a trigger).
pub struct SerializationFailures {
    superuser: sqlx::PgPool,
}

impl SerializationFailures {
    /// Every insert or update on `table` fails from now on, until [`Self::lift`].
    pub async fn on(superuser: &sqlx::PgPool, table: &str) -> Self {
        sqlx::raw_sql(&format!(
            "create table test_fault ();
             insert into test_fault default values;
             create sequence test_fault_hits;
             create function test_fault() returns trigger language plpgsql security definer as $$
             begin
                 if exists (select from test_fault) then
                     perform nextval('test_fault_hits');
                     raise exception 'injected' using errcode = '40001';
                 end if;
                 return null;
             end $$;
             create trigger test_fault before insert or update on {table}
                 for each statement execute function test_fault();"
        ))
        .execute(superuser)
        .await
        .expect("the fault is installed");
        Self {
            superuser: superuser.clone(),
        }
    }

    /// The writes that failed so far (counted by a sequence, which no rollback takes back).
    pub async fn hits(&self) -> i64 {
        sqlx::query_scalar("select last_value from test_fault_hits")
            .fetch_one(&self.superuser)
            .await
            .expect("the count of failed writes")
    }

    /// The writes succeed again.
    pub async fn lift(&self) {
        sqlx::query("delete from test_fault")
            .execute(&self.superuser)
            .await
            .expect("the fault is lifted");
    }
}
