//! `rm_conversations` (the inbox: last message, bot state, handoff) and `rm_messages` (each
//! message in and out, outbound ones with their delivery status).

use chrono::{DateTime, Utc};
use domain::bot::engine::Step;
use domain::bot::message::{Inbound, Reply};
use domain::conversation::ConversationEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::label;
use crate::projection::{Target, decode};

const PREVIEW_CHARS: usize = 80;

pub async fn apply(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let conversations = target.table("rm_conversations");
    let messages = target.table("rm_messages");
    let phone = event.stream.stream_id.as_str();
    let tenant = event.tenant_id;
    match decode::<ConversationEvent>(event)? {
        ConversationEvent::MessageReceived {
            wamid,
            profile_name,
            content,
            received_at,
            ..
        } => {
            let preview = preview(inbound_text(&content));
            touch(
                conn,
                &conversations,
                event,
                received_at,
                "in",
                &preview,
                profile_name.as_deref(),
            )
            .await?;
            sqlx::query(&format!(
                "insert into {messages} (tenant_id, customer_phone, version, message_id, direction,
                     content, at)
                 values ($1, $2, $3, $4, 'in', $5, $6)"
            ))
            .bind(tenant)
            .bind(phone)
            .bind(event.version as i32)
            .bind(wamid)
            .bind(Json(&content))
            .bind(received_at)
            .execute(conn)
            .await?;
        }
        ConversationEvent::BotReplied {
            reply_id, reply, ..
        } => {
            let preview = preview(reply_text(&reply));
            touch(
                conn,
                &conversations,
                event,
                event.recorded_at,
                "out",
                &preview,
                None,
            )
            .await?;
            sqlx::query(&format!(
                "insert into {messages} (tenant_id, customer_phone, version, message_id, direction,
                     content, at, status)
                 values ($1, $2, $3, $4, 'out', $5, $6, 'pending')"
            ))
            .bind(tenant)
            .bind(phone)
            .bind(event.version as i32)
            .bind(reply_id)
            .bind(Json(&reply))
            .bind(event.recorded_at)
            .execute(conn)
            .await?;
        }
        ConversationEvent::BotStateChanged { state } => {
            sqlx::query(&format!(
                "update {conversations} set bot_state = $3, handed_off = $4, updated_at = $5
                 where tenant_id = $1 and customer_phone = $2"
            ))
            .bind(tenant)
            .bind(phone)
            .bind(Json(&state))
            .bind(state.step == Step::HandedOff)
            .bind(event.recorded_at)
            .execute(conn)
            .await?;
        }
        ConversationEvent::HandedOffToHuman => {
            sqlx::query(&format!(
                "update {conversations} set handed_off = true, updated_at = $3
                 where tenant_id = $1 and customer_phone = $2"
            ))
            .bind(tenant)
            .bind(phone)
            .bind(event.recorded_at)
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageSent { reply_id, wamid } => {
            sqlx::query(&format!(
                "update {messages} set wamid = $3,
                     status = case when status = 'pending' then 'sent' else status end
                 where tenant_id = $1 and message_id = $2"
            ))
            .bind(tenant)
            .bind(reply_id)
            .bind(wamid)
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageFailed {
            reply_id,
            code,
            reason,
        } => {
            sqlx::query(&format!(
                "update {messages} set status = 'failed', error_code = $3, error_reason = $4
                 where tenant_id = $1 and message_id = $2"
            ))
            .bind(tenant)
            .bind(reply_id)
            .bind(code)
            .bind(reason)
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundStatusChanged { wamid, status } => {
            // Forward only: sent < delivered < read, failed is final.
            sqlx::query(&format!(
                "update {messages} set status = $3
                 where tenant_id = $1 and wamid = $2 and status is distinct from 'failed'
                   and array_position(array['pending', 'sent', 'delivered', 'read', 'failed'], $3)
                     > coalesce(array_position(array['pending', 'sent', 'delivered', 'read',
                         'failed'], status), 0)"
            ))
            .bind(tenant)
            .bind(wamid)
            .bind(label(&status))
            .execute(conn)
            .await?;
        }
        ConversationEvent::ConversationExpired | ConversationEvent::BookingAttached { .. } => {}
    }
    Ok(())
}

/// Creates the inbox row or moves it to its latest message.
async fn touch(
    conn: &mut PgConnection,
    table: &str,
    event: &RecordedEvent,
    at: DateTime<Utc>,
    direction: &str,
    preview: &str,
    profile_name: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "insert into {table} (tenant_id, customer_phone, profile_name, last_message_at,
             last_direction, last_preview, messages, updated_at)
         values ($1, $2, $3, $4, $5, $6, 1, $7)
         on conflict (tenant_id, customer_phone) do update
         set profile_name = coalesce(excluded.profile_name, {table}.profile_name),
             last_message_at = greatest({table}.last_message_at, excluded.last_message_at),
             last_direction = excluded.last_direction,
             last_preview = excluded.last_preview,
             messages = {table}.messages + 1,
             updated_at = excluded.updated_at"
    ))
    .bind(event.tenant_id)
    .bind(&event.stream.stream_id)
    .bind(profile_name)
    .bind(at)
    .bind(direction)
    .bind(preview)
    .bind(event.recorded_at)
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

fn reply_text(reply: &Reply) -> &str {
    match reply {
        Reply::Text { body } | Reply::Buttons { body, .. } | Reply::List { body, .. } => body,
    }
}

fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}
