//! The one executor: run a use case's decision over a fresh unit of work, commit it, and when
//! another writer moved one of its streams in between, decide again on the new state.
//!
//! Every command of every binary goes through [`execute`]; nothing else loops on a version
//! conflict. What a decision reads is loaded anew on each attempt, so the second decision
//! sees what the first writer did (a slot it took, a message it recorded).

use std::future::Future;
use std::pin::Pin;

use eventstore::{AppendError, Position};
use tracing::Instrument as _;

use crate::App;
use crate::context::CommandContext;
use crate::error::AppError;
use crate::unit_of_work::UnitOfWork;

/// How often a command is decided before the executor gives up with [`AppError::Busy`].
pub const ATTEMPTS: usize = 5;

/// A decision's future, borrowing its unit of work.
pub type Decision<'u, T> = Pin<Box<dyn Future<Output = Result<T, AppError>> + Send + 'u>>;

/// What a committed command gives back.
#[derive(Debug, Clone)]
pub struct Committed<T> {
    /// What the decision returned (a view of the changed aggregate, an id, ...).
    pub value: T,
    /// The position of the command's last event: its consistency token. `None` when it
    /// appended nothing (nothing to change, or a retry of a command already applied).
    pub position: Option<Position>,
    /// The events already existed: this was a retry of a command applied before.
    pub replayed: bool,
}

impl<T> Committed<T> {
    /// The consistency token clients pass to the query API (empty when nothing was appended).
    pub fn consistency_token(&self) -> String {
        self.position.map(|p| p.to_string()).unwrap_or_default()
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Committed<U> {
        Committed {
            value: f(self.value),
            position: self.position,
            replayed: self.replayed,
        }
    }
}

/// Decides with `decide` over a fresh unit of work and commits it; on a version conflict,
/// decides again (at most [`ATTEMPTS`] times). A decision's error ends the command at once
/// and nothing it staged or wrote is kept.
///
/// ```text
/// app::execute(app, &ctx, |uow| Box::pin(async {
///     let booking = uow.load::<BookingAggregate>(&stream).await?;
///     uow.stage(&stream, &BookingAggregate::decide(&booking, command.clone())?);
///     Ok(())
/// })).await
/// ```
pub async fn execute<'a, T, F>(
    app: &'a App,
    ctx: &'a CommandContext,
    mut decide: F,
) -> Result<Committed<T>, AppError>
where
    F: for<'u> FnMut(&'u mut UnitOfWork<'a>) -> Decision<'u, T>,
{
    let (store, states) = (&app.store, &app.states);
    for attempt in 1..=ATTEMPTS {
        let mut uow = UnitOfWork::new(store, states, ctx);
        let mut decided = decide(&mut uow).await;
        // Refused on a state this process kept folded: this command's own events may lie
        // inside it, unseen (below). Decided again on whole streams, it sees them.
        if decided.as_ref().is_err_and(AppError::is_refusal) && uow.used_kept_states() {
            uow = UnitOfWork::new(store, states, ctx).reading_whole_streams();
            decided = decide(&mut uow).await;
        }
        let value = match decided {
            Ok(value) => value,
            // Refused on a state that holds this command's own events: it was applied before
            // and its answer was lost (the process killed between the commit and the reply).
            // Decided again on the state as it was before them, it makes the same events,
            // which the store answers as a replay: the retry gets the first run's answer, not
            // "already cancelled".
            Err(refusal) if refusal.is_refusal() && uow.found_own_events() => {
                uow = UnitOfWork::new(store, states, ctx).reading_before_own_events();
                decide(&mut uow).await?
            }
            Err(err) => return Err(err),
        };
        let started = std::time::Instant::now();
        // The events' metadata carries this span's trace context (when traced): what consumes
        // them joins the trace under it.
        let committed = uow
            .commit()
            .instrument(tracing::info_span!("append", attempt))
            .await;
        metrics::histogram!("append_duration_seconds").record(started.elapsed().as_secs_f64());
        match committed {
            Ok(outcome) => {
                let replayed = outcome.as_ref().is_some_and(|o| o.replayed);
                metrics::counter!("commands_total", "outcome" => if replayed { "replayed" } else { "committed" })
                    .increment(1);
                return Ok(Committed {
                    value,
                    replayed,
                    position: outcome.map(|o| o.last_position),
                });
            }
            Err(AppendError::Conflict { stream, .. }) => {
                tracing::debug!(%stream, attempt, "a stream moved under the command; deciding again");
                metrics::counter!("append_conflicts_total").increment(1);
                // Writers racing for one stream (a herd on one agenda day) spread out rather
                // than meet again at once: a random pause, growing with each attempt.
                if attempt < ATTEMPTS {
                    tokio::time::sleep(backoff(attempt)).await;
                }
            }
            Err(AppendError::IdempotencyMismatch { .. }) => {
                metrics::counter!("commands_total", "outcome" => "idempotency_mismatch")
                    .increment(1);
                return Err(AppError::IdempotencyMismatch);
            }
            Err(err) => {
                metrics::counter!("commands_total", "outcome" => "failed").increment(1);
                return Err(anyhow::Error::new(err)
                    .context("failed to commit a unit of work")
                    .into());
            }
        }
    }
    metrics::counter!("commands_total", "outcome" => "busy").increment(1);
    Err(AppError::Busy)
}

/// Up to 2, 4, 8, 16 ms before attempts 2 to 5: enough for the writer that won to commit.
fn backoff(attempt: usize) -> std::time::Duration {
    let ceiling_us = 1_000u64 << attempt.min(6);
    std::time::Duration::from_micros(rand::random_range(ceiling_us / 4..=ceiling_us))
}
