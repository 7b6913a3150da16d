//! The waitlists of a business's services (`domain::waitlist`), kept in the units of work that
//! change them: a turn whose customer joins, leaves or books a service; a cancellation or a
//! move that frees a time, which is offered to those waiting, on their conversations, in the
//! same unit of work (so an offer goes exactly when the time was freed).

use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::booking::{Booking, BookingEvent};
use domain::bot::engine::BotAction;
use domain::bot_config::BotConfigState;
use domain::conversation::{Conversation, ConversationCommand};
use domain::ids::ServiceId;
use domain::values::PhoneNumber;
use domain::waitlist::{Waitlist, WaitlistCommand, WaitlistEvent, offer_reply};
use eventstore::StreamRef;

use crate::events::stream;
use crate::{AppError, UnitOfWork};

pub fn waitlist_stream(service_id: ServiceId) -> StreamRef {
    stream::<WaitlistEvent>(service_id)
}

/// What a turn's actions do to waitlists: joining and leaving, and booking a service, which
/// ends the wait for it.
pub(crate) async fn carry_out(
    uow: &mut UnitOfWork<'_>,
    actions: &[BotAction],
    customer: &PhoneNumber,
    name: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    for action in actions {
        let (service_id, command) = match action {
            BotAction::JoinWaitlist { service_id } => (
                *service_id,
                WaitlistCommand::Join {
                    phone: customer.clone(),
                    name: name.map(str::to_owned),
                    now,
                },
            ),
            BotAction::LeaveWaitlist { service_id }
            | BotAction::RequestBooking { service_id, .. } => (
                *service_id,
                WaitlistCommand::Leave {
                    phone: customer.clone(),
                },
            ),
            _ => continue,
        };
        let waitlist_ref = waitlist_stream(service_id);
        let waitlist = uow.load::<Waitlist>(&waitlist_ref).await?;
        let Ok(events) = Waitlist::decide(&waitlist, command);
        uow.stage(&waitlist_ref, &events);
    }
    Ok(())
}

/// The time a change to `before` frees, if it frees one: a cancellation frees the booking's
/// time, a move its old time.
pub(crate) fn freed_by(before: &Booking, events: &[BookingEvent]) -> Option<DateTime<Utc>> {
    events.iter().find_map(|e| match e {
        BookingEvent::AppointmentCancelled { .. } => Some(before.appointment.start),
        BookingEvent::AppointmentRescheduled { from, .. } => Some(from.start),
        _ => None,
    })
}

/// Offers the time `start` of `booking`'s service to those waiting for it (first come first,
/// not the customer who freed it), each on their own conversation, once.
pub(crate) async fn offer_freed(
    uow: &mut UnitOfWork<'_>,
    config: &BotConfigState,
    booking: &Booking,
    start: DateTime<Utc>,
) -> Result<(), AppError> {
    let (Some(settings), Some(service)) = (
        &config.settings,
        config
            .services
            .get(&booking.service_id)
            .filter(|s| s.active),
    ) else {
        return Ok(());
    };
    if start <= Utc::now() {
        return Ok(());
    }
    let waitlist = uow.load::<Waitlist>(&waitlist_stream(service.id)).await?;
    let waiting: Vec<PhoneNumber> = waitlist
        .first(&booking.customer.phone)
        .map(|w| w.phone.clone())
        .collect();
    let now = Utc::now();
    for phone in waiting {
        let conversation_ref = uow.conversation_of(&phone).await?;
        let conversation = uow.load::<Conversation>(&conversation_ref).await?;
        let last_heard = conversation.last_received.as_ref().map(|r| r.received_at);
        let reply = offer_reply(settings, service, start, last_heard, now);
        let events = Conversation::decide(
            &conversation,
            ConversationCommand::Notify {
                reply_id: format!("waitlist/{}/{}", booking.booking_id, start.timestamp()),
                to: phone.clone(),
                reply,
            },
        )?;
        uow.stage(&conversation_ref, &events);
    }
    Ok(())
}
