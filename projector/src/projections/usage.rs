//! `rm_usage`: messages in and out and bookings made and cancelled, per tenant and calendar
//! month (UTC): what plan limits and billing read.

use std::collections::BTreeMap;

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
            | ConversationEvent::ErasureRequested { .. }
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

/// Adds a batch's events (any tenants') to their months: one statement for all of them.
pub async fn apply_all(conn: &mut PgConnection, events: &[&RecordedEvent]) -> anyhow::Result<()> {
    let mut months: BTreeMap<(uuid::Uuid, String), Counted> = BTreeMap::new();
    for event in events {
        let counted = counted(event)?;
        if counted == Counted::default() {
            continue;
        }
        let month = months
            .entry((
                event.tenant_id,
                event.recorded_at.format("%Y-%m").to_string(),
            ))
            .or_default();
        month.messages_in += counted.messages_in;
        month.messages_out += counted.messages_out;
        month.bookings_created += counted.bookings_created;
        month.bookings_cancelled += counted.bookings_cancelled;
    }
    if months.is_empty() {
        return Ok(());
    }
    let column = |f: fn(&Counted) -> i64| months.values().map(f).collect::<Vec<i64>>();
    sqlx::query!(
        "insert into rm_usage (tenant_id, period, messages_in, messages_out, bookings_created,
             bookings_cancelled)
         select * from unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::bigint[],
             $6::bigint[])
         on conflict (tenant_id, period) do update
         set messages_in = rm_usage.messages_in + excluded.messages_in,
             messages_out = rm_usage.messages_out + excluded.messages_out,
             bookings_created = rm_usage.bookings_created + excluded.bookings_created,
             bookings_cancelled = rm_usage.bookings_cancelled + excluded.bookings_cancelled",
        &months.keys().map(|(tenant, _)| *tenant).collect::<Vec<_>>(),
        &months
            .keys()
            .map(|(_, period)| period.clone())
            .collect::<Vec<String>>(),
        &column(|c| c.messages_in),
        &column(|c| c.messages_out),
        &column(|c| c.bookings_created),
        &column(|c| c.bookings_cancelled)
    )
    .execute(conn)
    .await?;
    Ok(())
}
