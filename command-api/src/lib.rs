//! The write side over HTTP: onboarding, sessions, team and API keys, the bot configuration,
//! bookings, the WhatsApp number and Meta's webhook.
//!
//! Every handler is extract, call, render: it authenticates the caller (the tenant always
//! comes from the credential), checks the permission, calls a use case of `app`, and renders
//! its answer; an `AppError` becomes problem+json through `platform::problem`. No handler
//! loads an aggregate, loops on a conflict or runs SQL of the domain's; what stays here is
//! HTTP's own: rate limits, the tenant gate's cache, `Idempotency-Key` answers, the webhook's
//! signature. It never reads read models to decide and never publishes to NATS (the relay
//! does).

#![forbid(unsafe_code)]

pub mod api_keys;
pub mod auth;
pub mod billing;
pub mod bookings;
pub mod cache;
pub mod caller;
pub mod client;
pub mod config;
pub mod conversations;
pub mod idempotency;
pub mod keyed_lock;
pub mod mfa;
pub mod operator;
pub mod stripe_webhook;
pub mod tenants;
pub mod users;
pub mod verification;
pub mod webhook;
pub mod webhooks;
pub mod whatsapp_number;

use axum::Router;
use axum::extract::FromRef;
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use eventstore::{EventStore, Wakeups};
use platform::auth::{AuthSettings, JwtKeys, OperatorKeys};
use platform::health::Dependencies;
use platform::{DatabaseSettings, HttpSettings, LogSettings, NatsSettings, RedisSettings};
use secrecy::ExposeSecret as _;
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEFAULTS: &str = r#"
[http]
port = 8080

[auth]
issuer = "booking"
access_ttl_secs = 900
refresh_ttl_days = 30
active_kid = "dev-1"

[[auth.keys]]
kid = "dev-1"
secret = "development-only-secret-change-me-0123456789"

# Operator tokens: a separate key set (mint one with `bookingctl operator-token`).
[operator_auth]
issuer = "booking-operator"
access_ttl_secs = 3600
refresh_ttl_days = 1
active_kid = "op-dev-1"

[[operator_auth.keys]]
kid = "op-dev-1"
secret = "development-only-operator-secret-0123456789"

[limits]
onboard_per_ip_per_minute = 20
onboard_per_minute = 60
# A person tapping through the longest flow as fast as WhatsApp allows stays within the
# burst; beyond it the bot answers the latest message when the limit allows.
webhook_per_phone_per_minute = 20
webhook_per_phone_burst = 20
# Requests of one credential (a user's access token or an API key), and the burst allowed.
per_credential_per_minute = 600
per_credential_burst = 100
# The proxies (the dashboard, a load balancer) whose X-Forwarded-For names the client: the
# per-address limits count the address they name. Nobody else's header is believed.
# Addresses, comma-separated.
trusted_proxies = ""

[whatsapp]
api_base_url = "https://graph.facebook.com"
api_version = "v21.0"
# 32 bytes, base64. Development only: set APP__WHATSAPP__ENCRYPTION_KEY in any deployment.
encryption_key = "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMhISE="

[billing]
trial_days = 14
grace_days = 7
# Where problem answers send a business to upgrade or subscribe (the dashboard's billing page).
upgrade_url = "http://127.0.0.1:8080/billing"

[webhooks]
# Development and tests only: plain http:// endpoints (a receiver on this machine).
allow_http = false

[stripe]
# Stripe's API (the host root), or the local fake's.
api_base_url = "https://api.stripe.com/"
# Development only: set APP__STRIPE__SECRET_KEY and APP__STRIPE__WEBHOOK_SECRETS in any deployment.
secret_key = "sk_test_development_only"
# Every secret that may sign a webhook (two during a rotation), comma-separated.
webhook_secrets = "whsec_fake_development_only"
timeout_ms = 10000
# Where Checkout sends the owner afterwards.
success_url = "http://127.0.0.1:8080/billing?checkout=done"
cancel_url = "http://127.0.0.1:8080/billing?checkout=cancelled"
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub auth: AuthSettings,
    pub operator_auth: AuthSettings,
    pub whatsapp: WhatsAppSettings,
    pub limits: LimitSettings,
    pub billing: BillingSettings,
    pub stripe: StripeSettings,
    pub webhooks: WebhookSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    /// Whether a webhook endpoint may be a plain `http://` URL.
    pub allow_http: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    pub api_base_url: String,
    pub secret_key: secrecy::SecretString,
    /// Comma-separated: every secret that may sign a webhook now.
    pub webhook_secrets: secrecy::SecretString,
    pub timeout_ms: u64,
    pub success_url: String,
    pub cancel_url: String,
}

/// Stripe, as the handlers reach it.
#[derive(Clone, Debug)]
pub struct Stripe {
    pub gateway: ::billing::StripeGateway,
    pub webhook_secrets: Vec<String>,
    pub success_url: String,
    pub cancel_url: String,
}

impl Stripe {
    pub fn from_settings(s: &StripeSettings) -> anyhow::Result<Self> {
        Ok(Self {
            gateway: ::billing::StripeGateway::new(
                s.secret_key.expose_secret(),
                Some(&s.api_base_url),
                std::time::Duration::from_millis(s.timeout_ms),
            )?,
            webhook_secrets: s
                .webhook_secrets
                .expose_secret()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            success_url: s.success_url.clone(),
            cancel_url: s.cancel_url.clone(),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct BillingSettings {
    /// Days of free trial a new business gets.
    pub trial_days: i64,
    /// Days a business keeps everything after a failed payment before it is suspended.
    pub grace_days: i64,
    pub upgrade_url: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// Sign-ups from one address per minute (also its burst).
    pub onboard_per_ip_per_minute: u32,
    /// Sign-ups from all addresses together per minute (also its burst): many addresses do
    /// not make a flood of businesses.
    pub onboard_per_minute: u32,
    /// Messages one customer may send a business per minute before the bot stops answering
    /// (they are still recorded), and the burst allowed.
    pub webhook_per_phone_per_minute: u32,
    pub webhook_per_phone_burst: u32,
    /// Requests of one credential (user or API key) per minute, and the burst allowed.
    pub per_credential_per_minute: u32,
    pub per_credential_burst: u32,
    /// Whose `X-Forwarded-For` is believed (see [`client::ClientIp`]): addresses,
    /// comma-separated.
    #[serde(default)]
    pub trusted_proxies: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WhatsAppSettings {
    /// Meta's Graph API, or the local fake.
    pub api_base_url: String,
    pub api_version: String,
    /// Encrypts access tokens and app secrets at rest (32 bytes, base64).
    pub encryption_key: secrecy::SecretString,
}

pub fn load_settings() -> anyhow::Result<Settings> {
    platform::settings::load("command-api", DEFAULTS)
}

/// What every handler can reach. Cheap to clone: axum clones a route's service, its state
/// within, for every request, and a request waiting for its turn ([`platform::serve::bounded`])
/// holds that clone. Cloned whole, it was half of this process's live heap at its peak under
/// a burst of webhooks (`docs/scaling.md`, "The command API's peak: the state cloned with every request").
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// [`AppState`]'s contents, one per process.
pub struct Shared {
    /// The use cases' store, sealer and policy.
    pub app: app::App,
    pub keys: JwtKeys,
    pub operator_keys: OperatorKeys,
    pub cloud_api: whatsapp::CloudApi,
    pub limiter: platform::ratelimit::RateLimiter,
    pub tenant_status: cache::TenantStatusCache,
    /// phone_number_id to tenant, for webhooks.
    pub routes: cache::RouteCache,
    /// Each tenant's app secret, opened, for webhooks.
    pub secrets: cache::SecretCache,
    /// What one credential (user or API key) may ask per minute.
    pub credential_quota: platform::ratelimit::Quota,
    pub onboard_quota: platform::ratelimit::Quota,
    pub onboard_global_quota: platform::ratelimit::Quota,
    pub webhook_phone_quota: platform::ratelimit::Quota,
    /// Whose `X-Forwarded-For` names the client.
    pub trusted_proxies: std::sync::Arc<Vec<std::net::IpAddr>>,
    /// One webhook turn per conversation at a time in this process.
    pub conversations: keyed_lock::KeyedLocks,
    pub stripe: Stripe,
    /// How old an idempotency claim without an answer is when its request is surely gone.
    pub idempotency_stale: std::time::Duration,
    /// Where security events are kept.
    pub security: platform::security::SecurityLog,
}

/// The limits this service enforces.
pub mod limits {
    use platform::ratelimit::Quota;

    /// Password resets asked for one account.
    pub const RESETS_PER_ACCOUNT: Quota = Quota::per_minute(5, 5);

    /// Wrong passwords for one account from one address: five, then one a minute.
    pub const LOGIN_FAILURES_PER_SOURCE: Quota = Quota::per_minute(1, 5);

    /// The same, over an hour: twenty, then one every ten minutes (the delay escalates).
    pub const LOGIN_FAILURES_PER_SOURCE_HOURLY: Quota = Quota {
        rate: 6,
        period: std::time::Duration::from_secs(3600),
        burst: 20,
    };

    /// Wrong passwords for one account from everywhere before each further one is answered
    /// late.
    pub const LOGIN_FAILURES_PER_ACCOUNT: Quota = Quota::per_minute(10, 20);

    /// Logins (and, counted apart, password resets) from one address, whatever the account.
    pub const AUTH_PER_IP: Quota = Quota::per_minute(30, 10);
}

impl AppState {
    /// 429 with `Retry-After` when `subject` is over `quota`.
    pub async fn limit(
        &self,
        subject: &str,
        quota: platform::ratelimit::Quota,
    ) -> Result<(), platform::problem::Problem> {
        self.limiter.check(subject, quota).await.map_err(|l| {
            platform::problem::Problem::too_many_requests(l.retry_after.as_secs().max(1))
        })
    }
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(app: &AppState) -> JwtKeys {
        app.keys.clone()
    }
}

impl FromRef<AppState> for OperatorKeys {
    fn from_ref(app: &AppState) -> OperatorKeys {
        app.operator_keys.clone()
    }
}

/// The caller's `X-Request-Id`, kept in event metadata.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(128).collect())
}

/// Meta's notifications are small; anything this large is not one.
pub const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// The tenants whose opened app secrets one command API keeps (a minute each): the businesses
/// whose customers write within a minute, with room to spare; beyond it the least used go.
const SECRETS_CACHED: u64 = 10_000;

/// The streams one command API keeps folded (a minute each): the conversations in flight and
/// their businesses' tenant, configuration and billing, with room to spare.
const STATES_KEPT: u64 = 8_192;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Booking platform: command API",
        description = "The write side: onboarding, sessions, team and API keys, bot configuration, bookings, WhatsApp. Every write answers with a consistency_token (pass it to the query API as X-Consistency-Token to read your write). Every authenticated POST honours Idempotency-Key: a retry with the same key and body gets the first answer (Idempotent-Replayed: true), another body under the key 422. Every error is application/problem+json."
    ),
    paths(
        tenants::onboard,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::me,
        auth::request_password_reset,
        auth::confirm_password_reset,
        verification::verify,
        verification::resend,
        mfa::enroll,
        mfa::verify,
        users::accept,
        users::invite,
        users::change_role,
        users::deactivate,
        api_keys::create,
        api_keys::revoke,
        webhooks::register,
        webhooks::disable,
        webhooks::enable,
        webhooks::retry,
        webhooks::delete,
        config::put_bot_config,
        config::add_service,
        config::update_service,
        config::retire_service,
        whatsapp_number::connect,
        webhook::verify,
        webhook::receive,
        operator::suspend,
        operator::reinstate,
        bookings::book,
        bookings::confirm,
        bookings::cancel,
        bookings::reschedule,
        bookings::arrived,
        bookings::complete,
        bookings::no_show,
        conversations::take_over,
        conversations::reply,
        conversations::release,
        conversations::erase,
        billing::change_plan,
        billing::cancel,
        billing::checkout,
        stripe_webhook::receive
    )
)]
pub struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    platform::docs::finish(<ApiDoc as utoipa::OpenApi>::openapi())
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/tenants", post(tenants::onboard))
        .route("/v1/auth/login", post(auth::login))
        .route("/v1/auth/refresh", post(auth::refresh))
        .route("/v1/auth/logout", post(auth::logout))
        .route("/v1/me", get(auth::me))
        .route(
            "/v1/auth/password-reset",
            post(auth::request_password_reset),
        )
        .route(
            "/v1/auth/password-reset/confirm",
            post(auth::confirm_password_reset),
        )
        .route("/v1/auth/verify-email", post(verification::verify))
        .route("/v1/auth/verify-email/resend", post(verification::resend))
        .route("/v1/auth/mfa/enroll", post(mfa::enroll))
        .route("/v1/auth/mfa/verify", post(mfa::verify))
        .route("/v1/auth/accept-invitation", post(users::accept))
        .route("/v1/users", post(users::invite))
        .route("/v1/users/{id}/role", put(users::change_role))
        .route("/v1/users/{id}/deactivate", post(users::deactivate))
        .route("/v1/api-keys", post(api_keys::create))
        .route("/v1/api-keys/{id}", axum::routing::delete(api_keys::revoke))
        .route("/v1/webhook-endpoints", post(webhooks::register))
        .route(
            "/v1/webhook-endpoints/{id}",
            axum::routing::delete(webhooks::delete),
        )
        .route(
            "/v1/webhook-endpoints/{id}/disable",
            post(webhooks::disable),
        )
        .route("/v1/webhook-endpoints/{id}/enable", post(webhooks::enable))
        .route(
            "/v1/webhook-endpoints/{id}/deliveries/{seq}/retry",
            post(webhooks::retry),
        )
        .route("/v1/bot-config", put(config::put_bot_config))
        .route("/v1/services", post(config::add_service))
        .route(
            "/v1/services/{id}",
            put(config::update_service).delete(config::retire_service),
        )
        .route("/v1/whatsapp", put(whatsapp_number::connect))
        .route(
            "/webhooks/whatsapp",
            get(webhook::verify)
                .post(webhook::receive)
                .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .route("/v1/operator/tenants/{id}/suspend", post(operator::suspend))
        .route(
            "/v1/operator/tenants/{id}/reinstate",
            post(operator::reinstate),
        )
        .route("/v1/billing/plan", post(billing::change_plan))
        .route("/v1/billing/cancel", post(billing::cancel))
        .route("/v1/billing/checkout", post(billing::checkout))
        .route(
            "/webhooks/stripe",
            post(stripe_webhook::receive)
                .layer(axum::extract::DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .route("/v1/bookings", post(bookings::book))
        .route("/v1/bookings/{id}/confirm", post(bookings::confirm))
        .route("/v1/bookings/{id}/cancel", post(bookings::cancel))
        .route("/v1/bookings/{id}/reschedule", post(bookings::reschedule))
        .route("/v1/bookings/{id}/arrived", post(bookings::arrived))
        .route("/v1/bookings/{id}/complete", post(bookings::complete))
        .route("/v1/bookings/{id}/no-show", post(bookings::no_show))
        .route(
            "/v1/conversations/{phone}/handoff",
            post(conversations::take_over),
        )
        .route(
            "/v1/conversations/{phone}/messages",
            post(conversations::reply),
        )
        .route(
            "/v1/conversations/{phone}/release",
            post(conversations::release),
        )
        .route("/v1/customers/{phone}/erase", post(conversations::erase))
        .merge(platform::docs::router(openapi()))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            idempotency::layer,
        ))
        .with_state(app)
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = platform::db::app_pool(&settings.database)?;
        let nats = settings.nats.connect("command-api").await?;
        let redis = Dependencies::redis_client(&settings.redis)?;
        let store = EventStore::new(pool.clone())
            .with_upcasters(app::events::upcasters())
            .with_wakeups(Wakeups::new(nats.clone(), &settings.nats.namespace()?));
        let redis_link =
            platform::redis_link::RedisLink::new(Some(redis.clone()), &settings.redis.key_prefix);
        let security = platform::security::SecurityLog::spawn(pool.clone());
        let app = AppState(std::sync::Arc::new(Shared {
            security: security.clone(),
            app: app::App {
                store,
                states: app::StateCache::new(STATES_KEPT),
                sealer: vault::Sealer::from_base64(
                    settings.whatsapp.encryption_key.expose_secret(),
                )?,
                policy: app::Policy {
                    refresh_ttl: chrono::Duration::days(i64::from(settings.auth.refresh_ttl_days)),
                    trial: chrono::Duration::days(settings.billing.trial_days),
                    grace: chrono::Duration::days(settings.billing.grace_days),
                    upgrade_url: settings.billing.upgrade_url.clone(),
                    webhooks_allow_http: settings.webhooks.allow_http,
                    ..app::Policy::default()
                },
            },
            keys: JwtKeys::from_settings(&settings.auth)?,
            operator_keys: OperatorKeys(JwtKeys::from_settings(&settings.operator_auth)?),
            cloud_api: whatsapp::CloudApi::new(
                &settings.whatsapp.api_base_url,
                &settings.whatsapp.api_version,
                std::time::Duration::from_secs(10),
            ),
            conversations: keyed_lock::KeyedLocks::default(),
            idempotency_stale: idempotency::stale_after(settings.http.request_limit()),
            webhook_phone_quota: platform::ratelimit::Quota::per_minute(
                settings.limits.webhook_per_phone_per_minute,
                settings.limits.webhook_per_phone_burst,
            ),
            trusted_proxies: std::sync::Arc::new(
                settings
                    .limits
                    .trusted_proxies
                    .split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        p.parse().map_err(|_| {
                            anyhow::anyhow!("limits.trusted_proxies: {p:?} is not an address")
                        })
                    })
                    .collect::<anyhow::Result<Vec<std::net::IpAddr>>>()?,
            ),
            credential_quota: platform::ratelimit::Quota::per_minute(
                settings.limits.per_credential_per_minute,
                settings.limits.per_credential_burst,
            ),
            onboard_quota: platform::ratelimit::Quota::per_minute(
                settings.limits.onboard_per_ip_per_minute,
                settings.limits.onboard_per_ip_per_minute,
            ),
            onboard_global_quota: platform::ratelimit::Quota::per_minute(
                settings.limits.onboard_per_minute,
                settings.limits.onboard_per_minute,
            ),
            limiter: platform::ratelimit::RateLimiter::new(redis_link.clone()),
            routes: cache::RouteCache::new(redis_link.clone()),
            secrets: cache::SecretCache::new(SECRETS_CACHED),
            tenant_status: cache::TenantStatusCache::new(redis_link),
            stripe: Stripe::from_settings(&settings.stripe)?,
        }));
        // A burst is handled at the bound's pace; health checks are not held up by it.
        let router = platform::serve::bounded(router(app), &settings.http);
        let router = platform::problem::with_fallbacks(router).merge(platform::health::router(
            Dependencies {
                postgres: vec![("postgres", pool)],
                nats: Some(nats),
                redis: Some(redis),
            },
        ));
        // Every route is timed, health checks included.
        let router = platform::serve::timed(router, &settings.http).layer(
            axum::middleware::from_fn_with_state(security, platform::security::log_refusals),
        );
        let listener = TcpListener::bind(settings.http.address()).await?;
        Ok(Self { listener, router })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        platform::serve::serve(self.listener, self.router, shutdown).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_settings_make_a_working_service() {
        let settings: Settings =
            platform::settings::load("command-api-defaults-only", DEFAULTS).unwrap();
        JwtKeys::from_settings(&settings.auth).unwrap();
        JwtKeys::from_settings(&settings.operator_auth).unwrap();
        vault::Sealer::from_base64(settings.whatsapp.encryption_key.expose_secret()).unwrap();
    }
}

#[cfg(test)]
mod openapi_tests {
    #[test]
    fn the_document_serializes() {
        let doc = super::openapi();
        let json = doc.to_pretty_json().unwrap();
        assert!(json.len() > 1000, "{json}");
    }
}
