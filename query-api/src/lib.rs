//! The read side over HTTP: dashboard reads, bot state lookups, audit and analytics.
//!
//! Reads read models only (and the log, for audit); never loads an aggregate, never appends.
//! Today it serves health and readiness; the queries arrive with their issue.

#![forbid(unsafe_code)]

use platform::ServiceSettings;
use platform::health::Dependencies;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEFAULTS: &str = "[http]\nport = 8081\n";

pub fn load_settings() -> anyhow::Result<ServiceSettings> {
    platform::settings::load("query-api", DEFAULTS)
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
}

impl Application {
    pub async fn build(settings: ServiceSettings) -> anyhow::Result<Self> {
        let pool = platform::db::app_pool(&settings.database)?;
        let nats = nats::connect(&settings.nats.url, "query-api").await?;
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
