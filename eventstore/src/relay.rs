//! The relay: publishes committed events, in commit order, to the JetStream events stream.
//!
//! This is the outbox pattern. Commands only write to Postgres; the relay is the one writer of
//! the stream, so every message there is exactly one committed event:
//!
//! - **One active relay.** Instances compete for a Postgres advisory lock held on a dedicated
//!   connection; the holder publishes, the others wait and take over when its session ends
//!   (a crashed process's connection closes and releases the lock).
//! - **Commit order, nothing skipped.** It reads the log with the gap-free commit-order read and
//!   publishes a batch in that order on one connection, pipelined. Each message expects the
//!   stream's last sequence to be its predecessor's (`Nats-Expected-Last-Sequence`), so when one
//!   is lost on the way (a node dies, the stream's leader moves) the server refuses every later
//!   one rather than store it after a gap: the stream is always a prefix of the log.
//! - **Exactly once per event id.** It checkpoints in Postgres after the acks; when it takes over,
//!   or after a failed publish, it resumes after the later of that checkpoint and the position
//!   carried by the last message stored in the stream (the end of that prefix), so neither a
//!   crash between ack and checkpoint nor an ack lost after the message was stored re-publishes
//!   anything. `Nats-Msg-Id = event_id` makes a re-publish a no-op as well (a duplicate takes no
//!   sequence, so the messages after it expect too much and are refused, then sent again).
//! - **NATS down.** Appends go on (they never touch NATS); the relay retries with exponential
//!   backoff and jitter and catches up when the server is back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use async_nats::HeaderMap;
use async_nats::jetstream::{self, context::PublishAckFuture, stream::Stream};
use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};
use nats::{Namespace, Storage, headers};
use sqlx::PgConnection;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::global::GlobalLog;
use crate::types::{Position, RecordedEvent};
use crate::wake::CommitListener;

/// Advisory-lock class for relay leadership (the second key is the stream name's hash).
const RELAY_LOCK_CLASS: i32 = 0x5245_4c41; // "RELA"

#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Events read and published per round trip.
    pub batch_size: usize,
    /// How long to wait for a commit announcement before looking at the log anyway.
    pub idle_wait: Duration,
    /// How often a standby instance tries to become the leader.
    pub standby_retry: Duration,
    /// The longest pause between retries while NATS or Postgres fail.
    pub max_backoff: Duration,
    pub storage: Storage,
    /// Replicas of the events stream when the relay has to create it.
    pub replicas: usize,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 1_000,
            idle_wait: Duration::from_secs(1),
            standby_retry: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            storage: Storage::File,
            replicas: 1,
        }
    }
}

/// Counters a relay keeps while it runs (for metrics and tests).
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Events stored in the stream by this relay.
    pub published: AtomicU64,
    /// Publishes JetStream acknowledged as duplicates (a re-publish after a lost ack).
    pub duplicates: AtomicU64,
    /// How many times this relay became the leader.
    pub terms: AtomicU64,
}

pub struct Relay {
    stats: Arc<RelayStats>,
    log: GlobalLog,
    client: async_nats::Client,
    jetstream: jetstream::Context,
    ns: Namespace,
    config: RelayConfig,
}

/// Why a leader stopped leading.
enum Stepped {
    Down,
    Cancelled,
}

impl Relay {
    pub fn new(
        log: GlobalLog,
        client: async_nats::Client,
        ns: Namespace,
        config: RelayConfig,
    ) -> Self {
        let jetstream = jetstream::new(client.clone());
        Self {
            stats: Arc::default(),
            log: log.as_stored(),
            client,
            jetstream,
            ns,
            config,
        }
    }

    pub fn stats(&self) -> Arc<RelayStats> {
        self.stats.clone()
    }

    /// Runs until `cancel` fires: waits to become the leader, then publishes. A batch in flight
    /// when cancelled is finished and checkpointed first.
    pub async fn run(self, cancel: CancellationToken) -> anyhow::Result<()> {
        let mut backoff = Backoff::new(self.config.max_backoff);
        // A standby keeps its session between attempts rather than reconnecting each time.
        let mut session: Option<PgConnection> = None;
        loop {
            let leading = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                leading = self.try_lead(&mut session) => leading,
            };
            match leading {
                Ok(true) => {
                    let lock = session.take().expect("the leader's session");
                    tracing::info!(stream = %self.ns.events_stream(), "relay is the leader");
                    self.stats.terms.fetch_add(1, Ordering::Relaxed);
                    backoff.reset();
                    let led = self.lead(lock, &cancel).await;
                    metrics::gauge!("relay_leading").set(0.0);
                    match led {
                        Ok(Stepped::Cancelled) => return Ok(()),
                        Ok(Stepped::Down) => {}
                        Err(err) => {
                            tracing::warn!(error = ?err, "relay stepped down");
                            backoff.sleep(&cancel).await;
                        }
                    }
                }
                Ok(false) => {
                    tokio::select! {
                        _ = cancel.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(self.config.standby_retry) => {}
                    }
                }
                Err(err) => {
                    session = None;
                    tracing::warn!(error = ?err, "relay cannot reach Postgres");
                    backoff.sleep(&cancel).await;
                }
            }
        }
    }

    /// Tries to take the leadership lock on a session of its own ([`crate::session_lock`]).
    async fn try_lead(&self, session: &mut Option<PgConnection>) -> sqlx::Result<bool> {
        let stream = self.ns.events_stream();
        crate::session_lock::try_lock(self.log.pool(), session, RELAY_LOCK_CLASS, &stream).await
    }

    async fn lead(
        &self,
        mut lock: PgConnection,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Stepped> {
        let mut backoff = Backoff::new(self.config.max_backoff);
        let mut stream = loop {
            match nats::provision_events_stream(
                &self.jetstream,
                &self.ns,
                self.config.storage,
                self.config.replicas,
            )
            .await
            {
                Ok(stream) => break stream,
                Err(err) => {
                    tracing::warn!(error = ?err, "relay waits for NATS");
                    if backoff.sleep(cancel).await.is_cancelled() {
                        return Ok(Stepped::Cancelled);
                    }
                }
            }
        };
        let (mut checkpoint, mut last_sequence) = self.resume_point(&mut stream).await?;
        tracing::info!(%checkpoint, last_sequence, "relay resumes");
        metrics::counter!("relay_leaderships_total").increment(1);
        // 1 while this process publishes; back to 0 when it steps down (`run`).
        metrics::gauge!("relay_leading").set(1.0);
        let mut listener = CommitListener::subscribe(&self.client, self.ns.commit_wakeup()).await;

        loop {
            if cancel.is_cancelled() {
                return Ok(Stepped::Cancelled);
            }
            // Still holding the lock? If the session died, someone else may be leading.
            if !crate::session_lock::still_held(&mut lock).await {
                tracing::warn!("relay lost its leadership connection");
                return Ok(Stepped::Down);
            }
            let batch = self
                .log
                .read_all(checkpoint, self.config.batch_size)
                .await
                .context("failed to read the log")?;
            // How far behind the log the stream is: the age of the oldest event not yet
            // published (0 when caught up), and how many were read at once.
            metrics::gauge!("relay_lag_seconds").set(batch.first().map_or(0.0, |e| {
                (chrono::Utc::now() - e.recorded_at)
                    .as_seconds_f64()
                    .max(0.0)
            }));
            metrics::histogram!("relay_batch_events").record(batch.len() as f64);
            if batch.is_empty() {
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(Stepped::Cancelled),
                    _ = listener.wait(self.config.idle_wait) => {}
                }
                continue;
            }
            let published = self.publish(&batch, last_sequence).await;
            if let Some((position, sequence)) = published.last_acked {
                save_checkpoint(&mut lock, &self.ns.events_stream(), position).await?;
                checkpoint = position;
                last_sequence = sequence;
            }
            match published.error {
                None => backoff.reset(),
                Some(err) => {
                    tracing::warn!(error = ?err, %checkpoint, "publishing failed; retrying");
                    if backoff.sleep(cancel).await.is_cancelled() {
                        return Ok(Stepped::Cancelled);
                    }
                    // Messages past the last ack may have been stored (their acks lost): go on
                    // after what the stream holds. Unreadable now, the stale expectation is
                    // refused by the server on the next try, which comes back here.
                    match self.resume_point(&mut stream).await {
                        Ok((position, sequence)) => {
                            if position > checkpoint {
                                save_checkpoint(&mut lock, &self.ns.events_stream(), position)
                                    .await?;
                                checkpoint = position;
                            }
                            last_sequence = sequence;
                        }
                        Err(err) => tracing::warn!(error = ?err, "relay cannot read the stream"),
                    }
                }
            }
        }
    }

    /// Where to start: after the later of the Postgres checkpoint and the last message stored
    /// in the stream (which is the last event published: no message is stored after a gap), and
    /// the stream's last sequence, which the next message expects.
    async fn resume_point(&self, stream: &mut Stream) -> anyhow::Result<(Position, u64)> {
        let stored = load_checkpoint(self.log.pool(), &self.ns.events_stream()).await?;
        let last_sequence = stream
            .info()
            .await
            .context("failed to read the stream's state")?
            .state
            .last_sequence;
        let in_stream = if last_sequence == 0 {
            None
        } else {
            let message = stream
                .get_raw_message(last_sequence)
                .await
                .context("failed to read the stream's last message")?;
            message
                .headers
                .get(headers::POSITION)
                .and_then(|v| v.as_str().parse::<Position>().ok())
        };
        Ok((
            stored.max(in_stream.unwrap_or(Position::START)),
            last_sequence,
        ))
    }

    /// Publishes a batch in order, pipelined: all messages are sent, each expecting the one
    /// before it as the stream's last (the first, `last_sequence`), then the acks awaited in
    /// order. Reports how far the contiguous acknowledged prefix reaches, and its sequence.
    async fn publish(&self, batch: &[RecordedEvent], last_sequence: u64) -> Published {
        let mut pending: Vec<(Position, PublishAckFuture)> = Vec::with_capacity(batch.len());
        let mut error = None;
        for (event, expected) in batch.iter().zip(last_sequence..) {
            match self.send(event, expected).await {
                Ok(ack) => pending.push((event.position, ack)),
                Err(err) => {
                    error = Some(err);
                    break;
                }
            }
        }
        let mut last_acked = None;
        for (position, ack) in pending {
            match ack.await {
                Ok(ack) => {
                    let (counter, outcome) = if ack.duplicate {
                        (&self.stats.duplicates, "duplicate")
                    } else {
                        (&self.stats.published, "published")
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("relay_events_total", "outcome" => outcome).increment(1);
                    last_acked = Some((position, ack.sequence));
                }
                Err(err) => {
                    error.get_or_insert(anyhow::Error::new(err).context("no ack from JetStream"));
                    break;
                }
            }
        }
        Published { last_acked, error }
    }

    async fn send(
        &self,
        event: &RecordedEvent,
        expected_last_sequence: u64,
    ) -> anyhow::Result<PublishAckFuture> {
        let subject = self.ns.event_subject(
            event.tenant_id,
            &event.stream.stream_type,
            &event.event_type,
        );
        let payload = serde_json::to_vec(event).context("failed to encode an event")?;
        let mut h = HeaderMap::new();
        h.insert(headers::MSG_ID, event.event_id.to_string().as_str());
        h.insert(
            async_nats::header::NATS_EXPECTED_LAST_SEQUENCE,
            expected_last_sequence.to_string().as_str(),
        );
        h.insert(headers::TENANT, event.tenant_id.to_string().as_str());
        h.insert(headers::STREAM_TYPE, event.stream.stream_type.as_str());
        h.insert(headers::STREAM_ID, event.stream.stream_id.as_str());
        h.insert(headers::VERSION, event.version.to_string().as_str());
        h.insert(headers::EVENT_TYPE, event.event_type.as_str());
        h.insert(
            headers::SCHEMA_VERSION,
            event.schema_version.to_string().as_str(),
        );
        h.insert(headers::POSITION, event.position.to_string().as_str());
        // A traced operation's event is published in a span of that trace, whose context the
        // message carries on to its consumers (or the appender's, when this process exports no
        // traces of its own).
        let span = match event.metadata.traceparent.as_deref() {
            Some(parent) => {
                let span = tracing::info_span!(
                    "publish",
                    otel.kind = "producer",
                    event_type = %event.event_type,
                    stream_type = %event.stream.stream_type,
                    position = %event.position,
                );
                tracecontext::follow(&span, Some(parent));
                let carried = tracecontext::of(&span).unwrap_or_else(|| parent.to_owned());
                h.insert(headers::TRACEPARENT, carried.as_str());
                span
            }
            None => tracing::Span::none(),
        };
        self.jetstream
            .publish_with_headers(subject, h, payload.into())
            .instrument(span)
            .await
            .context("failed to send to JetStream")
    }
}

struct Published {
    /// The last of the contiguous acknowledged prefix, and its stream sequence.
    last_acked: Option<(Position, u64)>,
    error: Option<anyhow::Error>,
}

/// The relay's checkpoint for a stream, or the start of the log.
pub async fn load_checkpoint(pool: &sqlx::PgPool, stream: &str) -> anyhow::Result<Position> {
    let row = sqlx::query!(
        r#"select transaction_id::text::bigint as "tx_id!", global_position
             from relay_checkpoints where relay = $1"#,
        stream
    )
    .fetch_optional(pool)
    .await
    .context("failed to load the relay checkpoint")?;
    Ok(row.map_or(Position::START, |r| Position {
        transaction_id: r.tx_id as u64,
        global_position: r.global_position as u64,
    }))
}

/// Moves the checkpoint forward (never back), on the leader's own connection.
async fn save_checkpoint(
    conn: &mut PgConnection,
    stream: &str,
    position: Position,
) -> anyhow::Result<()> {
    sqlx::query!(
        "insert into relay_checkpoints (relay, transaction_id, global_position)
         values ($1, $2::text::xid8, $3)
         on conflict (relay) do update
            set transaction_id = excluded.transaction_id,
                global_position = excluded.global_position,
                updated_at = now()
          where (relay_checkpoints.transaction_id, relay_checkpoints.global_position)
              < (excluded.transaction_id, excluded.global_position)",
        stream,
        position.transaction_id.to_string(),
        position.global_position as i64
    )
    .execute(conn)
    .await
    .context("failed to save the relay checkpoint")?;
    Ok(())
}

/// Exponential backoff with full jitter, 100 ms doubling up to a ceiling.
/// Pauses between failed attempts: exponential from 100 ms up to the configured maximum,
/// each between half the step and the step (backon's jitter), from the start again after a
/// success.
struct Backoff {
    builder: ExponentialBuilder,
    delays: ExponentialBackoff,
    max: Duration,
}

enum Slept {
    Done,
    Cancelled,
}

impl Slept {
    fn is_cancelled(&self) -> bool {
        matches!(self, Slept::Cancelled)
    }
}

impl Backoff {
    fn new(max: Duration) -> Self {
        let builder = ExponentialBuilder::new()
            .with_min_delay(Duration::from_millis(50))
            .with_max_delay(max / 2)
            .with_jitter()
            .without_max_times();
        Self {
            delays: builder.build(),
            builder,
            max,
        }
    }

    fn reset(&mut self) {
        self.delays = self.builder.build();
    }

    fn next_delay(&mut self) -> Duration {
        self.delays.next().unwrap_or(self.max)
    }

    async fn sleep(&mut self, cancel: &CancellationToken) -> Slept {
        let delay = self.next_delay();
        tokio::select! {
            _ = cancel.cancelled() => Slept::Cancelled,
            _ = tokio::time::sleep(delay) => Slept::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_its_ceiling_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(2));
        let first = b.next_delay();
        assert!(first <= Duration::from_millis(100) && first >= Duration::from_millis(50));
        for _ in 0..10 {
            assert!(b.next_delay() <= Duration::from_secs(2));
        }
        assert!(b.next_delay() >= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
