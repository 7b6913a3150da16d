//! The write side over HTTP: commands, auth issuance, the WhatsApp and Stripe webhooks.
//!
//! Decides with the pure domain and appends through the event store as the application role,
//! inside one tenant transaction per request. It never reads read models to decide and never
//! publishes to NATS (the relay does). Today it serves health and readiness; the command
//! endpoints arrive with their issue.

#![forbid(unsafe_code)]

use platform::ServiceSettings;
use platform::health::Dependencies;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEFAULTS: &str = "[http]\nport = 8080\n";

pub fn load_settings() -> anyhow::Result<ServiceSettings> {
    platform::settings::load("command-api", DEFAULTS)
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

impl Application {
    pub async fn build(settings: ServiceSettings) -> anyhow::Result<Self> {
        let pool = platform::db::app_pool(&settings.database)?;
        let nats = nats::connect(&settings.nats.url, "command-api").await?;
        let redis = Dependencies::redis_client(&settings.redis)?;
        let router = platform::health::router(Dependencies {
            postgres: vec![("postgres", pool)],
            nats: Some(nats),
            redis: Some(redis),
        });
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
