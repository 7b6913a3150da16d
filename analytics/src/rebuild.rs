//! `analytics rebuild`: the facts made afresh from the stream, while the consumer runs.
//!
//! Two steps, in this order. First the facts, the dead letters and the checkpoint are reset in
//! one transaction (`analytics.reset`, which waits for a batch in flight). Then the durable
//! consumer is deleted: the running consumer's pull ends, it makes the consumer anew from the
//! stream's first message, and applies everything again. In between, a message the old consumer
//! still hands over is past the reset checkpoint, so the gap before it is read from the stream:
//! nothing is lost either way, and nothing counts twice. The command waits, with a progress bar,
//! until the checkpoint reaches what the stream held when it began.

use std::time::{Duration, Instant};

use async_nats::jetstream;
use indicatif::{ProgressBar, ProgressStyle};
use nats::Namespace;
use sqlx::PgPool;

use crate::consumer::NAME;

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct Rebuilt {
    /// The stream's last sequence when the rebuild began, now applied.
    pub sequence: u64,
    pub elapsed: Duration,
}

/// Resets the facts and the durable consumer, then waits (up to `timeout`) for the running
/// consumer to apply the stream again. `operator` is the operator role's pool.
pub async fn rebuild(
    operator: &PgPool,
    nats: &async_nats::Client,
    ns: &Namespace,
    progress: bool,
    timeout: Duration,
) -> anyhow::Result<Rebuilt> {
    let started = Instant::now();
    let js = jetstream::new(nats.clone());
    let mut stream = js
        .get_stream(ns.events_stream())
        .await
        .map_err(|e| anyhow::anyhow!("cannot open the events stream: {e}"))?;
    let target = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("cannot read the events stream: {e}"))?
        .state
        .last_sequence;
    sqlx::query!("select analytics.reset($1)", NAME)
        .execute(operator)
        .await?;
    match stream.delete_consumer(NAME).await {
        Ok(_) => {}
        // Never made yet: the consumer, when it starts, begins at the first message anyway.
        Err(err) if err.to_string().contains("not found") => {}
        Err(err) => anyhow::bail!("cannot delete the analytics consumer: {err}"),
    }
    let bar = if progress {
        let bar = ProgressBar::new(target);
        bar.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} messages  {per_sec}  eta {eta}")
                .expect("a valid template"),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let deadline = Instant::now() + timeout;
    loop {
        let reached = sqlx::query_scalar!(
            "select stream_sequence from analytics.checkpoints where consumer = $1",
            NAME
        )
        .fetch_optional(operator)
        .await?
        .unwrap_or(0) as u64;
        bar.set_position(reached.min(target));
        if reached >= target {
            bar.finish();
            return Ok(Rebuilt {
                sequence: target,
                elapsed: started.elapsed(),
            });
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the analytics consumer reached message {reached} of {target}: is it running?"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
