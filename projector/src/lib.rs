//! The asynchronous side: the relay from the event store to JetStream, the projections that
//! build read models, the reactor that sends WhatsApp replies, and the rebuild command.
//!
//! Reads the whole log as the operator role (relay, rebuild); writes read models as the
//! application role under RLS, setting the tenant of each event in its transaction. Never
//! appends events except the outcomes of its side effects (a reply sent or failed).

#![forbid(unsafe_code)]

pub mod billing_clock;
pub mod billing_reactor;
pub mod coalesce;
pub mod consumer;
pub mod conversation_clock;
pub mod dead_letters;
pub mod notifier;
pub mod projection;
pub mod projections;
pub mod rebuild;
pub mod sender;
pub mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use eventstore::{EventStore, GlobalLog, Relay, RelayConfig};
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
# The events stream's replicas when the relay creates it: 1 on one server, 3 on a cluster.
replicas = 1

[sender]
enabled = true
api_base_url = "https://graph.facebook.com"
api_version = "v21.0"
# The command API's whatsapp.encryption_key (development only; set APP__SENDER__ENCRYPTION_KEY).
encryption_key = "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMhISE="
timeout_ms = 10000
max_attempts = 6
backoff_base_ms = 250
backoff_max_ms = 8000
per_number_per_second = 80
breaker_failures = 5
breaker_open_ms = 30000
concurrency = 64
stale_claim_ms = 60000

[billing_clock]
enabled = true
every_ms = 30000

# Reservations that ran out, and answers due to customers who wrote too fast.
[conversation_clock]
enabled = true
every_ms = 1000

# The notifier: emails to a business's owners and admins.
[notifier]
enabled = true
smtp_url = "smtp://127.0.0.1:2525"
from = "Booking platform <billing@booking.invalid>"
billing_url = "http://127.0.0.1:8080/billing"
invitation_url = "http://127.0.0.1:8088/accept-invitation"
reset_url = "http://127.0.0.1:8088/reset-password"
verify_email_url = "http://127.0.0.1:8088/verify-email"
retry_ms = 5000

# The billing reactor: Stripe customers, subscription changes, meter events.
[stripe]
enabled = true
api_base_url = "https://api.stripe.com/"
# Development only: set APP__STRIPE__SECRET_KEY in any deployment.
secret_key = "sk_test_development_only"
timeout_ms = 10000
batch_size = 256
concurrency = 32
backoff_base_ms = 250
backoff_max_ms = 30000
breaker_failures = 5
breaker_open_ms = 30000

# The webhook deliverer: a business's public events to the URLs it registered.
[webhooks]
enabled = true
every_ms = 250
timeout_ms = 10000
first_backoff_ms = 30000
max_backoff_ms = 21600000
give_up_after_hours = 72
# Development and tests only: receivers on this machine or a private network.
allow_private_networks = false

[projections]
enabled = true
batch_size = 500
max_attempts = 5
retry_delay_ms = 500
# The most connections one batch's tenants are applied on at once.
parallelism = 4
"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
    pub relay: RelaySettings,
    pub projections: ProjectionSettings,
    pub sender: SenderSettings,
    pub billing_clock: BillingClockSettings,
    pub conversation_clock: ConversationClockSettings,
    pub stripe: StripeSettings,
    pub notifier: NotifierSettings,
    pub webhooks: WebhookSettings,
}

/// The webhook deliverer (see [`webhooks`]).
#[derive(Debug, Clone, Deserialize)]
pub struct WebhookSettings {
    pub enabled: bool,
    /// How often it looks for deliveries due.
    pub every_ms: u64,
    /// How long a receiver has to answer.
    pub timeout_ms: u64,
    /// The first retry's delay (doubled each time) and the longest.
    pub first_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// How long an event is retried before its endpoint is disabled.
    pub give_up_after_hours: u64,
    /// Whether receivers on loopback and private addresses may be posted to.
    pub allow_private_networks: bool,
}

impl WebhookSettings {
    pub fn config(&self) -> webhooks::DelivererConfig {
        webhooks::DelivererConfig {
            every: Duration::from_millis(self.every_ms),
            timeout: Duration::from_millis(self.timeout_ms),
            first_backoff: Duration::from_millis(self.first_backoff_ms),
            max_backoff: Duration::from_millis(self.max_backoff_ms),
            give_up_after: Duration::from_secs(self.give_up_after_hours * 3600),
            allow_private_networks: self.allow_private_networks,
            ..webhooks::DelivererConfig::default()
        }
    }
}

/// The notifier (see [`notifier`]).
#[derive(Debug, Clone, Deserialize)]
pub struct NotifierSettings {
    pub enabled: bool,
    /// `smtp://host:port` (plain, a local relay), `smtps://` or `smtp://...?tls=required`,
    /// with credentials in the URL when the server wants them.
    pub smtp_url: secrecy::SecretString,
    pub from: String,
    pub billing_url: String,
    pub invitation_url: String,
    pub reset_url: String,
    pub verify_email_url: String,
    pub retry_ms: u64,
}

/// The billing reactor (see [`billing_reactor`]).
#[derive(Debug, Clone, Deserialize)]
pub struct StripeSettings {
    pub enabled: bool,
    pub api_base_url: String,
    pub secret_key: secrecy::SecretString,
    pub timeout_ms: u64,
    pub batch_size: usize,
    pub concurrency: usize,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub breaker_failures: u32,
    pub breaker_open_ms: u64,
}

/// The billing clock (see [`billing_clock`]).
#[derive(Debug, Clone, Deserialize)]
pub struct BillingClockSettings {
    pub enabled: bool,
    /// How often it looks for trials and grace periods that ran out and limits near.
    pub every_ms: u64,
}

/// The conversation clock (see [`conversation_clock`]).
#[derive(Debug, Clone, Deserialize)]
pub struct ConversationClockSettings {
    pub enabled: bool,
    /// How often it looks for reservations that ran out and answers due.
    pub every_ms: u64,
}

/// The WhatsApp sender (see [`sender`]).
#[derive(Debug, Clone, Deserialize)]
pub struct SenderSettings {
    pub enabled: bool,
    /// Meta's Graph API, or the local fake.
    pub api_base_url: String,
    pub api_version: String,
    pub encryption_key: secrecy::SecretString,
    pub timeout_ms: u64,
    pub max_attempts: u32,
    pub backoff_base_ms: u64,
    pub backoff_max_ms: u64,
    pub per_number_per_second: u32,
    pub breaker_failures: u32,
    pub breaker_open_ms: u64,
    pub concurrency: usize,
    pub stale_claim_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ProjectionSettings {
    pub enabled: bool,
    pub batch_size: usize,
    /// Deliveries of one event before it is dead-lettered.
    pub max_attempts: i64,
    pub retry_delay_ms: u64,
    /// The most connections one batch's tenants are applied on at once (each share of whole
    /// tenants in its own transaction); 1 applies every batch in one transaction.
    pub parallelism: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RelaySettings {
    /// Every instance may run one: they elect a single active publisher.
    pub enabled: bool,
    pub batch_size: usize,
    pub idle_wait_ms: u64,
    /// How many servers keep the events stream, on creation (an existing one keeps its own).
    pub replicas: usize,
    /// The relay's own NATS user, the only one that may publish events (`nats/auth.conf`);
    /// without it the relay shares the process's connection (a server without authentication).
    #[serde(default)]
    pub nats_user: Option<String>,
    #[serde(default)]
    pub nats_password: Option<secrecy::SecretString>,
}

pub fn load_settings() -> anyhow::Result<Settings> {
    platform::settings::load("projector", DEFAULTS)
}

/// What the consumers and the dead-letter commands share.
pub fn runtime_with(
    settings: &Settings,
    app_pool: sqlx::PgPool,
    operator_pool: sqlx::PgPool,
    nats: async_nats::Client,
) -> anyhow::Result<consumer::Runtime> {
    Ok(consumer::Runtime {
        log: GlobalLog::new(operator_pool).with_upcasters(app::events::upcasters()),
        store: EventStore::new(app_pool.clone()).with_upcasters(app::events::upcasters()),
        pool: app_pool,
        nats,
        ns: settings.nats.namespace()?,
        upcasters: Arc::new(app::events::upcasters()),
        config: consumer::ConsumerConfig {
            batch_size: settings.projections.batch_size,
            max_attempts: settings.projections.max_attempts,
            retry_delay: Duration::from_millis(settings.projections.retry_delay_ms),
            linger: Duration::from_millis(5),
            parallelism: settings.projections.parallelism.max(1),
        },
    })
}

fn build_sender(settings: &Settings, app_pool: sqlx::PgPool) -> anyhow::Result<sender::Sender> {
    use secrecy::ExposeSecret as _;
    let s = &settings.sender;
    let redis = platform::health::Dependencies::redis_client(&settings.redis)?;
    Ok(sender::Sender::new(
        app::App {
            store: EventStore::new(app_pool.clone()).with_upcasters(app::events::upcasters()),
            states: app::StateCache::default(),
            sealer: vault::Sealer::from_base64(s.encryption_key.expose_secret())?,
            policy: app::Policy::default(),
        },
        app_pool,
        whatsapp::CloudApi::new(
            &s.api_base_url,
            &s.api_version,
            Duration::from_millis(s.timeout_ms),
        ),
        platform::ratelimit::RateLimiter::new(platform::redis_link::RedisLink::new(
            Some(redis),
            &settings.redis.key_prefix,
        )),
        sender::SenderConfig {
            max_attempts: s.max_attempts,
            backoff_base: Duration::from_millis(s.backoff_base_ms),
            backoff_max: Duration::from_millis(s.backoff_max_ms),
            per_number_per_second: s.per_number_per_second,
            breaker_failures: s.breaker_failures,
            breaker_open: Duration::from_millis(s.breaker_open_ms),
            concurrency: s.concurrency,
            stale_claim: Duration::from_millis(s.stale_claim_ms),
            batch_size: 256,
        },
    ))
}

/// A runtime on fresh connections (the dead-letter commands).
pub async fn runtime(settings: &Settings) -> anyhow::Result<consumer::Runtime> {
    let app_pool = platform::db::app_pool(&settings.database)?;
    let operator_pool = platform::db::operator_pool(&settings.database)?;
    let nats = settings.nats.connect("projector-cli").await?;
    runtime_with(settings, app_pool, operator_pool, nats)
}

/// The rebuild command's pools.
pub fn rebuilder(settings: &Settings) -> anyhow::Result<rebuild::Rebuilder> {
    let app_pool = platform::db::app_pool(&settings.database)?;
    let operator_pool = platform::db::operator_pool(&settings.database)?;
    Ok(rebuild::Rebuilder {
        log: GlobalLog::new(operator_pool.clone()).with_upcasters(app::events::upcasters()),
        store: EventStore::new(app_pool.clone()).with_upcasters(app::events::upcasters()),
        app_pool,
        operator_pool,
        page: rebuild::READ_BATCH,
    })
}

/// The application layer as a reactor uses it. Reactors seal nothing; the sender's key
/// stands in.
fn reactor_app(settings: &Settings, pool: &sqlx::PgPool) -> anyhow::Result<app::App> {
    Ok(app::App {
        store: EventStore::new(pool.clone()).with_upcasters(app::events::upcasters()),
        states: app::StateCache::default(),
        sealer: vault::Sealer::from_base64(secrecy::ExposeSecret::expose_secret(
            &settings.sender.encryption_key,
        ))?,
        policy: app::Policy::default(),
    })
}

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    relay: Option<Relay>,
    runtime: Option<consumer::Runtime>,
    stats: Vec<(projection::Projection, Arc<consumer::ProjectionStats>)>,
    sender: Option<(sender::Sender, async_nats::Client, nats::Namespace)>,
    billing_clock: Option<billing_clock::BillingClock>,
    conversation_clock: Option<conversation_clock::ConversationClock>,
    billing_reactor: Option<(
        billing_reactor::BillingReactor,
        async_nats::Client,
        nats::Namespace,
    )>,
    notifier: Option<(notifier::Notifier, async_nats::Client, nats::Namespace)>,
    deliverer: Option<webhooks::Deliverer>,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let app_pool = platform::db::app_pool(&settings.database)?;
        let operator_pool = platform::db::operator_pool(&settings.database)?;
        let nats = settings.nats.connect("projector").await?;
        let redis = Dependencies::redis_client(&settings.redis)?;
        let relay_nats = match platform::settings::login(
            settings.relay.nats_user.as_deref(),
            settings.relay.nats_password.as_ref(),
            "relay",
        )? {
            Some(login) if settings.relay.enabled => {
                nats::connect(&settings.nats.url, "relay", Some(&login)).await?
            }
            _ => nats.clone(),
        };
        let relay = settings.relay.enabled.then(|| {
            let config = RelayConfig {
                batch_size: settings.relay.batch_size,
                idle_wait: Duration::from_millis(settings.relay.idle_wait_ms),
                storage: settings.nats.storage(),
                replicas: settings.relay.replicas,
                ..RelayConfig::default()
            };
            settings.nats.namespace().map(|ns| {
                Relay::new(
                    GlobalLog::new(operator_pool.clone()),
                    relay_nats,
                    ns,
                    config,
                )
            })
        });
        let relay = relay.transpose()?;
        let runtime = settings.projections.enabled.then(|| {
            runtime_with(
                &settings,
                app_pool.clone(),
                operator_pool.clone(),
                nats.clone(),
            )
        });
        let runtime = runtime.transpose()?;
        let sender = if settings.sender.enabled {
            Some((
                build_sender(&settings, app_pool.clone())?,
                nats.clone(),
                settings.nats.namespace()?,
            ))
        } else {
            None
        };
        let billing_clock = if settings.billing_clock.enabled {
            Some(billing_clock::BillingClock {
                app: reactor_app(&settings, &app_pool)?,
                operator: operator_pool.clone(),
                gates: platform::tenant_gate::TenantStatusCache::new(
                    platform::redis_link::RedisLink::new(
                        Some(redis.clone()),
                        &settings.redis.key_prefix,
                    ),
                ),
                every: Duration::from_millis(settings.billing_clock.every_ms),
            })
        } else {
            None
        };
        let conversation_clock = if settings.conversation_clock.enabled {
            Some(conversation_clock::ConversationClock {
                app: reactor_app(&settings, &app_pool)?,
                operator: operator_pool.clone(),
                every: Duration::from_millis(settings.conversation_clock.every_ms),
            })
        } else {
            None
        };
        let billing_reactor = if settings.stripe.enabled {
            let s = &settings.stripe;
            Some((
                billing_reactor::BillingReactor::new(
                    reactor_app(&settings, &app_pool)?,
                    billing::StripeGateway::new(
                        secrecy::ExposeSecret::expose_secret(&s.secret_key),
                        Some(&s.api_base_url),
                        Duration::from_millis(s.timeout_ms),
                    )?,
                    billing_reactor::ReactorConfig {
                        batch_size: s.batch_size,
                        concurrency: s.concurrency,
                        backoff_base: Duration::from_millis(s.backoff_base_ms),
                        backoff_max: Duration::from_millis(s.backoff_max_ms),
                        breaker_failures: s.breaker_failures,
                        breaker_open: Duration::from_millis(s.breaker_open_ms),
                    },
                ),
                nats.clone(),
                settings.nats.namespace()?,
            ))
        } else {
            None
        };
        let notifier = if settings.notifier.enabled {
            let n = &settings.notifier;
            let mailer = lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::from_url(
                secrecy::ExposeSecret::expose_secret(&n.smtp_url),
            )?
            .timeout(Some(Duration::from_secs(10)))
            .build();
            Some((
                notifier::Notifier {
                    app: reactor_app(&settings, &app_pool)?,
                    mailer,
                    from: n.from.parse()?,
                    billing_url: n.billing_url.clone(),
                    invitation_url: n.invitation_url.clone(),
                    reset_url: n.reset_url.clone(),
                    verify_email_url: n.verify_email_url.clone(),
                    retry_after: Duration::from_millis(n.retry_ms),
                    stats: Arc::default(),
                },
                nats.clone(),
                settings.nats.namespace()?,
            ))
        } else {
            None
        };
        let deliverer = if settings.webhooks.enabled {
            Some(webhooks::Deliverer::new(
                reactor_app(&settings, &app_pool)?,
                operator_pool.clone(),
                settings.webhooks.config(),
            )?)
        } else {
            None
        };
        let stats = projection::Projection::ALL
            .into_iter()
            .map(|p| (p, Arc::default()))
            .collect();
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
            runtime,
            stats,
            sender,
            billing_clock,
            conversation_clock,
            billing_reactor,
            notifier,
            deliverer,
        })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The sender's counters, when it runs.
    pub fn sender_stats(&self) -> Option<Arc<sender::SenderStats>> {
        self.sender.as_ref().map(|(s, _, _)| s.stats.clone())
    }

    /// Counters of each projection's live consumer.
    pub fn stats(&self) -> &[(projection::Projection, Arc<consumer::ProjectionStats>)] {
        &self.stats
    }

    /// Serves health and runs the relay and the consumers until `shutdown`; each finishes the
    /// batch in hand before this returns.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(relay) = self.relay {
            tasks.spawn(relay.run(shutdown.child_token()));
        }
        if let Some(runtime) = &self.runtime {
            tasks.spawn(consumer::run(
                runtime.clone(),
                self.stats.clone(),
                shutdown.child_token(),
            ));
        }
        if let Some((sender, nats, ns)) = self.sender {
            tasks.spawn(sender.run(nats, ns, shutdown.child_token()));
        }
        if let Some(clock) = self.billing_clock {
            tasks.spawn(clock.run(shutdown.child_token()));
        }
        if let Some(clock) = self.conversation_clock {
            tasks.spawn(clock.run(shutdown.child_token()));
        }
        if let Some((reactor, nats, ns)) = self.billing_reactor {
            tasks.spawn(reactor.run(nats, ns, shutdown.child_token()));
        }
        if let Some((notifier, nats, ns)) = self.notifier {
            tasks.spawn(notifier.run(nats, ns, shutdown.child_token()));
        }
        if let Some(deliverer) = self.deliverer {
            tasks.spawn(deliverer.run(shutdown.child_token()));
        }
        platform::serve::serve(self.listener, self.router, shutdown).await?;
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        Ok(())
    }
}
