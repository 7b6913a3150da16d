//! The live side of a projection: a durable JetStream pull consumer with explicit acks.
//!
//! Messages arrive in batches (whatever is ready, up to `batch_size`). A batch is applied in one
//! Postgres transaction, every tenant's events together under the projector's role
//! ([`apply_together`]), with the projection's position (`rm_positions`), then acknowledged; a
//! batch of many tenants is split into shares of whole tenants applied at once on several
//! connections, the positions saved once every share has committed ([`apply_batch_together`]).
//! If the batch fails, each message is retried in its own transaction so that one bad event
//! cannot hold the others back: a failing one is negatively acknowledged with a growing delay
//! and, after `max_attempts` deliveries, dead-lettered (recorded in `rm_dead_letters`, announced on
//! `deadletter.<projection>`) and terminated. The database failing for a moment (a connection
//! lost, a deadlock: `eventstore::is_transient`) is not the event's fault: it is retried
//! without end, never dead-lettered. Because every projection skips what it has applied
//! and fills gaps from the store, redelivery, reordering and a crash between commit and ack are
//! all harmless.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, AckKind};
use eventstore::{EventStore, Position, RecordedEvent, Upcasters, session_lock};
use nats::Namespace;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::projection::{Applied, Projection, apply_together};

pub use nats::consume::{consume, durable_consumer};

/// How the live consumers behave.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub batch_size: usize,
    /// Deliveries of one message before it is dead-lettered.
    pub max_attempts: i64,
    /// The first redelivery delay; it grows linearly with each attempt.
    pub retry_delay: Duration,
    /// How long a batch waits for more messages after its first.
    pub linger: Duration,
    /// The most connections a batch's tenants are applied on at once (see
    /// [`apply_batch_together`]).
    pub parallelism: usize,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            max_attempts: 5,
            retry_delay: Duration::from_millis(500),
            linger: Duration::from_millis(5),
            parallelism: 4,
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
    /// Every tenant's events (operator role): fills gaps in what the stream delivered.
    pub log: eventstore::GlobalLog,
    pub pool: PgPool,
    pub nats: async_nats::Client,
    pub ns: Namespace,
    pub upcasters: Arc<Upcasters>,
    pub config: ConsumerConfig,
}

/// The projections' durable consumer: one for all of them, so that a batch is received,
/// revealed and acknowledged once and applied to every projection in one transaction.
pub const DURABLE: &str = "projections";

/// The projections read every event (`evt.>`), so that their positions follow the whole log
/// and a consistency token from any command is reached without waiting for an event of a
/// projection's own kind. Events of no projection's streams cost an ack and nothing in
/// Postgres.
pub fn filter_subject(ns: &Namespace) -> String {
    ns.all_events()
}

/// The span in which `consumer` handles a traced operation's event: a child of the relay's
/// publish span (the message's `traceparent`), or of the appender's when the relay carried
/// none. An untraced event gets no span.
pub fn consume_span(
    consumer: &str,
    message: &jetstream::Message,
    event: &RecordedEvent,
) -> tracing::Span {
    let carried = message
        .headers
        .as_ref()
        .and_then(|h| h.get(nats::headers::TRACEPARENT))
        .map(|v| v.as_str());
    let Some(parent) = carried.or(event.metadata.traceparent.as_deref()) else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        "consume",
        otel.name = format!("consume {consumer}"),
        otel.kind = "consumer",
        consumer,
        event_type = %event.event_type,
        position = %event.position,
    );
    tracecontext::follow(&span, Some(parent));
    span
}

/// Reads the envelope the relay published: the event as stored, personal values sealed and
/// the payload in its stored schema. [`receive`] makes it what readers get.
pub fn decode_message(message: &jetstream::Message) -> anyhow::Result<RecordedEvent> {
    serde_json::from_slice(&message.payload).context("not an event envelope")
}

/// The events a batch of messages carries, as every reader gets them: personal values
/// revealed (or their stand-ins, for a customer who was erased), payloads upcast. A message
/// that is not one of the relay's envelopes is terminated. When the customers' keys cannot be
/// read (Postgres out of reach), the whole batch is put back for `retry` and nothing returned.
pub async fn receive(
    pool: &PgPool,
    upcasters: &Upcasters,
    messages: Vec<jetstream::Message>,
    retry: Duration,
) -> Vec<(jetstream::Message, RecordedEvent)> {
    let mut received = Vec::with_capacity(messages.len());
    for message in messages {
        match decode_message(&message) {
            Ok(event) => received.push((message, event)),
            Err(err) => {
                tracing::error!(error = %err, subject = %message.subject, "dropping an unreadable message");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    let (messages, mut events): (Vec<_>, Vec<RecordedEvent>) = received.into_iter().unzip();
    if let Err(err) = eventstore::open_received(pool, &mut events, upcasters).await {
        tracing::warn!(error = %err, size = messages.len(), "cannot reveal a batch; it comes back later");
        for message in messages {
            let _ = message.ack_with(AckKind::Nak(Some(retry))).await;
        }
        return Vec::new();
    }
    messages.into_iter().zip(events).collect()
}

/// Runs the projections' consumer until `cancel`: every projection of `projections`, each
/// counting what it did in its stats.
///
/// One instance consumes at a time. Every batch takes the projections' watermarks, so a second
/// instance pulling too would add no throughput, only holes: each would receive every other
/// batch, find it not the next, and apply it projection by projection with its hole read from
/// the store, which is several times the work. Under load that slower path falls behind and
/// the instances stay in it. So the instances take turns, like the relay: the one that holds
/// an advisory lock on a session of its own consumes, the others wait to take over when that
/// session ends (the process died or was stopped), within `TURN_RETRY`. The messages the
/// last holder had not acknowledged are a hole the next one fills from the store; when they
/// come back they are duplicates.
pub async fn run(
    runtime: Runtime,
    projections: Vec<(Projection, Arc<ProjectionStats>)>,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let (rt, ps) = (&runtime, &projections[..]);
    loop {
        let Some(mut turn) = take_turn(&runtime, &cancel).await else {
            return Ok(());
        };
        tracing::info!(consumer = DURABLE, "this instance applies the projections");
        metrics::gauge!("projections_active").set(1.0);
        let stop = cancel.child_token();
        let consuming = consume(
            &runtime.nats,
            &runtime.ns,
            DURABLE,
            filter_subject(&runtime.ns),
            (runtime.config.batch_size, runtime.config.linger),
            &stop,
            move |batch| handle_batch(rt, ps, batch),
        );
        let mut consuming = std::pin::pin!(consuming);
        tokio::select! {
            done = &mut consuming => {
                metrics::gauge!("projections_active").set(0.0);
                return done;
            }
            () = turn_lost(&mut turn) => {}
        }
        // Another instance may be consuming already: finish the batch in hand (its
        // watermarks keep the two apart) and wait for the next turn.
        tracing::warn!(
            consumer = DURABLE,
            "the projections' turn was lost with its session"
        );
        stop.cancel();
        consuming.await?;
        metrics::gauge!("projections_active").set(0.0);
    }
}

/// Advisory-lock class for the projections' turn (the second key is the events stream's
/// name's hash, as for the relay).
pub const TURN_LOCK_CLASS: i32 = 0x5052_4f4a; // "PROJ"
/// How often an instance waiting for the turn asks for it, and the holder checks that its
/// session is alive.
const TURN_RETRY: Duration = Duration::from_secs(1);

/// Waits for the projections' turn: the advisory lock, taken on a session detached from the
/// pool, which holds it for as long as it lives. `None` once `cancel` fires.
async fn take_turn(runtime: &Runtime, cancel: &CancellationToken) -> Option<PgConnection> {
    let mut session: Option<PgConnection> = None;
    let stream = runtime.ns.events_stream();
    loop {
        let attempt = session_lock::try_lock(&runtime.pool, &mut session, TURN_LOCK_CLASS, &stream);
        match attempt.await {
            Ok(true) => return session,
            Ok(false) => {}
            Err(err) => {
                session = None;
                tracing::warn!(error = %err, "cannot ask Postgres for the projections' turn");
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            _ = tokio::time::sleep(TURN_RETRY) => {}
        }
    }
}

/// Returns once the session holding the turn no longer answers (the lock went with it).
async fn turn_lost(turn: &mut PgConnection) {
    loop {
        tokio::time::sleep(TURN_RETRY).await;
        if !session_lock::still_held(turn).await {
            return;
        }
    }
}

/// A message with the event it carries and its place in the JetStream stream.
struct Delivery {
    message: jetstream::Message,
    sequence: u64,
    event: RecordedEvent,
}

/// What becomes of a message once every projection has had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Verdict {
    /// Applied (or dead-lettered) by every projection.
    Ack,
    /// Some projection wants it again after this long; those that applied it skip it then.
    Retry(Duration),
}

/// Applies a batch to every projection together ([`apply_batch_together`]) and acknowledges
/// it. When the batch is not simply the next messages of every projection, or fails, each
/// projection takes it on its own ([`apply_batch`]) and, where that fails, one message at a
/// time, so that one bad event holds back only the projection it fails in: a message is
/// acknowledged once every projection has applied or dead-lettered it, and otherwise comes
/// back.
async fn handle_batch(
    runtime: &Runtime,
    projections: &[(Projection, Arc<ProjectionStats>)],
    messages: Vec<jetstream::Message>,
) {
    let received = receive(
        &runtime.pool,
        &runtime.upcasters,
        messages,
        runtime.config.retry_delay,
    )
    .await;
    let mut batch: Vec<Delivery> = received
        .into_iter()
        .map(|(message, event)| Delivery {
            sequence: message.info().map(|i| i.stream_sequence).unwrap_or(0),
            message,
            event,
        })
        .collect();
    if batch.is_empty() {
        return;
    }
    batch.sort_by_key(|d| d.sequence);
    let all: Vec<(u64, &RecordedEvent)> = batch.iter().map(|d| (d.sequence, &d.event)).collect();
    metrics::histogram!("projection_batch_events").record(batch.len() as f64);
    let last = batch.last().map(|d| &d.message);
    // Each traced event's span lasts while its batch is applied and committed.
    let spans: Vec<tracing::Span> = batch
        .iter()
        .map(|d| consume_span(DURABLE, &d.message, &d.event))
        .filter(|s| !s.is_none())
        .collect();
    let names: Vec<Projection> = projections.iter().map(|(p, _)| *p).collect();
    let together = apply_batch_together(runtime, &names, &all).await;
    drop(spans);
    match together {
        Ok(Some(outcomes)) => {
            metrics::counter!("projection_batches_total", "path" => "together").increment(1);
            for ((projection, stats), outcomes) in projections.iter().zip(&outcomes) {
                count(*projection, stats, outcomes);
                lag(*projection, last);
            }
            for d in &batch {
                if let Err(err) = d.message.ack().await {
                    tracing::warn!(error = %err, "ack failed; the message will be redelivered and skipped");
                }
            }
            return;
        }
        Ok(None) => {}
        Err(err) => {
            tracing::warn!(
                error = format!("{err:#}"),
                size = batch.len(),
                "batch failed; each projection takes it on its own"
            );
        }
    }
    metrics::counter!("projection_batches_total", "path" => "apart").increment(1);
    let mut verdicts = vec![Verdict::Ack; batch.len()];
    for (projection, stats) in projections {
        let projection = *projection;
        match apply_batch(projection, runtime, &all).await {
            Ok(outcomes) => count(projection, stats, &outcomes),
            Err(err) => {
                tracing::warn!(projection = %projection, error = format!("{err:#}"), size = batch.len(), "batch failed; applying one by one");
                for (d, verdict) in batch.iter().zip(verdicts.iter_mut()) {
                    let outcome =
                        match apply_batch(projection, runtime, &[(d.sequence, &d.event)]).await {
                            Ok(outcomes) => {
                                count(projection, stats, &outcomes);
                                Verdict::Ack
                            }
                            // Not this event's fault: it comes back once the earlier one is
                            // applied or dead-lettered, or the log can be read up to it.
                            Err(err)
                                if err.is::<EarlierEventFailed>() || err.is::<NotYetReadable>() =>
                            {
                                Verdict::Retry(runtime.config.retry_delay)
                            }
                            // Nor is the database failing for a moment (a connection lost, a
                            // deadlock): the event comes back until it applies.
                            Err(err) if eventstore::caused_by_transient(err.as_ref()) => {
                                transient(projection, runtime, d, &err)
                            }
                            Err(err) => failed(projection, runtime, stats, d, &err).await,
                        };
                    *verdict = (*verdict).max(outcome);
                }
            }
        }
        lag(projection, last);
    }
    for (d, verdict) in batch.iter().zip(verdicts) {
        let acked = match verdict {
            Verdict::Ack => d.message.ack().await,
            Verdict::Retry(delay) => d.message.ack_with(AckKind::Nak(Some(delay))).await,
        };
        if let Err(err) = acked {
            tracing::warn!(error = %err, "ack failed; the message will be redelivered and skipped");
        }
    }
}

/// How far behind the stream a projection is, as of the last message it applied: the messages
/// still pending for its consumer, and how long ago that message was published
/// (`projection_lag_events`, `projection_lag_seconds`).
fn lag(projection: Projection, last: Option<&jetstream::Message>) {
    let Some((pending, seconds)) = last.and_then(nats::consume::lag_behind) else {
        return;
    };
    metrics::gauge!("projection_lag_events", "projection" => projection.name()).set(pending as f64);
    metrics::gauge!("projection_lag_seconds", "projection" => projection.name()).set(seconds);
}

/// A batch could not be applied because an event before it (read from the store to fill a
/// gap) failed.
#[derive(Debug, thiserror::Error)]
#[error("an earlier event failed: {0}")]
pub struct EarlierEventFailed(String);

/// The log could not yet be read up to a message that arrived ahead of the watermark, so what
/// lies between them is unknown: the message comes back later. Like [`EarlierEventFailed`],
/// not the message's fault, and not counted towards its dead letter.
#[derive(Debug, thiserror::Error)]
#[error("the log is not yet readable up to {0}")]
pub struct NotYetReadable(Position);

/// Counts what a batch did, in the stats and as `projection_events_total{projection, outcome}`.
fn count(projection: Projection, stats: &ProjectionStats, outcomes: &[Applied]) {
    let counter = |outcome: &'static str| metrics::counter!("projection_events_total", "projection" => projection.name(), "outcome" => outcome);
    for outcome in outcomes {
        match outcome {
            Applied::Applied => counter("applied").increment(1),
            Applied::FilledGap(n) => counter("applied").increment(1 + *n as u64),
            Applied::Duplicate => counter("duplicate").increment(1),
            Applied::NotMine => {}
        }
    }
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

/// How far a projection has applied the stream: every message up to `sequence` (and every
/// event up to `position`) is applied or dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    pub sequence: u64,
    pub position: Position,
}

/// Locks and reads a projection's watermark (one batch of a projection at a time, across
/// instances).
async fn lock_watermark(
    conn: &mut PgConnection,
    projection: Projection,
) -> sqlx::Result<Watermark> {
    let locked = || {
        sqlx::query!(
            r#"select stream_sequence, transaction_id::text as "transaction_id!", global_position
                 from rm_positions where projection = $1 for update"#,
            projection.name()
        )
    };
    // The row exists but for a projection's very first batch.
    let row = match locked().fetch_optional(&mut *conn).await? {
        Some(row) => row,
        None => {
            sqlx::query!(
                "insert into rm_positions (projection, transaction_id, global_position,
                     stream_sequence)
                 values ($1, '0'::xid8, 0, 0) on conflict (projection) do nothing",
                projection.name()
            )
            .execute(&mut *conn)
            .await?;
            locked().fetch_one(conn).await?
        }
    };
    Ok(Watermark {
        sequence: row.stream_sequence as u64,
        position: Position {
            transaction_id: row.transaction_id.parse().unwrap_or(0),
            global_position: row.global_position as u64,
        },
    })
}

async fn save_watermark(
    conn: &mut PgConnection,
    projection: Projection,
    watermark: Watermark,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update rm_positions set stream_sequence = $2, transaction_id = $3::text::xid8,
             global_position = $4, updated_at = now()
         where projection = $1",
        projection.name(),
        watermark.sequence as i64,
        watermark.position.transaction_id.to_string(),
        watermark.position.global_position as i64
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The events committed after `after` and before `before`: what the stream holds between the
/// watermark and a message that arrived ahead of it (the missing ones are in flight to another,
/// perhaps dead, consumer, or waiting to be redelivered). Dead letters are left out.
///
/// The log is read up to `before` itself: a read that ends short of it (the log's gap-free
/// horizon is still behind it, held back by a transaction that has not ended) says nothing
/// about what lies in between, so it is [`NotYetReadable`], never an empty gap.
async fn missing_events(
    runtime: &Runtime,
    conn: &mut PgConnection,
    projection: Projection,
    after: Position,
    before: Position,
) -> anyhow::Result<Vec<RecordedEvent>> {
    let mut out = Vec::new();
    let mut from = after;
    'read: loop {
        let batch = runtime.log.read_all(from, 1000).await?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Err(NotYetReadable(before).into());
        };
        for event in batch {
            if event.position >= before {
                break 'read;
            }
            out.push(event);
        }
        from = last;
    }
    if !out.is_empty() {
        let ids: Vec<uuid::Uuid> = out.iter().map(|e| e.event_id).collect();
        let dead = sqlx::query_scalar!(
            "select event_id from rm_dead_letters where projection = $1 and event_id = any($2)",
            projection.name(),
            &ids
        )
        .fetch_all(conn)
        .await?;
        out.retain(|e| !dead.contains(&e.event_id));
    }
    Ok(out)
}

/// Applies a batch to every projection of `projections`, with their watermarks, when it is
/// simply the next messages of each of them: their watermarks are the same and the batch's
/// messages follow them without a hole. Messages every projection has applied or
/// dead-lettered already (at or below the watermark) are skipped. The watermarks are locked and
/// saved in one transaction; the events are applied in it or, for a batch of many tenants, in
/// shares of whole tenants at once, each share's transaction committed before the watermarks
/// move ([`apply_in_shares`]). Returns each projection's outcomes, or `None`, having written
/// nothing, when the batch is not that (then each projection takes it on its own,
/// [`apply_batch`]). On an error, shares that committed stay: their events are duplicates when
/// they come back.
pub async fn apply_batch_together(
    runtime: &Runtime,
    projections: &[Projection],
    deliveries: &[(u64, &RecordedEvent)],
) -> anyhow::Result<Option<Vec<Vec<Applied>>>> {
    let mut tx = runtime.pool.begin().await?;
    // Always locked in the same order, so two instances wait for each other, not deadlock.
    let mut marks = Vec::with_capacity(projections.len());
    for projection in projections {
        marks.push(lock_watermark(&mut tx, *projection).await?);
    }
    let Some(&first) = marks.first() else {
        return Ok(Some(Vec::new()));
    };
    // Whatever is not committed is rolled back here, not when the pool next touches the
    // connection: the watermarks' locks go at once, before a projection takes the batch alone.
    if marks.iter().any(|m| *m != first) {
        tx.rollback().await?;
        return Ok(None);
    }
    let mut watermark = first;
    let mut fresh: Vec<&RecordedEvent> = Vec::with_capacity(deliveries.len());
    let mut given: Vec<usize> = Vec::with_capacity(deliveries.len());
    for (k, (sequence, event)) in deliveries.iter().enumerate() {
        if *sequence <= watermark.sequence && event.position <= watermark.position {
            // A redelivery of what every projection has.
            continue;
        }
        if *sequence != watermark.sequence + 1 {
            tx.rollback().await?;
            return Ok(None);
        }
        watermark.sequence = *sequence;
        watermark.position = watermark.position.max(event.position);
        fresh.push(event);
        given.push(k);
    }
    let mut outcomes: Vec<Vec<Applied>> = projections
        .iter()
        .map(|p| deliveries.iter().map(|(_, e)| redelivered(*p, e)).collect())
        .collect();
    if fresh.is_empty() {
        tx.rollback().await?;
        return Ok(Some(outcomes));
    }
    let applied = match apply_in_shares(runtime, projections, &mut tx, &fresh).await {
        Ok(applied) => applied,
        Err(err) => {
            let _ = tx.rollback().await;
            return Err(err);
        }
    };
    for projection in projections {
        save_watermark(&mut tx, *projection, watermark).await?;
    }
    tx.commit().await?;
    for (outcomes, applied) in outcomes.iter_mut().zip(applied) {
        for (k, outcome) in given.iter().zip(applied) {
            outcomes[*k] = outcome;
        }
    }
    Ok(Some(outcomes))
}

/// A share of a batch is worth its own connection from this many events on: below it, the
/// transaction's begin and commit and the connection cost more than waiting does.
const EVENTS_PER_SHARE: usize = 64;

/// Applies `events` to `projections` for [`apply_batch_together`], which holds the watermarks
/// in `tx`: a batch of many tenants is split into shares of whole tenants, each applied and
/// committed in its own transaction on its own connection, all at once; a small batch (or one
/// tenant's) is applied in `tx` itself.
///
/// The drain is otherwise one batch at a time, each statement a round trip, and keeps the
/// machine's cores only partly busy. Shares are safe because no read-model row is two tenants'
/// (so shares never wait for each other's rows) and each tenant's events stay in one share, in
/// their order. A share commits as soon as it is applied; the watermarks move only once every
/// share has committed. A share committed before a failure (another share's, or a crash before
/// the watermarks are saved) is harmless: its events come back and are duplicates by their
/// streams' applied versions.
async fn apply_in_shares(
    runtime: &Runtime,
    projections: &[Projection],
    tx: &mut PgConnection,
    events: &[&RecordedEvent],
) -> anyhow::Result<Vec<Vec<Applied>>> {
    let shares = shares(events, runtime.config.parallelism);
    if shares.len() <= 1 {
        return apply_together(projections, tx, &runtime.store, events).await;
    }
    // Every share runs to its end, even after another fails: none is left half-way through a
    // statement.
    let applied = futures::future::join_all(shares.iter().map(|share| async move {
        let events: Vec<&RecordedEvent> = share.iter().map(|i| events[*i]).collect();
        let mut tx = runtime.pool.begin().await?;
        let applied = apply_together(projections, &mut tx, &runtime.store, &events).await?;
        tx.commit().await?;
        anyhow::Ok(applied)
    }))
    .await
    .into_iter()
    .collect::<anyhow::Result<Vec<_>>>()?;
    let mut outcomes = vec![vec![Applied::NotMine; events.len()]; projections.len()];
    for (share, applied) in shares.iter().zip(applied) {
        for (outcomes, applied) in outcomes.iter_mut().zip(applied) {
            for (i, outcome) in share.iter().zip(applied) {
                outcomes[*i] = outcome;
            }
        }
    }
    Ok(outcomes)
}

/// Splits `events` into at most `parallelism` shares of whole tenants (each a list of indexes
/// into `events`, in order), about equal in events, and no smaller than [`EVENTS_PER_SHARE`]
/// but for the last.
fn shares(events: &[&RecordedEvent], parallelism: usize) -> Vec<Vec<usize>> {
    let mut tenants: Vec<Vec<usize>> = crate::projection::by_tenant(events, |_| true)
        .into_iter()
        .map(|(_, theirs)| theirs)
        .collect();
    let count = parallelism
        .min(tenants.len())
        .min(events.len().div_ceil(EVENTS_PER_SHARE))
        .max(1);
    // The largest tenants first, each to the share with the fewest events so far.
    tenants.sort_by_key(|t| std::cmp::Reverse(t.len()));
    let mut shares: Vec<Vec<usize>> = vec![Vec::new(); count];
    for tenant in tenants {
        let smallest = shares
            .iter_mut()
            .min_by_key(|s| s.len())
            .expect("at least one share");
        smallest.extend(tenant);
    }
    for share in &mut shares {
        share.sort_unstable();
    }
    shares.retain(|s| !s.is_empty());
    shares
}

/// Applies a batch in one transaction with the projection's new watermark, in stream order.
/// Messages at or below the watermark are redeliveries (skipped by the applied versions).
/// Wherever a message is not the next in the stream (the ones in between are in flight to
/// another instance, or waiting to be redelivered), the events in between are read from the
/// store and applied first: before the batch's first message or between two of its own, so
/// the events are applied in the log's order and the watermark never passes one not applied.
pub async fn apply_batch(
    projection: Projection,
    runtime: &Runtime,
    deliveries: &[(u64, &RecordedEvent)],
) -> anyhow::Result<Vec<Applied>> {
    let mut tx = runtime.pool.begin().await?;
    let mut watermark = lock_watermark(&mut tx, projection).await?;
    let mut outcomes = Vec::with_capacity(deliveries.len());
    // Consecutive messages are applied together (one tenant switch per change, not per event).
    let mut run: Vec<&RecordedEvent> = Vec::with_capacity(deliveries.len());
    for (sequence, event) in deliveries {
        if *sequence <= watermark.sequence && event.position <= watermark.position {
            // A redelivery of what the projection has applied or dead-lettered.
            outcomes.extend(apply_events(projection, &runtime.store, &mut tx, &run).await?);
            run.clear();
            outcomes.push(redelivered(projection, event));
            continue;
        }
        if *sequence > watermark.sequence + 1 && event.position > watermark.position {
            outcomes.extend(apply_events(projection, &runtime.store, &mut tx, &run).await?);
            run.clear();
            let missing = missing_events(
                runtime,
                &mut tx,
                projection,
                watermark.position,
                event.position,
            )
            .await?;
            let refs: Vec<&RecordedEvent> = missing.iter().collect();
            if let Err(err) = apply_events(projection, &runtime.store, &mut tx, &refs).await {
                return Err(EarlierEventFailed(format!("{err:#}")).into());
            }
        }
        run.push(event);
        watermark.sequence = watermark.sequence.max(*sequence);
        watermark.position = watermark.position.max(event.position);
    }
    outcomes.extend(apply_events(projection, &runtime.store, &mut tx, &run).await?);
    save_watermark(&mut tx, projection, watermark).await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// The outcome of a message at or below a projection's watermark: seen before, if it is the
/// projection's at all.
fn redelivered(projection: Projection, event: &RecordedEvent) -> Applied {
    if projection.concerns(event) {
        Applied::Duplicate
    } else {
        Applied::NotMine
    }
}

/// Applies events, any tenants', in the caller's transaction ([`Projection::apply_all`]).
pub async fn apply_events(
    projection: Projection,
    store: &EventStore,
    conn: &mut PgConnection,
    events: &[&RecordedEvent],
) -> anyhow::Result<Vec<Applied>> {
    projection.apply_all(conn, store, events).await
}

pub async fn set_tenant(conn: &mut PgConnection, tenant_id: uuid::Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        r#"select set_config('app.tenant_id', $1, true) as "tenant""#,
        tenant_id.to_string()
    )
    .fetch_one(conn)
    .await?;
    Ok(())
}

/// A message whose event could not be applied because the database failed for a moment: it
/// comes back after a delay that grows with its deliveries (up to twenty times the first), and
/// is never dead-lettered for it: a dead letter is for an event the projection cannot apply.
fn transient(
    projection: Projection,
    runtime: &Runtime,
    delivery: &Delivery,
    error: &anyhow::Error,
) -> Verdict {
    let attempts = delivery.message.info().map(|i| i.delivered).unwrap_or(1);
    tracing::warn!(projection = %projection, event_id = %delivery.event.event_id, attempts, error = format!("{error:#}"), "the database failed for a moment; will retry");
    metrics::counter!("projection_transient_failures_total", "projection" => projection.name())
        .increment(1);
    Verdict::Retry(runtime.config.retry_delay * attempts.clamp(1, 20) as u32)
}

/// What becomes of a message that failed in `projection` on its own: it comes back after a
/// growing delay, or, after `max_attempts` deliveries, its event is dead-lettered for this
/// projection (recorded in `rm_dead_letters`, announced) and the projection goes on without
/// it.
async fn failed(
    projection: Projection,
    runtime: &Runtime,
    stats: &ProjectionStats,
    delivery: &Delivery,
    error: &anyhow::Error,
) -> Verdict {
    let (message, event) = (&delivery.message, &delivery.event);
    let attempts = message.info().map(|i| i.delivered).unwrap_or(1);
    if attempts < runtime.config.max_attempts {
        tracing::warn!(projection = %projection, event_id = %event.event_id, attempts, error = format!("{error:#}"), "event failed; will retry");
        return Verdict::Retry(runtime.config.retry_delay * attempts.max(1) as u32);
    }
    tracing::error!(projection = %projection, event_id = %event.event_id, attempts, error = format!("{error:#}"), "event dead-lettered");
    match crate::dead_letters::record(
        runtime,
        projection,
        event,
        delivery.sequence,
        error,
        attempts,
    )
    .await
    {
        Ok(()) => {
            stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("projection_events_total", "projection" => projection.name(), "outcome" => "dead_lettered")
                .increment(1);
            Verdict::Ack
        }
        Err(err) => {
            // Not recorded: keep it in the stream rather than lose it.
            tracing::error!(error = %err, "could not record a dead letter; will retry");
            Verdict::Retry(runtime.config.retry_delay)
        }
    }
}
