//! The owners' dashboard: server-rendered pages (askama templates, htmx for partial updates)
//! that are a client of the platform's own APIs. Every write goes to the command API and every
//! read to the query API, over HTTP, with the member's own tokens; a write's consistency token
//! goes with the next read, so a change shows on the very next page. The dashboard has no
//! database of its own: a member's session (their access and refresh tokens) is kept in Redis
//! under a random id, which is all the browser's cookie holds (`session.rs`).
//!
//! Pages: the login (with the second factor), Home (today's appointments, the week against the
//! last, what needs the business, the plan's usage) and Bookings (by tab, paged). Every
//! response carries a strict Content-Security-Policy (no inline script or style), and a
//! state-changing request from another site is refused (`guard.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use platform::health::Dependencies;
use platform::{HttpSettings, LogSettings, RedisSettings};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub mod account;
pub mod analytics;
pub mod api;
pub mod billing;
pub mod bot;
pub mod calendar;
pub mod guard;
pub mod pages;
pub mod reset;
pub mod session;
pub mod setup;
pub mod signup;
pub mod team;
pub mod verify;
pub mod whatsapp;

const DEFAULTS: &str = r#"
[http]
port = 8088

[apis]
command_url = "http://127.0.0.1:8080"
query_url = "http://127.0.0.1:8081"
timeout_ms = 10000

[session]
# Behind TLS: the cookie is Secure and named __Host-session.
secure_cookie = false
# A session unused this long is forgotten (the refresh token lives as long).
idle_hours = 24
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub apis: ApiSettings,
    pub session: SessionSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ApiSettings {
    pub command_url: String,
    pub query_url: String,
    pub timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionSettings {
    pub secure_cookie: bool,
    pub idle_hours: u64,
}

pub fn load_settings() -> anyhow::Result<Settings> {
    platform::settings::load("dashboard", DEFAULTS)
}

/// What every handler reaches.
#[derive(Clone)]
pub struct AppState {
    pub api: Arc<api::Api>,
    pub sessions: session::Sessions,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(pages::login_form).post(pages::login))
        .route("/logout", post(pages::logout))
        .route("/bookings", get(pages::bookings))
        .route("/bookings/{id}/{action}", post(pages::booking_action))
        .route("/calendar", get(calendar::calendar))
        .route(
            "/bookings/new",
            get(calendar::new_booking).post(calendar::create_booking),
        )
        .route("/bookings/{id}", get(calendar::booking))
        .route("/bookings/{id}/reschedule", post(calendar::reschedule))
        .route("/inbox", get(pages::inbox))
        .route("/audit", get(pages::audit))
        .route("/inbox/{phone}", get(pages::conversation))
        .route("/inbox/{phone}/{action}", post(pages::conversation_action))
        .route("/account", get(account::account))
        .route("/account/second-factor", post(account::enroll))
        .route("/account/second-factor/verify", post(account::verify))
        .route("/account/password", post(account::password))
        .route("/setup", get(setup::setup))
        .route("/setup/services", post(setup::add_service))
        .route(
            "/setup/services/{id}",
            get(setup::service).post(setup::save_service),
        )
        .route("/setup/services/{id}/retire", post(setup::retire_service))
        .route("/setup/week", post(setup::save_week))
        .route("/setup/bot", get(bot::bot).post(bot::save_bot))
        .route("/setup/bot/preview", post(bot::bot_preview))
        .route("/whatsapp", get(whatsapp::whatsapp).post(whatsapp::connect))
        .route("/billing", get(billing::billing).post(billing::act))
        .route("/analytics", get(analytics::analytics))
        .route("/team", get(team::team))
        .route("/team/invite", post(team::invite))
        .route("/team/users/{id}/{action}", post(team::member_action))
        .route("/team/keys", post(team::create_key))
        .route("/team/keys/{id}/revoke", post(team::revoke_key))
        .route(
            "/accept-invitation",
            get(team::accept_form).post(team::accept),
        )
        .route(
            "/forgot-password",
            get(reset::forgot_form).post(reset::forgot),
        )
        .route("/reset-password", get(reset::reset_form).post(reset::reset))
        .route(
            "/verify-email",
            get(verify::verify_form).post(verify::verify),
        )
        .route("/verify-email/resend", post(verify::resend))
        .route("/signup", get(signup::signup_form).post(signup::signup))
        .route("/static/{*path}", get(pages::asset))
        .layer(axum::middleware::from_fn_with_state(
            state.sessions.clone(),
            guard::guard,
        ))
        .with_state(state)
}

pub struct Application {
    listener: TcpListener,
    router: Router,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let redis = Dependencies::redis_client(&settings.redis)?;
        let state = AppState {
            api: Arc::new(api::Api::new(
                &settings.apis.command_url,
                &settings.apis.query_url,
                Duration::from_millis(settings.apis.timeout_ms),
            )?),
            sessions: session::Sessions::new(
                redis.clone(),
                &settings.redis.key_prefix,
                settings.session.secure_cookie,
                Duration::from_secs(settings.session.idle_hours * 3600),
            ),
        };
        let router = router(state).merge(platform::health::router(Dependencies {
            postgres: vec![],
            nats: None,
            redis: Some(redis),
        }));
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
