//! `rm_usage`: messages in and out and bookings made and cancelled, per tenant and calendar
//! month (UTC): what plan limits and billing read.

use domain::booking::BookingEvent;
use domain::conversation::ConversationEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::{Target, decode};

pub async fn apply(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let column = match event.stream.stream_type.as_str() {
        "conversation" => match decode::<ConversationEvent>(event)? {
            ConversationEvent::MessageReceived { .. } => "messages_in",
            ConversationEvent::OutboundMessageSent { .. } => "messages_out",
            _ => return Ok(()),
        },
        "booking" => match decode::<BookingEvent>(event)? {
            BookingEvent::AppointmentRequested { .. } => "bookings_created",
            BookingEvent::AppointmentCancelled { .. } => "bookings_cancelled",
            _ => return Ok(()),
        },
        _ => return Ok(()),
    };
    let table = target.table("rm_usage");
    sqlx::query(&format!(
        "insert into {table} (tenant_id, period, {column}) values ($1, $2, 1)
         on conflict (tenant_id, period) do update set {column} = {table}.{column} + 1"
    ))
    .bind(event.tenant_id)
    .bind(event.recorded_at.format("%Y-%m").to_string())
    .execute(conn)
    .await?;
    Ok(())
}
