//! Pulling from the events stream: a durable consumer with explicit acks, read in batches.
//!
//! Every consumer of the platform (projections, reactors, analytics) pulls the same way; what
//! it does with a batch, and how it acks, is its own.

use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt as _;
use tokio_util::sync::CancellationToken;

use crate::Namespace;

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

/// Pulls from the durable consumer `name` until `cancel`, handing `handle` one batch at a time:
/// what arrives within `linger` of a first message, up to `batch_size`. Creating the consumer
/// and pulling are retried while NATS or the stream is away.
pub async fn consume<F, Fut>(
    nats: &async_nats::Client,
    ns: &Namespace,
    name: &str,
    filter_subject: String,
    (batch_size, linger): (usize, Duration),
    cancel: &CancellationToken,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<jetstream::Message>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let js = jetstream::new(nats.clone());
    // The consumer is looked up anew after a failed pull: an operator (or a rebuild) may have
    // deleted it, and get-or-create makes it again from its definition.
    loop {
        let consumer = match durable_consumer(&js, ns, name, filter_subject.clone(), cancel).await {
            Ok(Some(consumer)) => consumer,
            Ok(None) => return Ok(()),
            Err(err) => {
                tracing::warn!(
                    consumer = name,
                    error = format!("{err:#}"),
                    "no consumer yet; retrying"
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        tracing::info!(consumer = name, "consuming");
        let messages = consumer
            .stream()
            .max_messages_per_batch(batch_size)
            .heartbeat(Duration::from_secs(5))
            .expires(Duration::from_secs(10))
            .messages()
            .await;
        let messages = match messages {
            Ok(m) => m,
            Err(err) => {
                tracing::warn!(consumer = name, error = %err, "cannot pull; retrying");
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let mut messages = std::pin::pin!(messages);
        loop {
            let chunk = tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                chunk = next_batch(&mut messages, batch_size, linger) => chunk,
            };
            let Some(chunk) = chunk else { break };
            let mut batch = Vec::with_capacity(chunk.len());
            let mut broken = false;
            for item in chunk {
                match item {
                    Ok(message) => batch.push(message),
                    Err(err) => {
                        tracing::warn!(consumer = name, error = %err, "pull failed");
                        broken = true;
                    }
                }
            }
            if !batch.is_empty() {
                handle(batch).await;
            }
            if broken {
                break;
            }
        }
    }
}

/// Waits for a first item, then gathers what else arrives within `linger` (up to `max`): under
/// load a batch fills and one transaction carries many events; when idle a lone event waits
/// at most `linger`.
async fn next_batch<S, T>(
    stream: &mut std::pin::Pin<&mut S>,
    max: usize,
    linger: Duration,
) -> Option<Vec<T>>
where
    S: futures::Stream<Item = T>,
{
    let first = stream.next().await?;
    let mut batch = vec![first];
    let deadline = tokio::time::Instant::now() + linger;
    while batch.len() < max {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => batch.push(item),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
}

/// How far behind the stream a consumer is, as of `message` (the last it handled): the
/// messages still pending for it, and how many seconds ago `message` was published. `None`
/// for a message without JetStream's metadata.
pub fn lag_behind(message: &jetstream::Message) -> Option<(u64, f64)> {
    let info = message.info().ok()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_nanos() as i128;
    let seconds = (now - info.published.unix_timestamp_nanos()) as f64 / 1e9;
    Some((info.pending, seconds.max(0.0)))
}
