//! `rm_usage`: messages in and out and bookings made and cancelled, per tenant and calendar
//! month (UTC): what plan limits and billing read.

use domain::DomainEvent as _;
use domain::booking::BookingEvent;
use domain::conversation::ConversationEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::decode;

/// What one event adds to its month.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counted {
    messages_in: i64,
    messages_out: i64,
    bookings_created: i64,
    bookings_cancelled: i64,
}

fn counted(event: &RecordedEvent) -> anyhow::Result<Counted> {
    let one = Counted::default();
    Ok(match event.stream.stream_type.as_str() {
        ConversationEvent::STREAM_TYPE => match decode::<ConversationEvent>(event)? {
            ConversationEvent::MessageReceived { .. } => Counted {
                messages_in: 1,
                ..one
            },
            ConversationEvent::OutboundMessageSent { .. } => Counted {
                messages_out: 1,
                ..one
            },
            ConversationEvent::ConversationExpired
            | ConversationEvent::CustomerErased { .. }
            | ConversationEvent::BotReplied { .. }
            | ConversationEvent::BotStateChanged { .. }
            | ConversationEvent::BookingAttached { .. }
            | ConversationEvent::HandedOffToHuman
            | ConversationEvent::OutboundMessageFailed { .. }
            | ConversationEvent::OutboundStatusChanged { .. }
            | ConversationEvent::AnswerDeferred { .. }
            | ConversationEvent::DeferralEnded { .. }
            | ConversationEvent::StaffTookOver { .. }
            | ConversationEvent::StaffReplied { .. }
            | ConversationEvent::HandedBackToBot { .. } => one,
        },
        BookingEvent::STREAM_TYPE => match decode::<BookingEvent>(event)? {
            BookingEvent::AppointmentRequested { .. } => Counted {
                bookings_created: 1,
                ..one
            },
            BookingEvent::AppointmentCancelled { .. } => Counted {
                bookings_cancelled: 1,
                ..one
            },
            BookingEvent::AppointmentConfirmed
            | BookingEvent::AppointmentRescheduled { .. }
            | BookingEvent::AppointmentCompleted
            | BookingEvent::AppointmentMarkedNoShow
            | BookingEvent::RemindersScheduled { .. }
            | BookingEvent::ReminderSent { .. }
            | BookingEvent::ReminderSkipped { .. }
            | BookingEvent::AttendanceConfirmed
            | BookingEvent::CustomerArrived { .. } => one,
        },
        _ => one,
    })
}

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let counted = counted(event)?;
    if counted == Counted::default() {
        return Ok(());
    }
    sqlx::query!(
        "insert into rm_usage (tenant_id, period, messages_in, messages_out, bookings_created,
             bookings_cancelled)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (tenant_id, period) do update
         set messages_in = rm_usage.messages_in + excluded.messages_in,
             messages_out = rm_usage.messages_out + excluded.messages_out,
             bookings_created = rm_usage.bookings_created + excluded.bookings_created,
             bookings_cancelled = rm_usage.bookings_cancelled + excluded.bookings_cancelled",
        event.tenant_id,
        event.recorded_at.format("%Y-%m").to_string(),
        counted.messages_in,
        counted.messages_out,
        counted.bookings_created,
        counted.bookings_cancelled
    )
    .execute(conn)
    .await?;
    Ok(())
}
