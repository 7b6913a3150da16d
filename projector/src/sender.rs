//! The WhatsApp sender: a reactor that sends each `BotReplied` and `StaffReplied` (a person's
//! reply from the inbox) to the Cloud API with the tenant's token, and records the outcome as
//! an event on the conversation. The two kinds come through two durable consumers (the
//! server's one filter subject each); a conversation a person has taken over has no bot
//! replies, so their order across the two does not matter.
//!
//! At most once per reply: before calling Meta it claims the reply id in `wa_outbound` (a
//! tenant table, primary key `(tenant_id, reply_id)`), and settles the claim with the outcome
//! as soon as Meta answers. The claims of the replies its conversations reach at the same
//! moment are one statement (`wa_claim_batch`), and so are their settlings
//! (`wa_settle_batch`), whatever their tenants: a [`Coalescer`] gathers them. A release is
//! one statement (`wa_release`). A redelivered reply finds its claim:
//! sent or failed, the outcome is recorded again (idempotently) and nothing is sent; still
//! "sending" after the consumer's ack wait means a sender died mid-call, and since Meta has no
//! idempotency key the reply is recorded as failed with an unknown outcome rather than risk a
//! duplicate.
//!
//! Transient refusals (130429, 131056, account limits, 5xx, timeouts) are retried with
//! exponential backoff and full jitter, keeping the message alive in JetStream meanwhile. Each
//! number's throughput (80 messages/s by default) is shared through Redis. A circuit breaker per
//! tenant stops calling a failing account for a while. 190 marks the tenant's credentials
//! invalid (an event), 131047 and other permanent errors are recorded with Meta's reason.
//! Replies of one conversation are sent in order; conversations proceed in parallel.
//!
//! Outcomes are recorded through the application layer (`app::conversation::
//! record_send_outcome`, `app::tenants::invalidate_whatsapp_credentials`), on the one
//! executor every command uses; this module keeps only the reactor's own state (claims) and
//! the calls to Meta.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use app::conversation::SendOutcome;
use async_nats::jetstream::{self, AckKind};
use backon::{BackoffBuilder as _, ExponentialBuilder};
use domain::conversation::ConversationEvent;
use eventstore::RecordedEvent;
use platform::ratelimit::{Quota, RateLimiter};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;
use whatsapp::{CloudApi, CloudApiError};

use crate::coalesce::Coalescer;
use crate::consumer::{consume, receive};

pub const DURABLE: &str = "whatsapp-sender";
/// The consumer of people's replies.
pub const STAFF_DURABLE: &str = "whatsapp-sender-staff";

#[derive(Debug, Clone)]
pub struct SenderConfig {
    /// Sends per call before giving up on a transient error.
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Messages per second per WhatsApp number.
    pub per_number_per_second: u32,
    /// Consecutive failures of a tenant that open its breaker, and for how long.
    pub breaker_failures: u32,
    pub breaker_open: Duration,
    /// Conversations sent to at once.
    pub concurrency: usize,
    /// A claim older than this with no outcome belongs to a sender that died.
    pub stale_claim: Duration,
    pub batch_size: usize,
}

impl Default for SenderConfig {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            backoff_base: Duration::from_millis(250),
            backoff_max: Duration::from_secs(8),
            per_number_per_second: 80,
            breaker_failures: 5,
            breaker_open: Duration::from_secs(30),
            concurrency: 64,
            stale_claim: Duration::from_secs(60),
            batch_size: 256,
        }
    }
}

#[derive(Debug, Default)]
pub struct SenderStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
    pub retries: AtomicU64,
    /// Redeliveries of replies already sent or failed: nothing sent again.
    pub already_handled: AtomicU64,
    /// Claims found abandoned: recorded failed without sending.
    pub unknown_outcome: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Breaker {
    consecutive_failures: u32,
    open_until: Option<Instant>,
}

/// A reply's claim asked for: its tenant and id.
type ClaimAsked = (Uuid, String);

/// How a reply's send ended, for its claim: sent with a wamid, or failed with Meta's code and
/// reason.
struct Settling {
    tenant: Uuid,
    reply_id: String,
    state: ClaimState,
    wamid: Option<String>,
    code: Option<i64>,
    error: Option<String>,
}

#[derive(Clone)]
pub struct Sender {
    /// The use cases outcomes are recorded with (store and sealer).
    pub app: app::App,
    pub pool: PgPool,
    pub cloud: CloudApi,
    pub limiter: RateLimiter,
    pub config: SenderConfig,
    pub stats: Arc<SenderStats>,
    breakers: Arc<Mutex<HashMap<Uuid, Breaker>>>,
    /// Each tenant's number and decrypted token, for a short while (dropped on a 190).
    credentials: Arc<Mutex<HashMap<Uuid, CachedCredentials>>>,
    /// The claims and settlings of the replies being sent at the same moment, one statement
    /// each time (`wa_claim_batch`, `wa_settle_batch`).
    claims: Coalescer<ClaimAsked, Claim>,
    settlings: Coalescer<Settling, bool>,
}

/// When they were read, the phone number id, the token.
type CachedCredentials = (Instant, String, String);

/// How long a tenant's credentials are used before they are read again (a reconnected number
/// is picked up within this).
const CREDENTIALS_TTL: Duration = Duration::from_secs(30);

/// A message and the event it carries.
type Delivery = (jetstream::Message, RecordedEvent);

/// What to tell JetStream about a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    Ack,
    Retry(Duration),
}

/// A claim's state in `wa_outbound` (the labels its CHECK constraint allows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimState {
    /// A sender is calling Meta with it.
    Sending,
    Sent,
    Failed,
}

impl ClaimState {
    pub const ALL: [ClaimState; 3] = [ClaimState::Sending, ClaimState::Sent, ClaimState::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            ClaimState::Sending => "sending",
            ClaimState::Sent => "sent",
            ClaimState::Failed => "failed",
        }
    }
}

/// The failure recorded for a claim whose sender died mid-call.
const LAPSED: &str = "the send's outcome is unknown (the sender stopped mid-call); not sent again to avoid a duplicate";

/// How a claim on a reply stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    /// Ours: send it.
    Fresh,
    /// Already sent with this wamid.
    Sent(String),
    /// Already failed with this code and reason.
    Failed(i64, String),
    /// Another sender holds it right now.
    Busy,
    /// A sender took it and died mid-call: it is now failed with this reason, and not sent.
    Lapsed(String),
}

impl Sender {
    pub fn new(
        app: app::App,
        pool: PgPool,
        cloud: CloudApi,
        limiter: RateLimiter,
        config: SenderConfig,
    ) -> Self {
        let batch = config.batch_size.max(1);
        let (claim_pool, stale_after) = (pool.clone(), config.stale_claim);
        let claims = Coalescer::spawn(batch, move |asked| {
            claim_batch(claim_pool.clone(), asked, stale_after)
        });
        let settle_pool = pool.clone();
        let settlings = Coalescer::spawn(batch, move |settled| {
            settle_batch(settle_pool.clone(), settled)
        });
        Self {
            app,
            pool,
            cloud,
            limiter,
            config,
            stats: Arc::default(),
            breakers: Arc::default(),
            credentials: Arc::default(),
            claims,
            settlings,
        }
    }

    /// Consumes `BotReplied` and `StaffReplied` events until `cancel`.
    pub async fn run(
        self,
        nats: async_nats::Client,
        ns: nats::Namespace,
        cancel: CancellationToken,
    ) -> anyhow::Result<()> {
        let (bot, staff) = tokio::join!(
            self.consume(&nats, &ns, DURABLE, "BotReplied", &cancel),
            self.consume(&nats, &ns, STAFF_DURABLE, "StaffReplied", &cancel),
        );
        bot.and(staff)
    }

    async fn consume(
        &self,
        nats: &async_nats::Client,
        ns: &nats::Namespace,
        durable: &str,
        event_type: &str,
        cancel: &CancellationToken,
    ) -> anyhow::Result<()> {
        let filter = format!(
            "{}*.conversation.{event_type}",
            ns.all_events().trim_end_matches('>')
        );
        let upcasters = app::events::upcasters();
        let (sender, upcasters) = (self, &upcasters);
        // No linger: a reply goes out as soon as it arrives.
        consume(
            nats,
            ns,
            durable,
            filter,
            (self.config.batch_size, Duration::ZERO),
            cancel,
            move |messages| async move {
                let batch = receive(
                    &sender.pool,
                    upcasters,
                    messages,
                    sender.config.backoff_base,
                )
                .await;
                sender.handle_batch(batch).await;
            },
        )
        .await
    }

    /// Sends a batch: one task per conversation, replies within it in order.
    async fn handle_batch(&self, batch: Vec<Delivery>) {
        let mut groups: Vec<((Uuid, String), Vec<Delivery>)> = Vec::new();
        for (message, event) in batch {
            let key = (event.tenant_id, event.stream.stream_id.clone());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, items)) => items.push((message, event)),
                None => groups.push((key, vec![(message, event)])),
            }
        }
        let permits = Arc::new(tokio::sync::Semaphore::new(self.config.concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for (_, items) in groups {
            let sender = self.clone();
            let permits = permits.clone();
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let mut held_back = false;
                for (message, event) in items {
                    // Once one reply of a conversation waits, the later ones wait too.
                    let disposition = if held_back {
                        Disposition::Retry(sender.config.backoff_base)
                    } else {
                        sender.handle(&message, &event).await
                    };
                    match disposition {
                        Disposition::Ack => {
                            let _ = message.ack().await;
                        }
                        Disposition::Retry(delay) => {
                            held_back = true;
                            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    }

    async fn handle(&self, message: &jetstream::Message, event: &RecordedEvent) -> Disposition {
        let span = match event.event_type.as_str() {
            "BotReplied" | "StaffReplied" => {
                crate::consumer::consume_span("sender", message, event)
            }
            _ => tracing::Span::none(),
        };
        match self.try_handle(message, event).instrument(span).await {
            Ok(d) => d,
            Err(err) => {
                tracing::warn!(error = format!("{err:#}"), event_id = %event.event_id, "sender failed on a reply; will retry");
                Disposition::Retry(self.config.backoff_base * 4)
            }
        }
    }

    async fn try_handle(
        &self,
        message: &jetstream::Message,
        event: &RecordedEvent,
    ) -> anyhow::Result<Disposition> {
        let (reply_id, to, reply) =
            match domain::event::decode::<ConversationEvent>(&event.event_type, &event.payload)? {
                ConversationEvent::BotReplied {
                    reply_id,
                    to,
                    reply,
                }
                | ConversationEvent::StaffReplied {
                    reply_id,
                    to,
                    reply,
                    ..
                } => (reply_id, to, reply),
                _ => return Ok(Disposition::Ack),
            };
        if domain::personal::is_erased(&to) {
            // The customer was erased before their reply went: there is no one to send it to.
            tracing::info!(event_id = %event.event_id, "not sending a reply to an erased customer");
            return Ok(Disposition::Ack);
        }
        let tenant = event.tenant_id;
        if let Some(wait) = self.breaker_open(tenant) {
            return Ok(Disposition::Retry(wait));
        }
        match self.claim(tenant, &reply_id).await? {
            Claim::Fresh => {}
            Claim::Sent(wamid) => {
                self.stats.already_handled.fetch_add(1, Ordering::Relaxed);
                self.record(event, &reply_id, SendOutcome::Sent { wamid })
                    .await?;
                return Ok(Disposition::Ack);
            }
            Claim::Failed(code, reason) => {
                self.stats.already_handled.fetch_add(1, Ordering::Relaxed);
                self.record(event, &reply_id, SendOutcome::Failed { code, reason })
                    .await?;
                return Ok(Disposition::Ack);
            }
            Claim::Lapsed(reason) => {
                self.stats.unknown_outcome.fetch_add(1, Ordering::Relaxed);
                self.record(event, &reply_id, SendOutcome::Failed { code: 0, reason })
                    .await?;
                return Ok(Disposition::Ack);
            }
            Claim::Busy => return Ok(Disposition::Retry(self.config.stale_claim)),
        }
        let Some((phone_number_id, token)) = self.credentials(tenant).await? else {
            return self
                .fail(event, &reply_id, 0, "no WhatsApp number is connected")
                .await;
        };
        let body = whatsapp::outbound::message_body(&to, &reply);
        let mut delays = self.backoff();
        let mut attempt = 0;
        loop {
            let quota = Quota {
                rate: self.config.per_number_per_second.max(1),
                period: Duration::from_secs(1),
                burst: self.config.per_number_per_second.max(1),
            };
            if let Err(limited) = self
                .limiter
                .check(&format!("wa-number:{phone_number_id}"), quota)
                .await
            {
                tokio::time::sleep(limited.retry_after).await;
                continue;
            }
            attempt += 1;
            match self
                .cloud
                .send_message(&phone_number_id, &token, &body)
                .await
            {
                Ok(wamid) => {
                    self.breaker_result(tenant, true);
                    self.settle(
                        tenant,
                        &reply_id,
                        ClaimState::Sent,
                        Some(&wamid),
                        None,
                        None,
                    )
                    .await?;
                    self.record(event, &reply_id, SendOutcome::Sent { wamid })
                        .await?;
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("whatsapp_sends_total", "outcome" => "sent").increment(1);
                    return Ok(Disposition::Ack);
                }
                Err(err) if err.is_transient() && attempt < self.config.max_attempts => {
                    let delay = delays.next().unwrap_or(self.config.backoff_max);
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("whatsapp_sends_total", "outcome" => "retried").increment(1);
                    if counts_against_breaker(&err) {
                        self.breaker_result(tenant, false);
                        if let Some(wait) = self.breaker_open(tenant) {
                            // Not sent (the answer was a refusal or nothing): give the claim
                            // back and try again once the breaker closes.
                            self.release(tenant, &reply_id).await?;
                            tracing::warn!(tenant_id = %tenant, "circuit breaker open; holding replies");
                            return Ok(Disposition::Retry(wait));
                        }
                    }
                    tracing::info!(
                        code = err.code(),
                        attempt,
                        "transient send failure; backing off"
                    );
                    let _ = message.ack_with(AckKind::Progress).await;
                    tokio::time::sleep(delay).await;
                }
                Err(err) => {
                    if counts_against_breaker(&err) {
                        self.breaker_result(tenant, false);
                    }
                    let code = err.code();
                    if code == 190 {
                        self.credentials
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&tenant);
                        self.invalidate_credentials(event).await?;
                    }
                    let reason = match &err {
                        CloudApiError::Meta { message, .. } => message.clone(),
                        CloudApiError::Unreachable(why) => {
                            format!("gave up after {attempt} attempts: {why}")
                        }
                    };
                    return self.fail(event, &reply_id, code, &reason).await;
                }
            }
        }
    }

    /// The waits between attempts at one reply: exponential from the base, each between half
    /// the step and the step (jitter), capped at the maximum.
    fn backoff(&self) -> backon::ExponentialBackoff {
        ExponentialBuilder::new()
            .with_min_delay(self.config.backoff_base / 2)
            .with_max_delay(self.config.backoff_max / 2)
            .with_jitter()
            .without_max_times()
            .build()
    }

    fn breaker_open(&self, tenant: Uuid) -> Option<Duration> {
        let breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let until = breakers.get(&tenant)?.open_until?;
        until.checked_duration_since(Instant::now())
    }

    fn breaker_result(&self, tenant: Uuid, ok: bool) {
        let mut breakers = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let breaker = breakers.entry(tenant).or_default();
        if ok {
            *breaker = Breaker::default();
            return;
        }
        breaker.consecutive_failures += 1;
        if breaker.consecutive_failures >= self.config.breaker_failures {
            breaker.open_until = Some(Instant::now() + self.config.breaker_open);
            // Half-open afterwards: one more failure reopens it.
            breaker.consecutive_failures = self.config.breaker_failures - 1;
            metrics::counter!("whatsapp_breaker_trips_total").increment(1);
            let now = Instant::now();
            let open = breakers
                .values()
                .filter(|b| b.open_until.is_some_and(|until| until > now))
                .count();
            metrics::gauge!("whatsapp_breakers_open").set(open as f64);
        }
    }

    /// Claims a reply (with the other replies claimed at the same moment, in one statement):
    /// fresh for us to send, settled before, or held by another sender (or by one that died
    /// mid-call, once it lapses).
    async fn claim(&self, tenant: Uuid, reply_id: &str) -> anyhow::Result<Claim> {
        self.claims.call((tenant, reply_id.to_owned())).await
    }

    /// Gives a claim back unsent, for the reply's next delivery to claim afresh.
    async fn release(&self, tenant: Uuid, reply_id: &str) -> anyhow::Result<()> {
        sqlx::query!(
            r#"select wa_release($1, $2) as "released!""#,
            tenant,
            reply_id
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(())
    }

    /// Records how a claimed reply's send ended (with the other replies settled at the same
    /// moment, in one statement).
    async fn settle(
        &self,
        tenant: Uuid,
        reply_id: &str,
        state: ClaimState,
        wamid: Option<&str>,
        code: Option<i64>,
        error: Option<&str>,
    ) -> anyhow::Result<()> {
        let settled = self
            .settlings
            .call(Settling {
                tenant,
                reply_id: reply_id.to_owned(),
                state,
                wamid: wamid.map(str::to_owned),
                code,
                error: error.map(str::to_owned),
            })
            .await?;
        if !settled {
            // Its claim is gone (an operator cleared the table, say): the outcome is still
            // recorded on the conversation.
            tracing::warn!(tenant_id = %tenant, reply_id, "settled a reply that had no claim");
        }
        Ok(())
    }

    async fn fail(
        &self,
        event: &RecordedEvent,
        reply_id: &str,
        code: i64,
        reason: &str,
    ) -> anyhow::Result<Disposition> {
        self.settle(
            event.tenant_id,
            reply_id,
            ClaimState::Failed,
            None,
            Some(code),
            Some(reason),
        )
        .await?;
        self.record(
            event,
            reply_id,
            SendOutcome::Failed {
                code,
                reason: reason.to_owned(),
            },
        )
        .await?;
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("whatsapp_sends_total", "outcome" => "failed", "code" => code.to_string())
            .increment(1);
        tracing::warn!(tenant_id = %event.tenant_id, reply_id, code, reason, "reply not delivered");
        Ok(Disposition::Ack)
    }

    /// The tenant's number and decrypted token, cached a short while.
    async fn credentials(&self, tenant: Uuid) -> anyhow::Result<Option<(String, String)>> {
        if let Some((at, number, token)) = self
            .credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant)
            && at.elapsed() < CREDENTIALS_TTL
        {
            return Ok(Some((number.clone(), token.clone())));
        }
        let found = app::whatsapp::sender_credentials(&self.app, tenant).await?;
        if let Some((number, token)) = &found {
            self.credentials
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(tenant, (Instant::now(), number.clone(), token.clone()));
        }
        Ok(found)
    }

    /// Records a send's outcome on the conversation (idempotent: the same outcome twice is
    /// recorded once).
    async fn record(
        &self,
        event: &RecordedEvent,
        reply_id: &str,
        outcome: SendOutcome,
    ) -> anyhow::Result<()> {
        app::conversation::record_send_outcome(&self.app, event, reply_id, outcome).await?;
        Ok(())
    }

    async fn invalidate_credentials(&self, event: &RecordedEvent) -> anyhow::Result<()> {
        let ctx = app::CommandContext::new(
            event.tenant_id,
            "system:whatsapp-sender",
            format!("credentials-invalid:{}", event.event_id),
        )
        .caused_by(event);
        app::tenants::invalidate_whatsapp_credentials(&self.app, &ctx, 190).await?;
        tracing::error!(tenant_id = %event.tenant_id, "Meta refused the tenant's token (190): credentials marked invalid");
        Ok(())
    }
}

/// Claims `asked` in one statement; the answers in the order asked. A reply asked twice in one
/// batch is the first one's to send: the other finds it busy.
async fn claim_batch(
    pool: PgPool,
    asked: Vec<ClaimAsked>,
    stale_after: Duration,
) -> anyhow::Result<Vec<Claim>> {
    let (tenants, replies): (Vec<Uuid>, Vec<String>) = asked.iter().cloned().unzip();
    let rows = sqlx::query!(
        r#"select tenant_id as "tenant_id!", reply_id as "reply_id!", outcome as "outcome!",
                  sent_wamid, failure_code, failure_reason
             from wa_claim_batch($1, $2, $3, $4)"#,
        &tenants,
        &replies,
        stale_after.as_secs_f64(),
        LAPSED
    )
    .fetch_all(&pool)
    .await?;
    let mut found = HashMap::with_capacity(rows.len());
    for row in rows {
        let reason = row.failure_reason.unwrap_or_default();
        let claim = match row.outcome.as_str() {
            "fresh" => Claim::Fresh,
            "sent" => Claim::Sent(row.sent_wamid.unwrap_or_default()),
            "failed" => Claim::Failed(row.failure_code.unwrap_or(0), reason),
            "lapsed" => Claim::Lapsed(reason),
            "busy" => Claim::Busy,
            other => anyhow::bail!("wa_claim_batch answered an unknown outcome: {other}"),
        };
        found.insert((row.tenant_id, row.reply_id), claim);
    }
    Ok(in_asked_order(asked, found))
}

/// Each reply's claim in the order asked. The statement answers a reply once: asked twice,
/// the first asker has its answer and the second finds it busy (a fresh claim is one sender's).
/// A reply it left out was claimed by another sender while it ran: busy too.
fn in_asked_order(asked: Vec<ClaimAsked>, mut found: HashMap<ClaimAsked, Claim>) -> Vec<Claim> {
    asked
        .into_iter()
        .map(|reply| match found.get_mut(&reply) {
            Some(claim) => std::mem::replace(claim, Claim::Busy),
            None => Claim::Busy,
        })
        .collect()
}

/// Settles `settled` in one statement; whether each one had a claim, in the order given.
async fn settle_batch(pool: PgPool, settled: Vec<Settling>) -> anyhow::Result<Vec<bool>> {
    let tenants: Vec<Uuid> = settled.iter().map(|s| s.tenant).collect();
    let replies: Vec<String> = settled.iter().map(|s| s.reply_id.clone()).collect();
    let states: Vec<String> = settled
        .iter()
        .map(|s| s.state.as_str().to_owned())
        .collect();
    let wamids: Vec<Option<String>> = settled.iter().map(|s| s.wamid.clone()).collect();
    let codes: Vec<Option<i64>> = settled.iter().map(|s| s.code).collect();
    let errors: Vec<Option<String>> = settled.iter().map(|s| s.error.clone()).collect();
    let rows = sqlx::query!(
        r#"select tenant_id as "tenant_id!", reply_id as "reply_id!"
             from wa_settle_batch($1, $2, $3, $4::text[], $5::int8[], $6::text[])"#,
        &tenants,
        &replies,
        &states,
        &wamids as &[Option<String>],
        &codes as &[Option<i64>],
        &errors as &[Option<String>],
    )
    .fetch_all(&pool)
    .await?;
    let had_claim: std::collections::HashSet<(Uuid, String)> = rows
        .into_iter()
        .map(|row| (row.tenant_id, row.reply_id))
        .collect();
    Ok(settled
        .into_iter()
        .map(|s| had_claim.contains(&(s.tenant, s.reply_id)))
        .collect())
}

fn counts_against_breaker(err: &CloudApiError) -> bool {
    match err {
        CloudApiError::Unreachable(_) => true,
        CloudApiError::Meta { status, code, .. } => *status >= 500 || *code == 190,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_asked_twice_in_one_batch_is_fresh_for_the_first_asker_alone_and_one_left_out_busy() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let reply = |t: Uuid, r: &str| (t, r.to_owned());
        let found = HashMap::from([
            (reply(a, "r1"), Claim::Fresh),
            (reply(b, "r1"), Claim::Sent("wamid.1".into())),
        ]);
        let asked = vec![
            reply(b, "r1"),
            reply(a, "r1"),
            reply(a, "r1"),
            reply(b, "r1"),
        ];
        assert_eq!(
            in_asked_order(asked, found.clone()),
            vec![
                Claim::Sent("wamid.1".into()),
                Claim::Fresh,
                Claim::Busy,
                Claim::Busy
            ]
        );
        assert_eq!(
            in_asked_order(vec![reply(a, "r2")], found),
            vec![Claim::Busy],
            "one another sender claimed meanwhile"
        );
    }
}
