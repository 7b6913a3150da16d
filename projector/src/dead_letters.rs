//! Events a projection gave up on: recorded with their error, announced on NATS, listed and
//! retried by an operator (`projector dead-letters list|retry`).
//!
//! A retry re-reads the event from the event store (never from the dead letter, which holds no
//! payload) and applies it through the projection's usual path, so a gap before it is filled too.

use anyhow::Context as _;
use eventstore::{RecordedEvent, StreamRef};
use serde::Serialize;
use sqlx::PgPool;

use crate::consumer::{Runtime, apply_events};
use crate::projection::Projection;

/// One dead letter as an operator sees it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub projection: String,
    pub event_id: uuid::Uuid,
    pub tenant_id: uuid::Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub version: i32,
    pub event_type: String,
    pub position: String,
    pub error: String,
    pub attempts: i32,
    pub failed_at: chrono::DateTime<chrono::Utc>,
}

/// The NATS subject a projection's dead letters are announced on.
pub fn subject(runtime: &Runtime, projection: Projection) -> String {
    let prefix = runtime.ns.prefix();
    if prefix.is_empty() {
        format!("deadletter.{}", projection.name())
    } else {
        format!("{prefix}.deadletter.{}", projection.name())
    }
}

pub async fn record(
    runtime: &Runtime,
    projection: Projection,
    event: &RecordedEvent,
    sequence: u64,
    error: &anyhow::Error,
    attempts: i64,
) -> anyhow::Result<()> {
    let error = format!("{error:#}");
    let mut tx = runtime.pool.begin().await?;
    sqlx::query!(
        "insert into rm_dead_letters (projection, event_id, tenant_id, stream_type, stream_id,
             version, event_type, position, error, attempts)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         on conflict (projection, event_id) do update
         set error = excluded.error, attempts = excluded.attempts, failed_at = now()",
        projection.name(),
        event.event_id,
        event.tenant_id,
        &event.stream.stream_type,
        &event.stream.stream_id,
        event.version as i32,
        &event.event_type,
        event.position.to_string(),
        &error,
        attempts as i32
    )
    .execute(&mut *tx)
    .await?;
    // The watermark passes it if it was the next message: what follows is not held back.
    sqlx::query!(
        "update rm_positions set stream_sequence = $2, updated_at = now()
         where projection = $1 and stream_sequence = $2 - 1",
        projection.name(),
        sequence as i64
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let note = serde_json::json!({
        "projection": projection.name(),
        "event_id": event.event_id,
        "tenant_id": event.tenant_id,
        "stream": event.stream.to_string(),
        "version": event.version,
        "event_type": event.event_type,
        "error": error,
    });
    if let Err(err) = runtime
        .nats
        .publish(subject(runtime, projection), note.to_string().into())
        .await
    {
        tracing::warn!(error = %err, "could not announce a dead letter (it is recorded)");
    }
    Ok(())
}

pub async fn list(
    pool: &PgPool,
    projection: Option<Projection>,
) -> anyhow::Result<Vec<DeadLetter>> {
    Ok(sqlx::query_as!(
        DeadLetter,
        "select projection, event_id, tenant_id, stream_type, stream_id, version, event_type,
             position, error, attempts, failed_at
         from rm_dead_letters where $1::text is null or projection = $1
         order by failed_at, projection, event_id",
        projection.map(|p| p.name())
    )
    .fetch_all(pool)
    .await?)
}

/// What a retry did with each dead letter.
#[derive(Debug, Clone, Serialize)]
pub struct RetryOutcome {
    pub projection: String,
    pub event_id: uuid::Uuid,
    pub result: Result<(), String>,
}

/// Re-applies dead letters (all, one projection's, or one event's) from the event store. A
/// success removes the dead letter; a failure keeps it with the new error.
pub async fn retry(
    runtime: &Runtime,
    projection: Option<Projection>,
    event_id: Option<uuid::Uuid>,
) -> anyhow::Result<Vec<RetryOutcome>> {
    let letters = list(&runtime.pool, projection).await?;
    let mut outcomes = Vec::new();
    for letter in letters
        .into_iter()
        .filter(|l| event_id.is_none_or(|id| id == l.event_id))
    {
        let result = retry_one(runtime, &letter).await;
        outcomes.push(RetryOutcome {
            projection: letter.projection.clone(),
            event_id: letter.event_id,
            result: result.map_err(|e| format!("{e:#}")),
        });
    }
    Ok(outcomes)
}

async fn retry_one(runtime: &Runtime, letter: &DeadLetter) -> anyhow::Result<()> {
    let projection: Projection = letter.projection.parse()?;
    let stream = StreamRef::new(letter.stream_type.clone(), letter.stream_id.clone());
    let mut tx = runtime.pool.begin().await?;
    crate::consumer::set_tenant(&mut tx, letter.tenant_id).await?;
    let version = letter.version as u32;
    let event = runtime
        .store
        .read_stream_range_in(&mut tx, letter.tenant_id, &stream, version, version)
        .await?
        .into_iter()
        .next()
        .context("the event is not in the event store")?;
    let applied = apply_events(projection, &runtime.store, &mut tx, &[&event]).await;
    match applied {
        Ok(_) => {
            sqlx::query!(
                "delete from rm_dead_letters where projection = $1 and event_id = $2",
                &letter.projection,
                letter.event_id
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }
        Err(err) => {
            tx.rollback().await?;
            sqlx::query!(
                "update rm_dead_letters set error = $3, attempts = attempts + 1, failed_at = now()
                 where projection = $1 and event_id = $2",
                &letter.projection,
                letter.event_id,
                format!("{err:#}")
            )
            .execute(&runtime.pool)
            .await?;
            Err(err)
        }
    }
}
