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

use std::collections::HashMap;

use domain::DomainEvent as _;
use domain::conversation::ConversationEvent;
use domain::webhook::WebhookEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

/// A batch's events, each tenant's in their order. Their public events are numbered (each
/// tenant's after its last number) and written together, in one statement, before anything
/// that reads the numbers (an endpoint registered) or rewrites the rows (an erasure), and at
/// the end.
pub async fn apply_all(
    conn: &mut PgConnection,
    store: &eventstore::EventStore,
    events: &[&RecordedEvent],
) -> anyhow::Result<()> {
    let mut pending = Published::default();
    // Each conversation's customer phone, read once.
    let mut phones: HashMap<(uuid::Uuid, uuid::Uuid), String> = HashMap::new();
    for event in events {
        if event.stream.stream_type == WebhookEvent::STREAM_TYPE {
            pending.write(conn).await?;
            apply_endpoint(conn, event).await?;
            continue;
        }
        if let Some(erased) = crate::projection::erasure(event)? {
            pending.write(conn).await?;
            phones.remove(&(event.tenant_id, erased.subject));
            scrub(conn, store, event, &erased).await?;
            continue;
        }
        let Some(mut public) = domain::integration::from_stored(
            &event.stream.stream_type,
            &event.stream.stream_id,
            &event.event_type,
            &event.payload,
        )?
        else {
            continue;
        };
        if event.stream.stream_type == ConversationEvent::STREAM_TYPE {
            // A conversation's stream is named by its customer's subject id; a business's
            // systems know the customer by phone (or by their stand-in, once erased).
            let subject: uuid::Uuid = event.stream.stream_id.parse()?;
            let phone = match phones.get(&(event.tenant_id, subject)) {
                Some(phone) => phone.clone(),
                None => {
                    let phone = match eventstore::personal::phone_of(conn, event.tenant_id, subject)
                        .await?
                    {
                        Some(phone) => phone,
                        None => domain::personal::erased_phone(subject).as_str().to_owned(),
                    };
                    phones.insert((event.tenant_id, subject), phone.clone());
                    phone
                }
            };
            public.data["customer_phone"] = phone.into();
        }
        pending.tenants.push(event.tenant_id);
        pending.event_ids.push(event.event_id);
        pending.topics.push(public.topic.name().to_owned());
        pending.bodies.push(domain::integration::envelope(
            event.event_id,
            event.tenant_id,
            event.recorded_at,
            public,
        ));
        pending.created_at.push(event.recorded_at);
    }
    pending.write(conn).await
}

/// Public events not numbered yet, in order.
#[derive(Default)]
struct Published {
    tenants: Vec<uuid::Uuid>,
    event_ids: Vec<uuid::Uuid>,
    topics: Vec<String>,
    bodies: Vec<serde_json::Value>,
    created_at: Vec<chrono::DateTime<chrono::Utc>>,
}

impl Published {
    /// Numbers each tenant's after its last number, in order, and writes them: each tenant's
    /// head moves by its count of them (the heads taken in the tenants' order, so two writers
    /// never wait on each other crosswise), and its events take the numbers below.
    async fn write(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if self.tenants.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "with s as (
                 select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[],
                     $5::timestamptz[])
                     with ordinality as s(tenant_id, event_id, topic, body, created_at, n)
             ), counts as (
                 select tenant_id, count(*) as k from s group by tenant_id
             ), head as (
                 insert into rm_public_event_heads (tenant_id, last_seq)
                 select tenant_id, k from counts order by tenant_id
                 on conflict (tenant_id) do update
                 set last_seq = rm_public_event_heads.last_seq + excluded.last_seq
                 returning tenant_id, last_seq
             )
             insert into rm_public_events (tenant_id, seq, event_id, topic, body, created_at)
             select s.tenant_id,
                    head.last_seq - counts.k
                        + row_number() over (partition by s.tenant_id order by s.n),
                    s.event_id, s.topic, s.body, s.created_at
             from s join counts using (tenant_id) join head using (tenant_id)",
            &self.tenants,
            &self.event_ids,
            &self.topics,
            &self.bodies,
            &self.created_at
        )
        .execute(conn)
        .await?;
        *self = Published::default();
        Ok(())
    }
}

async fn apply_endpoint(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let endpoint_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    match domain::event::decode::<WebhookEvent>(&event.event_type, &event.payload)? {
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

/// An erased customer in the public events already numbered: the bookings they made name the
/// stand-in customer, their handoffs the stand-in phone, as a rebuild would derive them.
pub(crate) async fn scrub(
    conn: &mut PgConnection,
    store: &eventstore::EventStore,
    event: &RecordedEvent,
    erased: &crate::projection::Erasure,
) -> anyhow::Result<()> {
    let phone = domain::personal::erased_phone(erased.subject);
    let customer = domain::personal::stand_in(domain::personal::StandIn::Customer, erased.subject);
    let booked: Vec<String> = erased.bookings.iter().map(|b| b.to_string()).collect();
    sqlx::query!(
        "update rm_public_events set body = jsonb_set(body, '{data,customer}', $3)
          where tenant_id = $1 and topic = 'booking.created'
            and body->'data'->>'booking_id' = any($2)",
        event.tenant_id,
        &booked,
        customer
    )
    .execute(&mut *conn)
    .await?;
    // The conversation's own public events (handoffs), by their event ids.
    let own: Vec<uuid::Uuid> = store
        .read_stream_range_in(conn, event.tenant_id, &event.stream, 1, event.version)
        .await?
        .into_iter()
        .map(|e| e.event_id)
        .collect();
    sqlx::query!(
        "update rm_public_events set body = jsonb_set(body, '{data,customer_phone}', to_jsonb($3::text))
          where tenant_id = $1 and event_id = any($2) and body->'data' ? 'customer_phone'",
        event.tenant_id,
        &own,
        phone.as_str()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
