//! The asynchronous side: the relay from the event store to JetStream, and (with their issue)
//! the projections that build read models, the reactors that send WhatsApp messages and report
//! usage, and the rebuild command.
//!
//! Reads the whole log as the operator role (relay, rebuild); writes read models as the
//! application role, one tenant transaction at a time.

#![forbid(unsafe_code)]

use std::time::Duration;

use eventstore::{GlobalLog, Relay, RelayConfig};
use platform::health::Dependencies;
use platform::{DatabaseSettings, HttpSettings, LogSettings, NatsSettings, RedisSettings};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEFAULTS: &str = r#"
[http]
port = 8082

[relay]
enabled = true
batch_size = 1000
idle_wait_ms = 1000
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub relay: RelaySettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RelaySettings {
    /// Every instance may run one: they elect a single active publisher.
    pub enabled: bool,
    pub batch_size: usize,
    pub idle_wait_ms: u64,
}

pub fn load_settings() -> anyhow::Result<Settings> {
    platform::settings::load("projector", DEFAULTS)
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    relay: Option<Relay>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let app_pool = platform::db::app_pool(&settings.database)?;
        let operator_pool = platform::db::operator_pool(&settings.database)?;
        let nats = nats::connect(&settings.nats.url, "projector").await?;
        let redis = Dependencies::redis_client(&settings.redis)?;
        let relay = settings.relay.enabled.then(|| {
            let config = RelayConfig {
                batch_size: settings.relay.batch_size,
                idle_wait: Duration::from_millis(settings.relay.idle_wait_ms),
                storage: settings.nats.storage(),
                ..RelayConfig::default()
            };
            settings.nats.namespace().map(|ns| {
                Relay::new(
                    GlobalLog::new(operator_pool.clone()),
                    nats.clone(),
                    ns,
                    config,
                )
            })
        });
        let relay = relay.transpose()?;
        let router = platform::health::router(Dependencies {
            postgres: vec![("postgres", app_pool), ("postgres_operator", operator_pool)],
            nats: Some(nats),
            redis: Some(redis),
        });
        let listener = TcpListener::bind(settings.http.address()).await?;
        Ok(Self {
            listener,
            router,
            relay,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Serves health and runs the relay until `shutdown`; the relay finishes its batch and
    /// checkpoints before this returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = self
            .relay
            .map(|relay| tokio::spawn(relay.run(shutdown.child_token())));
        platform::serve::serve(self.listener, self.router, shutdown).await?;
        if let Some(relay) = relay {
            relay.await??;
        }
        Ok(())
    }
}
