//! Bookings the business makes and manages (dashboard, API): book, confirm, cancel,
//! reschedule, mark arrived, complete, mark as no-show.
//!
//! A booking and the agenda day it holds are decided together (`domain::scheduling`) and
//! committed in one unit of work, each stream at the version read. When another booking got
//! onto the agenda first, the executor decides again on the fresh agenda, where the slot is
//! now taken: the caller hears which times of that day are still free.

use chrono::{DateTime, NaiveDate, Utc};
use domain::Decider as _;
use domain::agenda::{
    Agenda, AgendaCommand, AgendaError, AgendaEvent, AgendaState, agenda_stream_id,
};
use domain::availability::free_slots;
use domain::booking::{
    AppointmentRequest, Booking, BookingAggregate, BookingCommand, BookingEvent, BookingState,
    Channel, Customer, Party, booking_reference,
};
use domain::bot::engine::agenda_day;
use domain::bot_config::{BotConfig, BotConfigState, BotSettings, Service};
use domain::conversation::{Conversation, ConversationCommand};
use domain::ids::{BookingId, ResourceId, ServiceId};
use domain::reminders::{BookingChange, change_notice, reminder_reply, reminder_times};
use domain::scheduling::{self, NewTime, Scheduled, SchedulingError, appointment_at};
use domain::values::Reason;
use eventstore::StreamRef;

use crate::catalog::config_stream;
use crate::events::stream;
use crate::{App, AppError, CommandContext, Committed, UnitOfWork, execute};

/// A booking the business asks for.
#[derive(Debug, Clone)]
pub struct NewBooking {
    pub service_id: ServiceId,
    pub start: DateTime<Utc>,
    pub customer: Customer,
    /// Confirmed at once, or left requested until confirmed.
    pub confirm: bool,
    /// Who it is with (a staff id); `None`: whoever can do the service and is free then,
    /// the least busy that day.
    pub resource: Option<ResourceId>,
}

/// Books `request` under an id derived from the command's key: the same key books once, and
/// again answers with that booking; the same key for another booking is refused.
pub async fn book(
    app: &App,
    ctx: &CommandContext,
    request: NewBooking,
) -> Result<Committed<Booking>, AppError> {
    let booking_id = BookingId::from_uuid(ctx.derived_id("booking"));
    let request = &request;
    execute(app, ctx, |uow| {
        Box::pin(async {
            // The configuration, the booking (a retry finds it), the plan, the business and
            // the customer's conversation, in one read.
            let booking_ref = stream::<BookingEvent>(booking_id);
            let billing_ref = crate::billing::billing_stream(uow.tenant_id());
            let tenant_ref = crate::tenants::tenant_stream(uow.tenant_id());
            let conversation_ref = uow.conversation_of(&request.customer.phone).await?;
            let mut reads = uow
                .read_many(&[
                    config_stream(),
                    booking_ref.clone(),
                    billing_ref.clone(),
                    tenant_ref.clone(),
                    conversation_ref.clone(),
                ])
                .await?;
            let config = uow.fold_in::<BotConfig>(&config_stream(), &mut reads)?;
            let (settings, service) = settings_and_service(&config, request.service_id)?;
            let booking = uow.fold_in::<BookingAggregate>(&booking_ref, &mut reads)?;
            let billing = uow.fold_in::<domain::billing::Billing>(&billing_ref, &mut reads)?;
            if let Some(existing) = booking.booking {
                let same = existing.service_id == request.service_id
                    && existing.appointment.start == request.start
                    && existing.customer.phone == request.customer.phone;
                return if same {
                    Ok(existing)
                } else {
                    Err(AppError::IdempotencyMismatch)
                };
            }
            let tenant = uow.fold_in::<domain::tenant::Tenant>(&tenant_ref, &mut reads)?;
            crate::tenants::require_verified(&tenant)?;
            let day = agenda_day(settings, request.start);
            let resource = choose_resource(uow, settings, service, request, day).await?;
            let agenda = load_agenda(uow, &resource, day).await?;
            let request = AppointmentRequest {
                booking_id,
                reference: booking_reference(booking_id),
                service_id: service.id,
                service_name: service.name.clone(),
                price: service.price,
                resource: resource.clone(),
                appointment: appointment_at(request.start, service.duration),
                customer: request.customer.clone(),
                channel: Channel::Dashboard,
                confirm: request.confirm,
                reminders: reminder_times(settings, request.start),
                now: Utc::now(),
            };
            let scheduled = scheduling::request(
                &booking,
                &agenda,
                request,
                service.buffer_minutes,
                service.capacity,
            )
            .map_err(|e| when_taken(e, settings, service, &agenda, day))?;
            // The plan's limit last, once the time is known to be free: a customer who lost the
            // slot is told so, and a race for one slot counts the month's bookings once each.
            crate::billing::require_bookings_open(uow, app, &billing, Utc::now()).await?;
            stage_scheduled(uow, booking_id, &scheduled);
            // The customer sees and manages it on WhatsApp too, and gets its reminders there.
            let conversation = uow.fold_in::<Conversation>(&conversation_ref, &mut reads)?;
            let attached = Conversation::decide(
                &conversation,
                ConversationCommand::AttachBooking { booking_id },
            )?;
            uow.stage(&conversation_ref, &attached);
            Ok(booked(BookingState::default(), &scheduled))
        })
    })
    .await
}

/// Cancels a booking and frees its slot.
pub async fn cancel(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
    reason: Option<Reason>,
) -> Result<Committed<Booking>, AppError> {
    let reason = &reason;
    execute(app, ctx, |uow| {
        Box::pin(async {
            let (booking, current) = existing(uow, id).await?;
            let config = uow.load::<BotConfig>(&config_stream()).await?;
            let settings = config
                .settings
                .as_ref()
                .ok_or_else(|| AppError::internal("a booking without configuration"))?;
            let day = agenda_day(settings, current.appointment.start);
            let agenda = load_agenda(uow, &current.resource, day).await?;
            let scheduled = scheduling::cancel(
                &booking,
                &agenda,
                Party::Business,
                reason.clone(),
                Utc::now(),
            )?;
            stage_scheduled(uow, id, &scheduled);
            if let Some(start) = crate::waitlist::freed_by(&current, &scheduled.booking) {
                crate::waitlist::offer_freed(uow, &config, &current, start).await?;
            }
            if changed(&scheduled, |e| {
                matches!(e, BookingEvent::AppointmentCancelled { .. })
            }) {
                let change = BookingChange::Cancelled {
                    reason: reason.as_ref().map(Reason::as_str),
                };
                let notice = ctx.derived_id("notice").to_string();
                tell_customer(uow, settings, &current, change, notice).await?;
            }
            Ok(booked(booking, &scheduled))
        })
    })
    .await
}

/// Moves a booking to another time that is free by the business's rules.
pub async fn reschedule(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
    start: DateTime<Utc>,
) -> Result<Committed<Booking>, AppError> {
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let (booking, current) = existing(uow, id).await?;
            let config = uow.load::<BotConfig>(&config_stream()).await?;
            let (settings, service) = settings_and_service(&config, current.service_id)?;
            let old_day = agenda_day(settings, current.appointment.start);
            let new_day = agenda_day(settings, start);
            let old_agenda = load_agenda(uow, &current.resource, old_day).await?;
            let new_agenda = if new_day == old_day {
                old_agenda.clone()
            } else {
                load_agenda(uow, &current.resource, new_day).await?
            };
            // Free at the new time, not counting this booking's own hold.
            let now = Utc::now();
            let holds = new_agenda.taken_by_others(now, id);
            let member = settings.member(&current.resource);
            if !domain::availability::free_slots_with(
                settings, service, member, new_day, &holds, now,
            )
            .iter()
            .any(|s| s.appointment.start == start)
            {
                return Err(slot_taken(settings, service, &new_agenda, new_day));
            }
            let scheduled = scheduling::reschedule(
                &booking,
                &old_agenda,
                &new_agenda,
                NewTime {
                    appointment: appointment_at(start, service.duration),
                    resource: current.resource.clone(),
                    buffer_minutes: service.buffer_minutes,
                    capacity: service.capacity,
                    reminders: reminder_times(settings, start),
                },
                Party::Business,
                Utc::now(),
            )
            .map_err(|e| when_taken(e, settings, service, &new_agenda, new_day))?;
            stage_scheduled(uow, id, &scheduled);
            if let Some(freed) = crate::waitlist::freed_by(&current, &scheduled.booking) {
                crate::waitlist::offer_freed(uow, &config, &current, freed).await?;
            }
            let moved = booked(booking, &scheduled);
            if changed(&scheduled, |e| {
                matches!(e, BookingEvent::AppointmentRescheduled { .. })
            }) {
                let notice = ctx.derived_id("notice").to_string();
                tell_customer(uow, settings, &moved, BookingChange::Moved, notice).await?;
            }
            Ok(moved)
        })
    })
    .await
}

/// Confirms a requested booking (its payment arrived, or the business accepts it).
pub async fn confirm(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
) -> Result<Committed<Booking>, AppError> {
    transition(app, ctx, id, || BookingCommand::Confirm { now: Utc::now() }).await
}

/// The customer came: the appointment is done.
pub async fn complete(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
) -> Result<Committed<Booking>, AppError> {
    transition(app, ctx, id, || BookingCommand::Complete {
        now: Utc::now(),
    })
    .await
}

/// The customer did not come.
pub async fn no_show(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
) -> Result<Committed<Booking>, AppError> {
    transition(app, ctx, id, || BookingCommand::MarkNoShow {
        now: Utc::now(),
    })
    .await
}

/// The customer came in: the front desk marks them arrived (once; from two hours before).
pub async fn arrived(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
) -> Result<Committed<Booking>, AppError> {
    transition(app, ctx, id, || BookingCommand::MarkArrived {
        now: Utc::now(),
    })
    .await
}

/// A change to the booking alone (its slot stays held, or was freed before).
async fn transition(
    app: &App,
    ctx: &CommandContext,
    id: BookingId,
    command: impl Fn() -> BookingCommand + Send + Sync,
) -> Result<Committed<Booking>, AppError> {
    let command = &command;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let (booking, _) = existing(uow, id).await?;
            let events = BookingAggregate::decide(&booking, command())?;
            uow.stage(&stream::<BookingEvent>(id), &events);
            Ok(events
                .iter()
                .fold(booking, BookingAggregate::evolve)
                .booking
                .expect("a decided booking exists"))
        })
    })
    .await
}

/// The agenda stream of a resource's local day.
/// Ends a reservation whose time ran out by `now` (the conversation clock's command). The
/// agenda decides: nothing happens to a reservation that became a booking, was let go, or is
/// not due.
pub async fn expire_reservation(
    app: &App,
    tenant_id: uuid::Uuid,
    resource: &ResourceId,
    day: NaiveDate,
    booking_id: BookingId,
    now: DateTime<Utc>,
) -> Result<Committed<bool>, AppError> {
    let ctx = CommandContext::new(
        tenant_id,
        "system:conversation-clock",
        format!("expire-reservation|{resource}|{day}|{booking_id}"),
    );
    let agenda_ref = agenda_ref(resource, day);
    let agenda_ref = &agenda_ref;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let agenda = uow.load::<Agenda>(agenda_ref).await?;
            if agenda.key.is_none() {
                return Ok(false);
            }
            let events = Agenda::decide(
                &agenda,
                AgendaCommand::ExpireReservation { booking_id, now },
            )
            .map_err(SchedulingError::from)?;
            uow.stage(agenda_ref, &events);
            Ok(!events.is_empty())
        })
    })
    .await
}

/// Sends the reminder of `booking_id` due `at` (the conversation clock's command): the booking
/// records it and the customer's conversation gets the message, in one unit of work, once. A
/// reminder that cannot go (no template, and the customer has not written within 24 hours) is
/// recorded as skipped. Nothing happens when it is not due, was sent, or the booking was
/// cancelled or moved since. Answers whether a message went.
pub async fn send_reminder(
    app: &App,
    tenant_id: uuid::Uuid,
    booking_id: BookingId,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Committed<bool>, AppError> {
    let ctx = CommandContext::new(
        tenant_id,
        "system:reminders",
        format!("reminder|{booking_id}|{}", at.timestamp()),
    );
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let booking_ref = stream::<BookingEvent>(booking_id);
            let mut reads = uow
                .read_many(&[config_stream(), booking_ref.clone()])
                .await?;
            let config = uow.fold_in::<BotConfig>(&config_stream(), &mut reads)?;
            let state = uow.fold_in::<BookingAggregate>(&booking_ref, &mut reads)?;
            let (Some(settings), Some(booking)) = (&config.settings, &state.booking) else {
                return Ok(false);
            };
            let conversation_ref = uow.conversation_of(&booking.customer.phone).await?;
            let conversation = uow.load::<Conversation>(&conversation_ref).await?;
            let last_heard = conversation.last_received.as_ref().map(|r| r.received_at);
            let reply = reminder_reply(settings, booking, last_heard, now);
            let events = BookingAggregate::decide(
                &state,
                BookingCommand::SendReminder {
                    at,
                    deliverable: reply.is_some(),
                    now,
                },
            )?;
            let sent = events
                .iter()
                .any(|e| matches!(e, BookingEvent::ReminderSent { .. }));
            uow.stage(&booking_ref, &events);
            if let (true, Some(reply)) = (sent, reply) {
                let notified = Conversation::decide(
                    &conversation,
                    ConversationCommand::Notify {
                        reply_id: format!("reminder/{booking_id}/{}", at.timestamp()),
                        to: booking.customer.phone.clone(),
                        reply,
                    },
                )?;
                uow.stage(&conversation_ref, &notified);
            }
            Ok(sent)
        })
    })
    .await
}

pub fn agenda_ref(resource: &ResourceId, day: NaiveDate) -> StreamRef {
    stream::<AgendaEvent>(agenda_stream_id(resource, day))
}

/// Who a booking is with: the staff member asked for (who must do the service), or else,
/// among those who do it, the least busy that day of those working and free at that time;
/// the default resource for a business without staff.
async fn choose_resource(
    uow: &mut UnitOfWork<'_>,
    settings: &BotSettings,
    service: &Service,
    request: &NewBooking,
    day: NaiveDate,
) -> Result<ResourceId, AppError> {
    let candidates = settings.staff_for(service);
    if let Some(asked) = &request.resource {
        let does_it = candidates
            .iter()
            .any(|m| domain::bot_config::resource_of(*m) == *asked);
        return if does_it {
            Ok(asked.clone())
        } else {
            Err(AppError::Invalid(vec![crate::FieldError::new(
                "resource",
                "no member of the staff with this id does this service",
            )]))
        };
    }
    if settings.staff.is_empty() {
        return Ok(ResourceId::default_resource());
    }
    let now = Utc::now();
    let mut free = Vec::new();
    let mut times = Vec::new();
    for member in candidates.into_iter().flatten() {
        let agenda = load_agenda(uow, &member.id, day).await?;
        let holds: Vec<_> = agenda.taken(now).into_iter().map(|(_, i)| i).collect();
        let slots = domain::availability::free_slots_with(
            settings,
            service,
            Some(member),
            day,
            &holds,
            now,
        );
        if slots.iter().any(|s| s.appointment.start == request.start) {
            free.push((holds.len(), member.id.clone()));
        }
        times.extend(slots.iter().map(|s| s.appointment.start));
    }
    // The least busy; the staff's order breaks a tie (min_by_key keeps the first).
    match free.into_iter().min_by_key(|(busy, _)| *busy) {
        Some((_, resource)) => Ok(resource),
        None => {
            times.sort();
            times.dedup();
            times.truncate(10);
            Err(AppError::SlotTaken { free: times })
        }
    }
}

/// Stages what a scheduling decision changes: the booking's stream and each agenda day it
/// touched, each expected at the version it was loaded at (a day never loaded is new).
pub(crate) fn stage_scheduled(uow: &mut UnitOfWork<'_>, id: BookingId, scheduled: &Scheduled) {
    uow.stage(&stream::<BookingEvent>(id), &scheduled.booking);
    for change in &scheduled.agendas {
        let (resource, day) = change
            .agenda
            .key
            .clone()
            .expect("scheduling keys the agendas it changes");
        uow.stage(&agenda_ref(&resource, day), &change.events);
    }
}

/// An agenda day's state; a day nobody booked yet is empty but knows its resource and day.
async fn load_agenda(
    uow: &mut UnitOfWork<'_>,
    resource: &ResourceId,
    day: NaiveDate,
) -> Result<AgendaState, AppError> {
    let state = uow.load::<Agenda>(&agenda_ref(resource, day)).await?;
    Ok(if state.key.is_none() {
        AgendaState::new(resource.clone(), day)
    } else {
        state
    })
}

/// A booking of this tenant. Another tenant's id reads as nothing: not found, and logged.
async fn existing(
    uow: &mut UnitOfWork<'_>,
    id: BookingId,
) -> Result<(BookingState, Booking), AppError> {
    let state = uow
        .load::<BookingAggregate>(&stream::<BookingEvent>(id))
        .await?;
    match state.booking.clone() {
        Some(booking) => Ok((state, booking)),
        None => {
            tracing::info!(tenant = %uow.tenant_id(), booking = %id, "security: unknown booking id (possibly another tenant's)");
            Err(AppError::NotFound("booking"))
        }
    }
}

/// The settings bookings follow (time zone, hours, rules) and an active service.
fn settings_and_service(
    config: &BotConfigState,
    service_id: ServiceId,
) -> Result<(&BotSettings, &Service), AppError> {
    let settings = config
        .settings
        .as_ref()
        .ok_or_else(|| AppError::conflict("configure opening hours first (PUT /v1/bot-config)"))?;
    let service = config
        .services
        .get(&service_id)
        .filter(|s| s.active)
        .ok_or(AppError::NotFound("service"))?;
    Ok((settings, service))
}

/// Whether a scheduling decision made the change `is` (not, say, a cancellation of a
/// booking that already was).
fn changed(scheduled: &Scheduled, is: impl Fn(&BookingEvent) -> bool) -> bool {
    scheduled.booking.iter().any(is)
}

/// Tells the customer on WhatsApp of a change the business made to their booking, staged in
/// the change's own unit of work (the change and the message commit together, or neither):
/// once per `reply_id` (a command's retry is the same message), and only when WhatsApp lets
/// it be sent (`change_notice`: within 24 hours of their last message, or as the business's
/// follow-up template).
async fn tell_customer(
    uow: &mut UnitOfWork<'_>,
    settings: &BotSettings,
    booking: &Booking,
    change: BookingChange<'_>,
    reply_id: String,
) -> Result<(), AppError> {
    let conversation_ref = uow.conversation_of(&booking.customer.phone).await?;
    let conversation = uow.load::<Conversation>(&conversation_ref).await?;
    let last_heard = conversation.last_received.as_ref().map(|r| r.received_at);
    let Some(reply) = change_notice(settings, booking, change, last_heard, Utc::now()) else {
        tracing::info!(
            tenant = %uow.tenant_id(),
            booking = %booking.booking_id,
            "the customer cannot be told of the change on WhatsApp: outside the 24-hour window and no follow-up template"
        );
        return Ok(());
    };
    let events = Conversation::decide(
        &conversation,
        ConversationCommand::Notify {
            reply_id,
            to: booking.customer.phone.clone(),
            reply,
        },
    )?;
    uow.stage(&conversation_ref, &events);
    Ok(())
}

/// The booking after a scheduling decision.
fn booked(before: BookingState, scheduled: &Scheduled) -> Booking {
    scheduled
        .booking
        .iter()
        .fold(before, BookingAggregate::evolve)
        .booking
        .expect("a scheduled booking exists")
}

/// A taken slot answers with the times of that day still free; anything else as it is.
fn when_taken(
    err: SchedulingError,
    settings: &BotSettings,
    service: &Service,
    agenda: &AgendaState,
    day: NaiveDate,
) -> AppError {
    match err {
        SchedulingError::Agenda(AgendaError::SlotTaken) => {
            slot_taken(settings, service, agenda, day)
        }
        other => other.into(),
    }
}

/// Up to ten times still free for `service` on `day`.
fn slot_taken(
    settings: &BotSettings,
    service: &Service,
    agenda: &AgendaState,
    day: NaiveDate,
) -> AppError {
    let now = Utc::now();
    let holds: Vec<_> = agenda.taken(now).into_iter().map(|(_, i)| i).collect();
    AppError::SlotTaken {
        free: free_slots(settings, service, day, &holds, now)
            .iter()
            .take(10)
            .map(|s| s.appointment.start)
            .collect(),
    }
}
