//! Analytics: a consumer of the events stream that keeps facts per tenant (what each booking
//! became, how each conversation went, messages a day) in the `analytics` schema, which the
//! query API serves as `/v1/analytics/*`.
//!
//! It reads the stream as any outside consumer could: the envelope's JSON and the published
//! event types of `domain` (`domain/EVENTS.md`), nothing of the event store, the application
//! layer or the projector. It writes only its own schema, under the event's tenant (RLS), and
//! never appends an event.

#![forbid(unsafe_code)]

pub mod consumer;
pub mod envelope;
pub mod facts;
pub mod rebuild;

use std::sync::Arc;
use std::time::Duration;

use platform::health::Dependencies;
use platform::{DatabaseSettings, HttpSettings, LogSettings, NatsSettings};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const DEFAULTS: &str = r#"
[http]
port = 8084

[consumer]
batch_size = 500
attempts = 3
retry_delay_ms = 200
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub log: LogSettings,
    pub consumer: ConsumerSettings,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ConsumerSettings {
    pub batch_size: usize,
    pub attempts: u32,
    pub retry_delay_ms: u64,
}

pub fn load_settings() -> anyhow::Result<Settings> {
    platform::settings::load("analytics", DEFAULTS)
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    consumer: consumer::Consumer,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let pool = platform::db::app_pool(&settings.database)?;
        let nats = settings.nats.connect("analytics").await?;
        let consumer = consumer::Consumer {
            pool: pool.clone(),
            nats: nats.clone(),
            ns: settings.nats.namespace()?,
            config: consumer::ConsumerConfig {
                batch_size: settings.consumer.batch_size,
                attempts: settings.consumer.attempts,
                retry_delay: Duration::from_millis(settings.consumer.retry_delay_ms),
                ..consumer::ConsumerConfig::default()
            },
            stats: Arc::default(),
        };
        // The analytics service is where the events stream is read as an outsider would, so
        // it serves the stream's description (internal: behind the platform's network).
        let router = platform::health::router(Dependencies {
            postgres: vec![("postgres", pool)],
            nats: Some(nats),
            redis: None,
        })
        .merge(platform::docs::asyncapi_router(domain::EVENTS_ASYNCAPI));
        let listener = TcpListener::bind(settings.http.address()).await?;
        Ok(Self {
            listener,
            router,
            consumer,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    pub fn stats(&self) -> Arc<consumer::Stats> {
        self.consumer.stats.clone()
    }

    /// Serves health and consumes until `shutdown`; the batch in hand is committed first.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let consuming = tokio::spawn(self.consumer.run(shutdown.child_token()));
        platform::serve::serve(self.listener, self.router, shutdown).await?;
        consuming.await??;
        Ok(())
    }
}
