//! The billing reactor: what billing's events ask of Stripe, done after the command, so that
//! Stripe being down or slow never blocks one.
//!
//! Two durable consumers:
//! - `billing-stripe` reads the billing streams. A trial started makes the business's Stripe
//!   customer (idempotent by tenant); a plan changed or a cancellation scheduled brings
//!   Stripe's subscription to what the billing stream says now (the price, the cancellation
//!   at the period end), so events handled late or out of order converge on the same state.
//!   Stripe's answer is recorded back (`app::billing::sync_subscription`).
//! - `billing-meter` reads the conversations and reports every WhatsApp message in or out of
//!   a subscribed business as a Stripe meter event whose identifier is the event's id: a
//!   redelivery, or a restart half-way through a batch, never counts a message twice.
//!
//! A call Stripe did not answer is retried with exponential backoff (the message is handed
//! back to JetStream with a delay); after `breaker_failures` in a row the breaker opens and
//! Stripe is left alone for `breaker_open`. Nothing is acknowledged before it is done.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::CommandContext;
use async_nats::jetstream::{self, AckKind};
use billing::{GatewayError, StripeGateway};
use domain::DomainEvent as _;
use domain::billing::{BillingEvent, BillingStatus};
use domain::conversation::ConversationEvent;
use eventstore::RecordedEvent;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::consumer::{consume, receive};

pub const STRIPE_DURABLE: &str = "billing-stripe";
pub const METER_DURABLE: &str = "billing-meter";

#[derive(Debug, Clone)]
pub struct ReactorConfig {
    pub batch_size: usize,
    /// Meter events in flight at once.
    pub concurrency: usize,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub breaker_failures: u32,
    pub breaker_open: Duration,
}

#[derive(Debug, Default)]
pub struct ReactorStats {
    pub customers_created: AtomicU64,
    pub subscriptions_updated: AtomicU64,
    pub meter_events: AtomicU64,
    pub retries: AtomicU64,
}

#[derive(Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

#[derive(Clone)]
pub struct BillingReactor {
    pub app: app::App,
    pub stripe: StripeGateway,
    pub config: ReactorConfig,
    pub stats: Arc<ReactorStats>,
    breaker: Arc<Mutex<Breaker>>,
}

/// What to tell JetStream about a message.
enum Disposition {
    Ack,
    Retry(Duration),
}

impl BillingReactor {
    pub fn new(app: app::App, stripe: StripeGateway, config: ReactorConfig) -> Self {
        Self {
            app,
            stripe,
            config,
            stats: Arc::default(),
            breaker: Arc::default(),
        }
    }

    /// Runs both consumers until `cancel`.
    pub async fn run(
        self,
        nats: async_nats::Client,
        ns: nats::Namespace,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let prefix = ns.all_events().trim_end_matches('>').to_owned();
        let billing = format!("{prefix}*.{}.>", BillingEvent::STREAM_TYPE);
        let conversations = format!("{prefix}*.{}.>", ConversationEvent::STREAM_TYPE);
        let upcasters = app::events::upcasters();
        let (reactor, upcasters) = (&self, &upcasters);
        let decode = move |messages: Vec<jetstream::Message>| async move {
            receive(
                reactor.app.store.pool(),
                upcasters,
                messages,
                Duration::from_secs(1),
            )
            .await
        };
        let batch = (self.config.batch_size, Duration::from_millis(20));
        let stripe = consume(
            &nats,
            &ns,
            STRIPE_DURABLE,
            billing,
            batch,
            &cancel,
            |m| async move {
                // In order: a tenant's billing events one after another.
                for (message, event) in decode(m).await {
                    let attempt = message.info().map(|i| i.delivered as u64).unwrap_or(1);
                    let disposition = reactor.react(&event, attempt).await;
                    settle(&message, disposition).await;
                }
            },
        );
        let meter = consume(
            &nats,
            &ns,
            METER_DURABLE,
            conversations,
            batch,
            &cancel,
            |m| async move {
                let batch = decode(m).await;
                reactor.meter_batch(batch).await;
            },
        );
        tokio::try_join!(stripe, meter)?;
        Ok(())
    }

    fn breaker_open(&self) -> Option<Duration> {
        let breaker = self.breaker.lock().expect("not poisoned");
        breaker
            .open_until
            .and_then(|until| until.checked_duration_since(Instant::now()))
    }

    fn breaker_result(&self, ok: bool) {
        let mut breaker = self.breaker.lock().expect("not poisoned");
        if ok {
            *breaker = Breaker::default();
            return;
        }
        breaker.consecutive_failures += 1;
        if breaker.consecutive_failures >= self.config.breaker_failures.max(1) {
            breaker.open_until = Some(Instant::now() + self.config.breaker_open);
            tracing::warn!(open_for = ?self.config.breaker_open, "Stripe keeps failing: the breaker opens");
        }
    }

    /// The delay before the `attempt`th retry.
    fn backoff(&self, attempt: u64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(16) as u32);
        (self.config.backoff_base * factor).min(self.config.backoff_max)
    }

    /// Runs a call to Stripe through the breaker: the retry delay when it did not answer.
    async fn call<T>(
        &self,
        attempt: u64,
        call: impl std::future::Future<Output = Result<T, GatewayError>>,
    ) -> Result<Option<T>, Duration> {
        if let Some(wait) = self.breaker_open() {
            return Err(wait);
        }
        match call.await {
            Ok(value) => {
                self.breaker_result(true);
                Ok(Some(value))
            }
            Err(GatewayError::Unavailable(reason)) => {
                self.breaker_result(false);
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%reason, attempt, "Stripe did not answer; will retry");
                Err(self.backoff(attempt))
            }
            Err(refused) => {
                // A refusal will not change by trying again: logged, and the work dropped.
                self.breaker_result(true);
                tracing::error!(error = %refused, "Stripe refused a billing call");
                Ok(None)
            }
        }
    }

    async fn react(&self, event: &RecordedEvent, attempt: u64) -> Disposition {
        match self.try_react(event, attempt).await {
            Ok(d) => d,
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), event_id = %event.event_id, "billing reactor failed; will retry");
                Disposition::Retry(self.config.backoff_base * 4)
            }
        }
    }

    async fn try_react(&self, event: &RecordedEvent, attempt: u64) -> anyhow::Result<Disposition> {
        let tenant = event.tenant_id;
        let billing = domain::event::decode::<BillingEvent>(&event.event_type, &event.payload)?;
        let ctx = |what: &str| {
            CommandContext::new(
                tenant,
                "system:billing-reactor",
                format!("{what}|{}", event.event_id),
            )
            .caused_by(event)
        };
        match billing {
            BillingEvent::TrialStarted { .. } => {
                let state = app::billing::state(&self.app.store, tenant).await?;
                if state.customer_id.is_some() {
                    return Ok(Disposition::Ack);
                }
                let (name, email) = app::tenants::profile(&self.app.store, tenant).await?;
                let created = self
                    .call(attempt, self.stripe.create_customer(tenant, &name, &email))
                    .await;
                match created {
                    Ok(Some(customer)) => {
                        app::billing::record_customer(&self.app, &ctx("stripe-customer"), customer)
                            .await?;
                        self.stats.customers_created.fetch_add(1, Ordering::Relaxed);
                        Ok(Disposition::Ack)
                    }
                    Ok(None) => Ok(Disposition::Ack),
                    Err(wait) => Ok(Disposition::Retry(wait)),
                }
            }
            BillingEvent::PlanChanged { .. } | BillingEvent::CancellationScheduled { .. } => {
                self.reconcile(tenant, event, attempt).await
            }
            _ => Ok(Disposition::Ack),
        }
    }

    /// Brings Stripe's subscription to what the billing stream says now.
    async fn reconcile(
        &self,
        tenant: Uuid,
        event: &RecordedEvent,
        attempt: u64,
    ) -> anyhow::Result<Disposition> {
        let state = app::billing::state(&self.app.store, tenant).await?;
        let (Some(subscription), Some(plan)) = (state.subscription.as_ref(), state.plan) else {
            return Ok(Disposition::Ack); // a change during the trial: nothing at Stripe yet
        };
        if state.status == BillingStatus::Cancelled {
            return Ok(Disposition::Ack);
        }
        let cycle = state.cycle.unwrap_or(subscription.cycle);
        let key = event.event_id.to_string();
        let current = match self
            .call(
                attempt,
                self.stripe.subscription(&subscription.subscription_id),
            )
            .await
        {
            Ok(Some(current)) => current,
            Ok(None) => return Ok(Disposition::Ack),
            Err(wait) => return Ok(Disposition::Retry(wait)),
        };
        let mut latest = current.clone();
        if current.plan != plan || current.cycle != cycle {
            match self
                .call(
                    attempt,
                    self.stripe
                        .change_price(&subscription.subscription_id, plan, cycle, &key),
                )
                .await
            {
                Ok(Some(changed)) => latest = changed,
                Ok(None) => return Ok(Disposition::Ack),
                Err(wait) => return Ok(Disposition::Retry(wait)),
            }
        }
        if subscription.cancel_at_period_end && !latest.cancel_at_period_end {
            match self
                .call(
                    attempt,
                    self.stripe
                        .cancel_at_period_end(&subscription.subscription_id, &key),
                )
                .await
            {
                Ok(Some(changed)) => latest = changed,
                Ok(None) => return Ok(Disposition::Ack),
                Err(wait) => return Ok(Disposition::Retry(wait)),
            }
        }
        if latest != current {
            self.stats
                .subscriptions_updated
                .fetch_add(1, Ordering::Relaxed);
        }
        app::billing::sync_subscription(
            &self.app,
            tenant,
            &format!("reconciled-{key}"),
            latest,
            chrono::Utc::now(),
        )
        .await?;
        Ok(Disposition::Ack)
    }

    /// Reports a batch's messages, `concurrency` at a time; each message is acknowledged once
    /// Stripe has it (or the business has no subscription to bill it to).
    async fn meter_batch(&self, batch: Vec<(jetstream::Message, RecordedEvent)>) {
        // Each tenant's Stripe customer, when it has a subscription, read once per batch.
        let mut customers: HashMap<Uuid, Option<String>> = HashMap::new();
        let mut work = Vec::new();
        for (message, event) in batch {
            if !matches!(
                event.event_type.as_str(),
                "MessageReceived" | "OutboundMessageSent"
            ) {
                let _ = message.ack().await;
                continue;
            }
            let customer = match customers.get(&event.tenant_id) {
                Some(c) => c.clone(),
                None => match app::billing::state(&self.app.store, event.tenant_id).await {
                    Ok(state) => {
                        let c = state.customer_id.filter(|_| state.subscription.is_some());
                        customers.insert(event.tenant_id, c.clone());
                        c
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot read a tenant's billing; will retry");
                        settle(&message, Disposition::Retry(self.config.backoff_base)).await;
                        continue;
                    }
                },
            };
            match customer {
                None => {
                    let _ = message.ack().await; // a trial's messages are not billed
                }
                Some(customer) => work.push((message, event, customer)),
            }
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (message, event, customer) in work {
            let reactor = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let attempt = message.info().map(|i| i.delivered as u64).unwrap_or(1);
                let sent = reactor
                    .call(
                        attempt,
                        reactor.stripe.report_messages(
                            &customer,
                            1,
                            event.event_id,
                            event.recorded_at,
                        ),
                    )
                    .await;
                let disposition = match sent {
                    Ok(_) => {
                        reactor.stats.meter_events.fetch_add(1, Ordering::Relaxed);
                        Disposition::Ack
                    }
                    Err(wait) => Disposition::Retry(wait),
                };
                settle(&message, disposition).await;
            });
        }
        while tasks.join_next().await.is_some() {}
    }
}

async fn settle(message: &jetstream::Message, disposition: Disposition) {
    let _ = match disposition {
        Disposition::Ack => message.ack().await,
        Disposition::Retry(delay) => message.ack_with(AckKind::Nak(Some(delay))).await,
    };
}
