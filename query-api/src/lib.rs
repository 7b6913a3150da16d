//! The read side over HTTP: dashboard reads, bot state lookups, audit.
//!
//! Reads read models (and, for audit, the log) as the application role under RLS, the tenant
//! always from the credential; the platform operator's audit reads through the operator role.
//! Never loads an aggregate, never appends. A request carrying a consistency token waits
//! (bounded) until the projections have reached it.
//!
//! One module per read model: `tenant`, `catalog` (configuration, services, availability),
//! `bookings`, `conversations`, `usage`, `billing`, `analytics` (the analytics consumer's facts)
//! and `audit` (the log). Each holds its routes' parameters (typed, a bad one a 422 naming it),
//! answers and compile-checked SQL; `paging` is how lists page, `reader` who reads.

#![forbid(unsafe_code)]

pub mod analytics;
pub mod audit;
pub mod billing;
pub mod bookings;
pub mod catalog;
pub mod conversations;
pub mod customers;
pub mod events;
pub mod paging;
pub mod reader;
pub mod security;
pub mod team;
pub mod tenant;
pub mod usage;
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::extract::FromRef;
use axum::routing::get;
use eventstore::{EventStore, GlobalLog};
use platform::auth::{AuthSettings, JwtKeys, OperatorKeys};
use platform::health::Dependencies;
use platform::{DatabaseSettings, HttpSettings, LogSettings, NatsSettings, RedisSettings};
use serde::Deserialize;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEFAULTS: &str = r#"
[http]
port = 8081

[auth]
issuer = "booking"
access_ttl_secs = 900
refresh_ttl_days = 30
active_kid = "dev-1"

[[auth.keys]]
kid = "dev-1"
secret = "development-only-secret-change-me-0123456789"

[operator_auth]
issuer = "booking-operator"
access_ttl_secs = 3600
refresh_ttl_days = 1
active_kid = "op-dev-1"

[[operator_auth.keys]]
kid = "op-dev-1"
secret = "development-only-operator-secret-0123456789"

[consistency]
max_wait_ms = 2000

[billing]
trial_days = 14

[limits]
# Requests of one credential (a user's access token or an API key), and the burst allowed.
per_credential_per_minute = 1200
per_credential_burst = 200
# An events stream is closed after this long; its client reconnects with Last-Event-ID and
# loses nothing. Long-lived connections so spread over the instances again, and a credential
# revoked since the stream opened stops reading at the latest then.
stream_max_seconds = 600
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    /// The same keys as the command API's: its access tokens are accepted here.
    pub auth: AuthSettings,
    pub operator_auth: AuthSettings,
    pub consistency: ConsistencySettings,
    pub billing: BillingSettings,
    pub limits: LimitSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LimitSettings {
    /// Requests of one credential (user or API key) per minute, and the burst allowed.
    pub per_credential_per_minute: u32,
    pub per_credential_burst: u32,
    /// How long an events stream stays open before the server ends it (the client resumes).
    pub stream_max_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct BillingSettings {
    /// Days of free trial (the plans page says it; the command API grants it).
    pub trial_days: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsistencySettings {
    /// How long a request with a consistency token waits for the projections before 503.
    pub max_wait_ms: u64,
}

pub fn load_settings() -> anyhow::Result<Settings> {
    platform::settings::load("query-api", DEFAULTS)
}

#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    /// The application role on the hot standby, when there is one (see `reader`).
    pub replica: Option<PgPool>,
    /// The log as the tenant reads it (audit), under RLS.
    pub store: EventStore,
    /// The log as the operator reads it (cross-tenant audit).
    pub log: GlobalLog,
    pub keys: JwtKeys,
    pub operator_keys: OperatorKeys,
    pub limiter: platform::ratelimit::RateLimiter,
    /// What one credential may ask per minute.
    pub credential_quota: platform::ratelimit::Quota,
    pub max_wait: Duration,
    /// How long an events stream stays open.
    pub stream_lifetime: Duration,
    /// The free trial's length a new business gets (as the command API grants it).
    pub trial_days: i64,
    /// Cancelled when the service stops: long-lived responses (the events stream) end.
    pub closing: CancellationToken,
    /// Where security events are kept.
    pub security: platform::security::SecurityLog,
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

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Booking platform: query API",
        description = "The read side: dashboard reads, the bot state lookup, availability, audit. Every error is application/problem+json."
    ),
    paths(
        tenant::tenant,
        catalog::services,
        catalog::bot_config,
        catalog::availability,
        bookings::bookings,
        bookings::booking,
        conversations::conversations,
        conversations::conversation,
        usage::usage,
        billing::plans,
        billing::billing,
        billing::invoices,
        audit::audit,
        audit::operator_audit,
        customers::export,
        security::security_events,
        analytics::overview,
        analytics::series,
        analytics::busiest_hours,
        analytics::platform,
        events::stream,
        webhooks::endpoints,
        webhooks::endpoint,
        webhooks::deliveries,
        team::members,
        team::api_keys
    )
)]
pub struct ApiDoc;

/// The OpenAPI document of this service.
pub fn openapi() -> utoipa::openapi::OpenApi {
    platform::docs::finish(<ApiDoc as utoipa::OpenApi>::openapi())
}

pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/v1/tenant", get(tenant::tenant))
        .route("/v1/services", get(catalog::services))
        .route("/v1/bot-config", get(catalog::bot_config))
        .route("/v1/availability", get(catalog::availability))
        .route("/v1/bookings", get(bookings::bookings))
        .route("/v1/bookings/{id}", get(bookings::booking))
        .route("/v1/conversations", get(conversations::conversations))
        .route(
            "/v1/conversations/{phone}",
            get(conversations::conversation),
        )
        .route("/v1/customers/{phone}/export", get(customers::export))
        .route("/v1/usage", get(usage::usage))
        .route("/v1/analytics/overview", get(analytics::overview))
        .route("/v1/analytics/series", get(analytics::series))
        .route("/v1/analytics/busiest-hours", get(analytics::busiest_hours))
        .route("/v1/operator/analytics", get(analytics::platform))
        .route("/v1/plans", get(billing::plans))
        .route("/v1/billing", get(billing::billing))
        .route("/v1/billing/invoices", get(billing::invoices))
        .route("/v1/audit", get(audit::audit))
        .route("/v1/security-events", get(security::security_events))
        .route("/v1/events/stream", get(events::stream))
        .route("/v1/users", get(team::members))
        .route("/v1/api-keys", get(team::api_keys))
        .route("/v1/webhook-endpoints", get(webhooks::endpoints))
        .route("/v1/webhook-endpoints/{id}", get(webhooks::endpoint))
        .route(
            "/v1/webhook-endpoints/{id}/deliveries",
            get(webhooks::deliveries),
        )
        .route(
            "/v1/operator/tenants/{id}/audit",
            get(audit::operator_audit),
        )
        .merge(platform::docs::router(openapi()))
        .merge(platform::docs::asyncapi_router(
            domain::INTEGRATIONS_ASYNCAPI,
        ))
        .with_state(app)
}

pub struct Application {
    listener: TcpListener,
    router: Router,
    closing: CancellationToken,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = platform::db::app_pool(&settings.database)?;
        let operator_pool = platform::db::operator_pool(&settings.database)?;
        let nats = settings.nats.connect("query-api").await?;
        let redis = Dependencies::redis_client(&settings.redis)?;
        let redis_link =
            platform::redis_link::RedisLink::new(Some(redis.clone()), &settings.redis.key_prefix);
        let security = platform::security::SecurityLog::spawn(pool.clone());
        let app = AppState {
            security: security.clone(),
            pool: pool.clone(),
            replica: platform::db::replica_pool(&settings.database)?,
            store: EventStore::new(pool.clone()).with_upcasters(app::events::upcasters()),
            log: GlobalLog::new(operator_pool.clone()).with_upcasters(app::events::upcasters()),
            keys: JwtKeys::from_settings(&settings.auth)?,
            operator_keys: OperatorKeys(JwtKeys::from_settings(&settings.operator_auth)?),
            limiter: platform::ratelimit::RateLimiter::new(redis_link),
            credential_quota: platform::ratelimit::Quota::per_minute(
                settings.limits.per_credential_per_minute,
                settings.limits.per_credential_burst,
            ),
            max_wait: Duration::from_millis(settings.consistency.max_wait_ms),
            stream_lifetime: Duration::from_secs(settings.limits.stream_max_seconds),
            trial_days: settings.billing.trial_days,
            closing: CancellationToken::new(),
        };
        let closing = app.closing.clone();
        let router = platform::problem::with_fallbacks(router(app)).merge(
            platform::health::router(Dependencies {
                postgres: vec![("postgres", pool), ("postgres_operator", operator_pool)],
                nats: Some(nats),
                redis: Some(redis),
            }),
        );
        // Every route is timed, health checks included.
        let router = platform::serve::timed(router, &settings.http).layer(
            axum::middleware::from_fn_with_state(security, platform::security::log_refusals),
        );
        let listener = TcpListener::bind(settings.http.address()).await?;
        Ok(Self {
            listener,
            router,
            closing,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Event streams end when the service stops, or the graceful shutdown would wait for
        // clients that never leave.
        let closing = self.closing.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            closing.cancel();
        });
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
            platform::settings::load("query-api-defaults-only", DEFAULTS).unwrap();
        JwtKeys::from_settings(&settings.auth).unwrap();
        JwtKeys::from_settings(&settings.operator_auth).unwrap();
    }
}
