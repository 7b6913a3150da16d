//! The analytics consumer: a durable JetStream pull consumer on every event (`evt.>`), as an
//! outside consumer would run one.
//!
//! Guarantees, one by one:
//! - **Once.** The checkpoint (`analytics.checkpoints`) is the stream sequence of the last
//!   message applied, written in the same transaction as the facts. A message at or below it
//!   (a redelivery, a crash between commit and ack) is skipped, so counters add one safely.
//! - **In order, without gaps.** The events stream holds nothing but events, so its sequences
//!   are contiguous: a message further ahead than the next sequence means earlier ones are
//!   still in flight (a redelivery after a restart). They are read from the stream itself
//!   (`get_raw_message`) and applied first, in the same transaction. A sequence the stream no
//!   longer holds is counted and passed over.
//! - **Never stuck.** A failed batch is retried whole, then one message at a time (the
//!   messages of a gap before it too); a message that still fails is recorded in
//!   `analytics.dead_letters` and passed over, in the same transaction as the checkpoint that
//!   moves past it.
//!
//! Acks follow the commit; a lost ack only means a skipped redelivery.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream::LastRawMessageErrorKind};
use bytes::Bytes;
use nats::Namespace;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::envelope::{Envelope, Position};
use crate::facts;

/// The durable consumer's name, and the checkpoint's.
pub const NAME: &str = "analytics";

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub batch_size: usize,
    /// How long a batch waits for more messages after its first.
    pub linger: Duration,
    /// Tries of a batch, then of each of its messages, before a message is dead-lettered.
    pub attempts: u32,
    /// The first pause between tries; it grows with each.
    pub retry_delay: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            linger: Duration::from_millis(5),
            attempts: 3,
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// Counters for health, logs, tests and the benchmark.
#[derive(Debug, Default)]
pub struct Stats {
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub gaps_filled: AtomicU64,
    pub missing: AtomicU64,
    pub dead_lettered: AtomicU64,
}

#[derive(Clone)]
pub struct Consumer {
    /// The application role: facts are written under the event's tenant.
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub ns: Namespace,
    pub config: ConsumerConfig,
    pub stats: Arc<Stats>,
}

/// A message as pulled: its place in the stream and its bytes.
struct Delivery {
    sequence: u64,
    payload: Bytes,
}

/// How far the facts reach.
#[derive(Debug, Clone, Copy)]
struct Checkpoint {
    sequence: u64,
    position: Position,
}

impl Consumer {
    /// Pulls and applies until `cancel`; the batch in hand is finished first.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let js = jetstream::new(self.nats.clone());
        let this = &self;
        let js = &js;
        nats::consume::consume(
            &self.nats,
            &self.ns,
            NAME,
            self.ns.all_events(),
            (self.config.batch_size, self.config.linger),
            &cancel,
            move |batch| this.handle(js, batch),
        )
        .await
    }

    async fn handle(&self, js: &jetstream::Context, messages: Vec<jetstream::Message>) {
        let mut batch: Vec<(Delivery, jetstream::Message)> = messages
            .into_iter()
            .map(|m| {
                let sequence = m.info().map(|i| i.stream_sequence).unwrap_or(0);
                let payload = m.payload.clone();
                (Delivery { sequence, payload }, m)
            })
            .collect();
        batch.sort_by_key(|(d, _)| d.sequence);
        let deliveries: Vec<&Delivery> = batch.iter().map(|(d, _)| d).collect();
        if self.with_retries(js, &deliveries).await.is_err() {
            // One message spoils the batch: find it, apply the others around it.
            for delivery in &deliveries {
                if let Err(err) = self.one_by_one(js, delivery).await {
                    // Not even a dead letter could be written: leave the batch unacked; it
                    // comes back and is tried again.
                    tracing::error!(
                        error = format!("{err:#}"),
                        sequence = delivery.sequence,
                        "analytics cannot move past a message"
                    );
                    return;
                }
            }
        }
        if let Some((pending, seconds)) =
            batch.last().and_then(|(_, m)| nats::consume::lag_behind(m))
        {
            metrics::gauge!("analytics_lag_events").set(pending as f64);
            metrics::gauge!("analytics_lag_seconds").set(seconds);
        }
        for (_, message) in &batch {
            if let Err(err) = message.ack().await {
                tracing::warn!(error = %err, "ack failed; the redelivery will be skipped");
            }
        }
    }

    /// Settles `delivery` and any message of the gap before it, one at a time: each is applied
    /// or, failing that, dead-lettered.
    async fn one_by_one(&self, js: &jetstream::Context, delivery: &Delivery) -> anyhow::Result<()> {
        let reached = {
            let mut conn = self.pool.acquire().await?;
            read_checkpoint(&mut conn).await?
        };
        if reached + 1 < delivery.sequence {
            let stream = events_stream(js, &self.ns).await?;
            for sequence in reached + 1..delivery.sequence {
                match stream.get_raw_message(sequence).await {
                    Ok(message) => {
                        let missed = Delivery {
                            sequence,
                            payload: message.payload,
                        };
                        self.settle(js, &missed).await?;
                    }
                    // Passed over (and counted) by the next apply.
                    Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => {}
                    Err(err) => {
                        anyhow::bail!("cannot read message {sequence} of the stream: {err}")
                    }
                }
            }
        }
        self.settle(js, delivery).await
    }

    async fn settle(&self, js: &jetstream::Context, delivery: &Delivery) -> anyhow::Result<()> {
        match self.with_retries(js, &[delivery]).await {
            Ok(()) => Ok(()),
            Err(err) => self.dead_letter(js, delivery, &err).await,
        }
    }

    async fn with_retries(
        &self,
        js: &jetstream::Context,
        deliveries: &[&Delivery],
    ) -> anyhow::Result<()> {
        let mut attempt = 1;
        loop {
            match self.apply(js, deliveries).await {
                Ok(()) => return Ok(()),
                // The database failing for a moment (a connection lost, a deadlock) is not
                // the events' fault: retried until it passes, never dead-lettered for it.
                Err(err)
                    if attempt >= self.config.attempts
                        && !eventstore::caused_by_transient(err.as_ref()) =>
                {
                    return Err(err);
                }
                Err(err) => {
                    tracing::warn!(
                        error = format!("{err:#}"),
                        attempt,
                        size = deliveries.len(),
                        "analytics batch failed; retrying"
                    );
                    tokio::time::sleep(self.config.retry_delay * attempt.min(20)).await;
                    attempt += 1;
                }
            }
        }
    }

    /// Applies what of `deliveries` is past the checkpoint, filling gaps from the stream, in
    /// one transaction with the checkpoint.
    async fn apply(&self, js: &jetstream::Context, deliveries: &[&Delivery]) -> anyhow::Result<()> {
        let mut events = deliveries
            .iter()
            .map(|d| Envelope::parse(&d.payload))
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.reveal(&mut events).await?;
        let mut tx = self.pool.begin().await?;
        let mut checkpoint = lock_checkpoint(&mut tx).await?;
        let mut tenant = None;
        let (mut applied, mut duplicates) = (0, 0);
        for (delivery, event) in deliveries.iter().zip(events) {
            if delivery.sequence <= checkpoint.sequence {
                duplicates += 1;
                continue;
            }
            applied += self
                .fill_gap(js, &mut tx, &mut tenant, &mut checkpoint, delivery.sequence)
                .await?;
            apply_event(&mut tx, &mut tenant, &event).await?;
            checkpoint = Checkpoint {
                sequence: delivery.sequence,
                position: event.position,
            };
            applied += 1;
        }
        save_checkpoint(&mut tx, checkpoint, applied).await?;
        tx.commit().await.context("failed to commit analytics")?;
        self.stats.applied.fetch_add(applied, Ordering::Relaxed);
        metrics::counter!("analytics_events_total", "outcome" => "applied").increment(applied);
        self.stats
            .duplicates
            .fetch_add(duplicates, Ordering::Relaxed);
        Ok(())
    }

    /// Reveals the customers' personal values the stream carries sealed (or their stand-ins,
    /// for a customer who was erased), on a connection of its own: the apply's transaction
    /// keeps the tenant it set.
    async fn reveal(&self, events: &mut [Envelope]) -> anyhow::Result<()> {
        eventstore::personal::reveal(&self.pool, events)
            .await
            .context("failed to reveal personal values")
    }

    /// Applies the messages between the checkpoint and `before`, read from the stream.
    async fn fill_gap(
        &self,
        js: &jetstream::Context,
        conn: &mut PgConnection,
        tenant: &mut Option<Uuid>,
        checkpoint: &mut Checkpoint,
        before: u64,
    ) -> anyhow::Result<u64> {
        if before <= checkpoint.sequence + 1 {
            return Ok(0);
        }
        let stream = events_stream(js, &self.ns).await?;
        let mut applied = 0;
        for sequence in checkpoint.sequence + 1..before {
            match stream.get_raw_message(sequence).await {
                Ok(message) => {
                    let mut event = [Envelope::parse(&message.payload)?];
                    self.reveal(&mut event).await?;
                    let [event] = event;
                    apply_event(conn, tenant, &event).await?;
                    checkpoint.position = event.position;
                    applied += 1;
                }
                Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => {
                    tracing::warn!(sequence, "the events stream no longer holds a message");
                    self.stats.missing.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => anyhow::bail!("cannot read message {sequence} of the stream: {err}"),
            }
            checkpoint.sequence = sequence;
        }
        self.stats.gaps_filled.fetch_add(1, Ordering::Relaxed);
        Ok(applied)
    }

    /// Records `delivery` as given up on and moves the checkpoint past it (after filling any
    /// gap before it).
    async fn dead_letter(
        &self,
        js: &jetstream::Context,
        delivery: &Delivery,
        error: &anyhow::Error,
    ) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        let mut checkpoint = lock_checkpoint(&mut tx).await?;
        if delivery.sequence <= checkpoint.sequence {
            return Ok(());
        }
        let mut tenant = None;
        let applied = self
            .fill_gap(js, &mut tx, &mut tenant, &mut checkpoint, delivery.sequence)
            .await?;
        let event = Envelope::parse(&delivery.payload).ok();
        tracing::error!(error = format!("{error:#}"), sequence = delivery.sequence, event = ?event.as_ref().map(|e| e.event_id), "analytics gives up on an event");
        sqlx::query!(
            "insert into analytics.dead_letters
                 (consumer, stream_sequence, tenant_id, event_id, event_type, error)
             values ($1, $2, $3, $4, $5, $6) on conflict do nothing",
            NAME,
            delivery.sequence as i64,
            event.as_ref().map(|e| e.tenant_id),
            event.as_ref().map(|e| e.event_id),
            event.as_ref().map(|e| e.event_type.as_str()),
            format!("{error:#}")
        )
        .execute(&mut *tx)
        .await?;
        checkpoint.sequence = delivery.sequence;
        if let Some(event) = &event {
            checkpoint.position = event.position;
        }
        save_checkpoint(&mut tx, checkpoint, applied).await?;
        tx.commit().await?;
        self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("analytics_events_total", "outcome" => "dead_lettered").increment(1);
        Ok(())
    }
}

async fn events_stream(
    js: &jetstream::Context,
    ns: &Namespace,
) -> anyhow::Result<jetstream::stream::Stream> {
    js.get_stream(ns.events_stream())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the events stream: {e}"))
}

/// An event the consumer gave up on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadLetter {
    pub stream_sequence: i64,
    pub tenant_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub error: String,
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// Every dead letter, oldest first (the operator role reads them all).
pub async fn dead_letters(operator: &PgPool) -> sqlx::Result<Vec<DeadLetter>> {
    sqlx::query_as!(
        DeadLetter,
        "select stream_sequence, tenant_id, event_id, event_type, error, failed_at
           from analytics.dead_letters where consumer = $1 order by stream_sequence",
        NAME
    )
    .fetch_all(operator)
    .await
}

/// Applies one event under its tenant (switching `app.tenant_id` only when it changes).
async fn apply_event(
    conn: &mut PgConnection,
    tenant: &mut Option<Uuid>,
    event: &Envelope,
) -> anyhow::Result<()> {
    if *tenant != Some(event.tenant_id) {
        sqlx::query!(
            r#"select set_config('app.tenant_id', $1, true) as "set!""#,
            event.tenant_id.to_string()
        )
        .fetch_one(&mut *conn)
        .await?;
        *tenant = Some(event.tenant_id);
    }
    facts::apply(conn, event).await.with_context(|| {
        format!(
            "failed to apply {} {} of {}/{}",
            event.event_type, event.event_id, event.stream.stream_type, event.stream.stream_id
        )
    })
}

/// The stream sequence the facts reach, without a lock.
async fn read_checkpoint(conn: &mut PgConnection) -> sqlx::Result<u64> {
    let sequence = sqlx::query_scalar!(
        "select stream_sequence from analytics.checkpoints where consumer = $1",
        NAME
    )
    .fetch_optional(conn)
    .await?;
    Ok(sequence.unwrap_or(0) as u64)
}

/// Locks and reads the checkpoint (one batch at a time, across instances).
async fn lock_checkpoint(conn: &mut PgConnection) -> sqlx::Result<Checkpoint> {
    sqlx::query!(
        "insert into analytics.checkpoints (consumer, stream_sequence, transaction_id, global_position)
         values ($1, 0, '0'::xid8, 0) on conflict (consumer) do nothing",
        NAME
    )
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query!(
        r#"select stream_sequence, transaction_id::text as "transaction_id!", global_position
             from analytics.checkpoints where consumer = $1 for update"#,
        NAME
    )
    .fetch_one(conn)
    .await?;
    Ok(Checkpoint {
        sequence: row.stream_sequence as u64,
        position: Position {
            transaction_id: row.transaction_id.parse().unwrap_or(0),
            global_position: row.global_position as u64,
        },
    })
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    checkpoint: Checkpoint,
    applied: u64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update analytics.checkpoints
            set stream_sequence = $2, transaction_id = $3::text::xid8, global_position = $4,
                applied = applied + $5, updated_at = now()
          where consumer = $1",
        NAME,
        checkpoint.sequence as i64,
        checkpoint.position.transaction_id.to_string(),
        checkpoint.position.global_position as i64,
        applied as i64
    )
    .execute(conn)
    .await?;
    Ok(())
}
