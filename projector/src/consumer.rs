//! The live side of a projection: a durable JetStream pull consumer with explicit acks.
//!
//! Messages arrive in batches (whatever is ready, up to `batch_size`). A batch is applied in one
//! Postgres transaction, switching `app.tenant_id` as the tenant changes, together with the
//! projection's position (`rm_positions`), then acknowledged. If the batch fails, each message
//! is retried in its own transaction so that one bad event cannot hold the others back: a
//! failing one is negatively acknowledged with a growing delay and, after `max_attempts`
//! deliveries, dead-lettered (recorded in `rm_dead_letters`, announced on
//! `deadletter.<projection>`) and terminated. Because every projection skips what it has applied
//! and fills gaps from the store, redelivery, reordering and a crash between commit and ack are
//! all harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use eventstore::{EventStore, Position, RecordedEvent, Upcasters};
use futures::StreamExt as _;
use nats::Namespace;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::projection::{Applied, Projection, Target};

/// How the live consumers behave.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub batch_size: usize,
    /// Deliveries of one message before it is dead-lettered.
    pub max_attempts: i64,
    /// The first redelivery delay; it grows linearly with each attempt.
    pub retry_delay: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_attempts: 5,
            retry_delay: Duration::from_millis(500),
        }
    }
}

/// Counters for health, logs and benchmarks.
#[derive(Debug, Default)]
pub struct ProjectionStats {
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub gaps_filled: AtomicU64,
    pub dead_lettered: AtomicU64,
}

/// What a consumer needs: the store (gap fills), the pool it writes with, NATS.
#[derive(Clone)]
pub struct Runtime {
    pub store: EventStore,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub ns: Namespace,
    pub upcasters: Arc<Upcasters>,
    pub config: ConsumerConfig,
}

/// The durable consumer's name for a projection.
pub fn durable_name(projection: Projection) -> String {
    format!("projection-{}", projection.name())
}

/// Every projection reads every event (`evt.>`), so that its position follows the whole log
/// and a consistency token from any command is reached without waiting for an event of the
/// projection's own kind. Events of other streams cost an ack and nothing in Postgres.
pub fn filter_subject(ns: &Namespace, _projection: Projection) -> String {
    ns.all_events()
}

/// Gets (or creates) a durable pull consumer on the events stream, waiting for the stream to
/// exist (the relay provisions it).
pub async fn durable_consumer(
    js: &jetstream::Context,
    ns: &Namespace,
    name: &str,
    filter_subject: String,
    cancel: &CancellationToken,
) -> anyhow::Result<Option<jetstream::consumer::Consumer<pull::Config>>> {
    let mut wait = Duration::from_millis(100);
    loop {
        match js.get_stream(ns.events_stream()).await {
            Ok(stream) => {
                let consumer = stream
                    .get_or_create_consumer(
                        name,
                        pull::Config {
                            durable_name: Some(name.to_owned()),
                            filter_subject,
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            ack_wait: Duration::from_secs(30),
                            max_ack_pending: 20_000,
                            deliver_policy: jetstream::consumer::DeliverPolicy::All,
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("failed to create consumer {name}: {e}"))?;
                return Ok(Some(consumer));
            }
            Err(err) => {
                tracing::debug!(error = %err, "events stream not there yet");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(wait) => {}
                }
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Reads the envelope the relay published, upcast to the current schema.
pub fn decode_message(
    message: &jetstream::Message,
    upcasters: &Upcasters,
) -> anyhow::Result<RecordedEvent> {
    let mut event: RecordedEvent =
        serde_json::from_slice(&message.payload).context("not an event envelope")?;
    let (schema_version, payload) = upcasters.upcast(
        &event.event_type,
        event.schema_version,
        std::mem::take(&mut event.payload),
    );
    event.schema_version = schema_version;
    event.payload = payload;
    Ok(event)
}

/// Runs one projection's consumer until `cancel`; reconnects its message stream on errors.
pub async fn run(
    projection: Projection,
    runtime: Runtime,
    stats: Arc<ProjectionStats>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let js = jetstream::new(runtime.nats.clone());
    let name = durable_name(projection);
    let consumer = loop {
        match durable_consumer(
            &js,
            &runtime.ns,
            &name,
            filter_subject(&runtime.ns, projection),
            &cancel,
        )
        .await
        {
            Ok(Some(consumer)) => break consumer,
            Ok(None) => return Ok(()),
            Err(err) => {
                tracing::warn!(projection = %projection, error = format!("{err:#}"), "no consumer yet; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    tracing::info!(projection = %projection, "projection consuming");
    loop {
        let messages = consumer
            .stream()
            .max_messages_per_batch(runtime.config.batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(10))
            .messages()
            .await;
        let messages = match messages {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(projection = %projection, error = %err, "cannot pull; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let mut chunks = messages.ready_chunks(runtime.config.batch_size);
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                chunk = chunks.next() => chunk,
            };
            let Some(chunk) = chunk else { break };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut broken = false;
            for item in chunk {
                match item {
                    Ok(message) => batch.push(message),
                    Err(err) => {
                        tracing::warn!(projection = %projection, error = %err, "pull failed");
                        broken = true;
                    }
                }
            }
            handle_batch(projection, &runtime, &stats, batch).await;
            if broken {
                break;
            }
        }
    }
}

async fn handle_batch(
    projection: Projection,
    runtime: &Runtime,
    stats: &ProjectionStats,
    messages: Vec<jetstream::Message>,
) {
    let mut decoded = Vec::with_capacity(messages.len());
    for message in messages {
        match decode_message(&message, &runtime.upcasters) {
            Ok(event) => decoded.push((message, event)),
            Err(err) => {
                // Not one of the relay's envelopes: nothing to apply or to dead-letter by id.
                tracing::error!(projection = %projection, error = %err, subject = %message.subject, "dropping an unreadable message");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    if decoded.is_empty() {
        return;
    }
    let events: Vec<&RecordedEvent> = decoded.iter().map(|(_, e)| e).collect();
    match apply_batch(projection, runtime, &events).await {
        Ok(outcomes) => {
            count(stats, &outcomes);
            for (message, _) in &decoded {
                if let Err(err) = message.ack().await {
                    tracing::warn!(error = %err, "ack failed; the message will be redelivered and skipped");
                }
            }
        }
        Err(err) => {
            tracing::warn!(projection = %projection, error = format!("{err:#}"), size = decoded.len(), "batch failed; applying one by one");
            let mut all_ok = true;
            for (message, event) in &decoded {
                match apply_batch(projection, runtime, &[event]).await {
                    Ok(outcomes) => {
                        count(stats, &outcomes);
                        let _ = message.ack().await;
                    }
                    Err(err) => {
                        all_ok = false;
                        failed(projection, runtime, stats, message, event, &err).await;
                    }
                }
            }
            if all_ok {
                tracing::info!(projection = %projection, "batch applied one by one");
            }
        }
    }
}

fn count(stats: &ProjectionStats, outcomes: &[Applied]) {
    for outcome in outcomes {
        match outcome {
            Applied::Applied => {
                stats.applied.fetch_add(1, Ordering::Relaxed);
            }
            Applied::FilledGap(n) => {
                stats.applied.fetch_add(1 + *n as u64, Ordering::Relaxed);
                stats.gaps_filled.fetch_add(1, Ordering::Relaxed);
            }
            Applied::Duplicate => {
                stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Applied::NotMine => {}
        }
    }
}

/// Applies events in one transaction with the projection's new position.
pub async fn apply_batch(
    projection: Projection,
    runtime: &Runtime,
    events: &[&RecordedEvent],
) -> anyhow::Result<Vec<Applied>> {
    let mut tx = runtime.pool.begin().await?;
    let outcomes = apply_events(projection, Target::Live, &runtime.store, &mut tx, events).await?;
    if let Some(last) = events.iter().map(|e| e.position).max() {
        save_position(&mut tx, projection, last).await?;
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// Applies events in the caller's transaction, setting `app.tenant_id` whenever it changes.
pub async fn apply_events(
    projection: Projection,
    target: Target,
    store: &EventStore,
    conn: &mut PgConnection,
    events: &[&RecordedEvent],
) -> anyhow::Result<Vec<Applied>> {
    let mut tenant = None;
    let mut outcomes = Vec::with_capacity(events.len());
    for event in events {
        if !projection.handles(&event.stream.stream_type) {
            outcomes.push(Applied::NotMine);
            continue;
        }
        if tenant != Some(event.tenant_id) {
            set_tenant(conn, event.tenant_id).await?;
            tenant = Some(event.tenant_id);
        }
        outcomes.push(projection.apply(conn, target, store, event).await?);
    }
    Ok(outcomes)
}

pub async fn set_tenant(conn: &mut PgConnection, tenant_id: uuid::Uuid) -> sqlx::Result<()> {
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves the projection's position forward (never back: redeliveries carry older positions).
pub async fn save_position(
    conn: &mut PgConnection,
    projection: Projection,
    position: Position,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into rm_positions (projection, transaction_id, global_position, updated_at)
         values ($1, $2::text::xid8, $3, now())
         on conflict (projection) do update
         set transaction_id = excluded.transaction_id,
             global_position = excluded.global_position, updated_at = now()
         where (rm_positions.transaction_id, rm_positions.global_position)
             < (excluded.transaction_id, excluded.global_position)",
    )
    .bind(projection.name())
    .bind(position.transaction_id.to_string())
    .bind(position.global_position as i64)
    .execute(conn)
    .await?;
    Ok(())
}

async fn failed(
    projection: Projection,
    runtime: &Runtime,
    stats: &ProjectionStats,
    message: &jetstream::Message,
    event: &RecordedEvent,
    error: &anyhow::Error,
) {
    let attempts = message.info().map(|i| i.delivered).unwrap_or(1);
    if attempts < runtime.config.max_attempts {
        tracing::warn!(projection = %projection, event_id = %event.event_id, attempts, error = format!("{error:#}"), "event failed; will retry");
        let delay = runtime.config.retry_delay * attempts.max(1) as u32;
        let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
        return;
    }
    tracing::error!(projection = %projection, event_id = %event.event_id, attempts, error = format!("{error:#}"), "event dead-lettered");
    match crate::dead_letters::record(runtime, projection, event, error, attempts).await {
        Ok(()) => {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            let _ = message.ack_with(AckKind::Term).await;
        }
        Err(err) => {
            // Not recorded: keep it in the stream rather than lose it.
            tracing::error!(error = %err, "could not record a dead letter; will retry");
            let _ = message
                .ack_with(AckKind::Nak(Some(runtime.config.retry_delay)))
                .await;
        }
    }
}
