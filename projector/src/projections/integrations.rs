//! `rm_public_events`: each tenant's public events (`domain::integration`), numbered 1, 2, ...
//! in the order this projection applies them, which is the log's commit order (a rebuild
//! replays the log in that order and gives every event the same number). The number is the
//! server-sent-events stream's event id; the body is what a business's systems receive.
//!
//! `rm_webhook_endpoints` and `rm_webhook_redeliveries`: the business's webhook endpoints as
//! their events left them, and the events it asked to be delivered again (the deliverer,
//! `crate::webhooks`, reads both). An endpoint receives the public events numbered after the
//! last one when it was registered: the same number on a rebuild, which applies the log in the
//! same order.

use domain::DomainEvent as _;
use domain::webhook::WebhookEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    if event.stream.stream_type == WebhookEvent::STREAM_TYPE {
        return apply_endpoint(conn, event).await;
    }
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

async fn apply_endpoint(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let endpoint_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    match domain::event::decode::<WebhookEvent>(&event.event_type, event.payload.clone())? {
        WebhookEvent::WebhookEndpointRegistered {
            url,
            topics,
            description,
            ..
        } => {
            sqlx::query!(
                "insert into rm_webhook_endpoints
                     (tenant_id, endpoint_id, url, topics, description, status, start_seq,
                      created_at, updated_at)
                 values ($1, $2, $3, $4, $5, 'enabled',
                         coalesce((select last_seq from rm_public_event_heads
                                   where tenant_id = $1), 0) + 1,
                         $6, $6)",
                event.tenant_id,
                endpoint_id,
                url.as_str(),
                &topics,
                description,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        WebhookEvent::WebhookEndpointDisabled { reason } => {
            sqlx::query!(
                "update rm_webhook_endpoints
                 set status = 'disabled', disabled_reason = $3, updated_at = $4
                 where tenant_id = $1 and endpoint_id = $2",
                event.tenant_id,
                endpoint_id,
                serde_json::to_value(&reason)?,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        WebhookEvent::WebhookEndpointEnabled => {
            sqlx::query!(
                "update rm_webhook_endpoints
                 set status = 'enabled', disabled_reason = null, updated_at = $3
                 where tenant_id = $1 and endpoint_id = $2",
                event.tenant_id,
                endpoint_id,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        WebhookEvent::WebhookRedeliveryRequested { seq } => {
            sqlx::query!(
                "insert into rm_webhook_redeliveries (tenant_id, endpoint_id, seq, requested_at)
                 values ($1, $2, $3, $4)
                 on conflict (tenant_id, endpoint_id, seq) do update set requested_at = $4",
                event.tenant_id,
                endpoint_id,
                seq,
                at
            )
            .execute(&mut *conn)
            .await?;
        }
        WebhookEvent::WebhookEndpointDeleted => {
            sqlx::query!(
                "delete from rm_webhook_redeliveries where tenant_id = $1 and endpoint_id = $2",
                event.tenant_id,
                endpoint_id
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query!(
                "delete from rm_webhook_endpoints where tenant_id = $1 and endpoint_id = $2",
                event.tenant_id,
                endpoint_id
            )
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}
