//! `rm_public_events`: each tenant's public events (`domain::integration`), numbered 1, 2, ...
//! in the order this projection applies them, which is the log's commit order (a rebuild
//! replays the log in that order and gives every event the same number). The number is the
//! server-sent-events stream's event id; the body is what a business's systems receive.

use eventstore::RecordedEvent;
use sqlx::PgConnection;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let Some(public) = domain::integration::from_stored(
        &event.stream.stream_type,
        &event.stream.stream_id,
        &event.event_type,
        event.payload.clone(),
    )?
    else {
        return Ok(());
    };
    let body =
        domain::integration::envelope(event.event_id, event.tenant_id, event.recorded_at, &public);
    let seq = sqlx::query_scalar!(
        "insert into rm_public_event_heads (tenant_id, last_seq) values ($1, 1)
         on conflict (tenant_id) do update set last_seq = rm_public_event_heads.last_seq + 1
         returning last_seq",
        event.tenant_id
    )
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query!(
        "insert into rm_public_events (tenant_id, seq, event_id, topic, body, created_at)
         values ($1, $2, $3, $4, $5, $6)",
        event.tenant_id,
        seq,
        event.event_id,
        public.topic.name(),
        body,
        event.recorded_at
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
