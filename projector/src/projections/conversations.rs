//! `rm_conversations` (the inbox: last message, bot state, handoff, who of the business has
//! it, when the customer last wrote) and `rm_messages` (each message in and out, outbound ones
//! with their delivery status and, for a person's reply, who sent it).

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::bot::engine::Step;
use domain::bot::message::{Inbound, Reply};
use domain::conversation::{
    ConversationEvent, DELIVERY_LABELS, DeliveryStatus, Direction, delivery_label,
};
use eventstore::{EventStore, RecordedEvent};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::projection::decode;

const PREVIEW_CHARS: usize = 80;

pub async fn apply(
    conn: &mut PgConnection,
    store: &EventStore,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    // A conversation's stream is named by its customer's subject id; the events that carry
    // the phone (a message in or out) keep the inbox row's phone, the others find the row by
    // its subject.
    let subject: Uuid = event
        .stream
        .stream_id
        .parse()
        .context("a conversation stream is named by its customer's subject id")?;
    let tenant = event.tenant_id;
    match decode::<ConversationEvent>(event)? {
        ConversationEvent::MessageReceived {
            wamid,
            from,
            profile_name,
            content,
            received_at,
        } => {
            let preview = preview(inbound_text(&content));
            touch(
                conn,
                event,
                (from.as_str(), subject),
                received_at,
                Direction::In,
                &preview,
                profile_name.as_deref(),
            )
            .await?;
            sqlx::query!(
                "update rm_conversations set last_inbound_at = greatest(last_inbound_at, $3)
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                received_at
            )
            .execute(&mut *conn)
            .await?;
            sqlx::query!(
                "insert into rm_messages (tenant_id, customer_phone, version, message_id,
                     direction, content, at)
                 values ($1, $2, $3, $4, $5, $6, $7)",
                tenant,
                from.as_str(),
                event.version as i32,
                wamid,
                Direction::In.as_str(),
                Json(&content) as _,
                received_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::BotReplied {
            reply_id,
            reply,
            to,
        } => outbound(conn, event, (to.as_str(), subject), &reply_id, &reply, None).await?,
        ConversationEvent::StaffReplied {
            reply_id,
            reply,
            by,
            to,
        } => {
            outbound(
                conn,
                event,
                (to.as_str(), subject),
                &reply_id,
                &reply,
                Some(&by),
            )
            .await?
        }
        ConversationEvent::BotStateChanged { state } => {
            // Back with the bot (the customer asked for the menu): nobody of the business has it.
            sqlx::query!(
                "update rm_conversations set bot_state = $3, handed_off = $4, updated_at = $5,
                     taken_over_by = case when $4 then taken_over_by end
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                Json(&state) as _,
                state.step == Step::HandedOff,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::StaffTookOver { by } => {
            sqlx::query!(
                "update rm_conversations set taken_over_by = $3, updated_at = $4
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                by,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::HandedBackToBot { .. } => {
            sqlx::query!(
                "update rm_conversations set taken_over_by = null, updated_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::HandedOffToHuman => {
            sqlx::query!(
                "update rm_conversations set handed_off = true, updated_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageSent { reply_id, wamid } => {
            // Pending becomes sent; a status that came first (kept by the domain) stays.
            sqlx::query!(
                "update rm_messages set wamid = $3,
                     status = case when status = $4 then $5 else status end
                 where tenant_id = $1 and message_id = $2",
                tenant,
                reply_id,
                wamid,
                delivery_label(None),
                DeliveryStatus::Sent.as_str()
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageFailed {
            reply_id,
            code,
            reason,
        } => {
            sqlx::query!(
                "update rm_messages set status = $3, error_code = $4, error_reason = $5
                 where tenant_id = $1 and message_id = $2",
                tenant,
                reply_id,
                DeliveryStatus::Failed.as_str(),
                code,
                reason
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundStatusChanged { wamid, status } => {
            // Forward only, in the order of DELIVERY_LABELS (failed is final).
            let order: Vec<String> = DELIVERY_LABELS.iter().map(|l| (*l).to_owned()).collect();
            sqlx::query!(
                "update rm_messages set status = $3
                 where tenant_id = $1 and wamid = $2 and status is distinct from $5
                   and array_position($4::text[], $3) > coalesce(array_position($4::text[], status), 0)",
                tenant,
                wamid,
                status.as_str(),
                &order,
                DeliveryStatus::Failed.as_str()
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::AnswerDeferred { until, .. } => {
            sqlx::query!(
                "update rm_conversations set answer_due_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                until
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::DeferralEnded { .. } => {
            sqlx::query!(
                "update rm_conversations set answer_due_at = null
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::CustomerErased { .. } => refold(conn, store, event, subject).await?,
        ConversationEvent::ConversationExpired | ConversationEvent::BookingAttached { .. } => {}
    }
    Ok(())
}

/// The customer was erased: their inbox row and messages are made again from the log, which
/// now reads their stand-ins, so the live rows are what a rebuild makes of them.
async fn refold(
    conn: &mut PgConnection,
    store: &EventStore,
    event: &RecordedEvent,
    subject: Uuid,
) -> anyhow::Result<()> {
    let phone = sqlx::query_scalar!(
        "delete from rm_conversations where tenant_id = $1 and subject = $2
         returning customer_phone",
        event.tenant_id,
        subject
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(phone) = phone {
        sqlx::query!(
            "delete from rm_messages where tenant_id = $1 and customer_phone = $2",
            event.tenant_id,
            phone
        )
        .execute(&mut *conn)
        .await?;
    }
    if event.version > 1 {
        let earlier = store
            .read_stream_range_in(conn, event.tenant_id, &event.stream, 1, event.version - 1)
            .await?;
        for earlier in &earlier {
            Box::pin(apply(conn, store, earlier)).await?;
        }
    }
    Ok(())
}

/// A message to the customer, the bot's or a person's (`by`): pending until the sender has it.
async fn outbound(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    (phone, subject): (&str, Uuid),
    reply_id: &str,
    reply: &Reply,
    by: Option<&str>,
) -> anyhow::Result<()> {
    let preview = preview(&reply_text(reply));
    touch(
        conn,
        event,
        (phone, subject),
        event.recorded_at,
        Direction::Out,
        &preview,
        None,
    )
    .await?;
    sqlx::query!(
        "insert into rm_messages (tenant_id, customer_phone, version, message_id,
             direction, content, at, status, sent_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        event.tenant_id,
        phone,
        event.version as i32,
        reply_id,
        Direction::Out.as_str(),
        Json(reply) as _,
        event.recorded_at,
        delivery_label(None),
        by
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Creates the inbox row or moves it to its latest message.
async fn touch(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    (phone, subject): (&str, Uuid),
    at: DateTime<Utc>,
    direction: Direction,
    preview: &str,
    profile_name: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query!(
        "insert into rm_conversations (tenant_id, customer_phone, profile_name, last_message_at,
             last_direction, last_preview, messages, updated_at, subject)
         values ($1, $2, $3, $4, $5, $6, 1, $7, $8)
         on conflict (tenant_id, customer_phone) do update
         set subject = excluded.subject,
             profile_name = coalesce(excluded.profile_name, rm_conversations.profile_name),
             last_message_at = greatest(rm_conversations.last_message_at, excluded.last_message_at),
             last_direction = excluded.last_direction,
             last_preview = excluded.last_preview,
             messages = rm_conversations.messages + 1,
             updated_at = excluded.updated_at",
        event.tenant_id,
        phone,
        profile_name,
        at,
        direction.as_str(),
        preview,
        event.recorded_at,
        subject
    )
    .execute(conn)
    .await?;
    Ok(())
}

fn inbound_text(content: &Inbound) -> &str {
    match content {
        Inbound::Text { body } => body,
        Inbound::ButtonReply { title, .. } | Inbound::ListReply { title, .. } => title,
        Inbound::Unsupported { message_type } => message_type,
    }
}

/// What the customer reads; a template by its name and parameters (its own text is Meta's).
fn reply_text(reply: &Reply) -> std::borrow::Cow<'_, str> {
    match reply {
        Reply::Text { body } | Reply::Buttons { body, .. } | Reply::List { body, .. } => {
            body.as_str().into()
        }
        Reply::Template { name, body, .. } => format!("[{name}] {}", body.join(" · ")).into(),
    }
}

fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}
