//! What a conversation turn acts on, and what its actions do to it.
//!
//! The command side loads this customer's bookings and the agenda days the bot may offer
//! into a [`CustomerCalendar`]; the engine reads it as its [`Calendar`] to decide a turn;
//! [`CustomerCalendar::carry_out`] turns the turn's actions into booking and agenda events
//! (through `scheduling`), each decided on the state the previous one left, and keeps the
//! calendar up to date with them. The command side appends the changes with the versions it
//! loaded; the transcript tests run exactly this.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::engine::{BookingView, BotAction, Calendar, agenda_day};
use crate::agenda::{Agenda, AgendaCommand, AgendaState, Interval};
use crate::booking::{
    AppointmentRequest, BookingAggregate, BookingState, Channel, Customer, Party,
};
use crate::bot_config::BotConfigState;
use crate::decider::Decider;
use crate::ids::{BookingId, ResourceId, ServiceId};
use crate::reminders::reminder_times;
use crate::scheduling::{
    self, AgendaChange, NewTime, Scheduled, SchedulingError, appointment_at, occupied,
};
use crate::values::{LocalDate, PhoneNumber};

/// A customer's bookings and the agenda days of the resources (staff) the bot may offer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CustomerCalendar {
    /// Agenda days by resource and local date; a day absent is one nobody booked.
    pub agendas: BTreeMap<(ResourceId, LocalDate), AgendaState>,
    /// This customer's bookings.
    pub bookings: Vec<BookingState>,
    /// The buffer after each service, as configured.
    pub buffers: HashMap<ServiceId, u32>,
}

/// One booking a turn changed: the events for its stream (none for a reservation) and the
/// agenda days it touched.
#[derive(Debug, Clone, PartialEq)]
pub struct BookingChange {
    pub booking_id: BookingId,
    pub scheduled: Scheduled,
}

impl CustomerCalendar {
    pub fn new(
        config: &BotConfigState,
        agendas: impl IntoIterator<Item = AgendaState>,
        bookings: Vec<BookingState>,
    ) -> Self {
        Self {
            agendas: agendas
                .into_iter()
                .filter_map(|a| a.key.clone().map(|key| (key, a)))
                .collect(),
            bookings,
            buffers: config
                .services
                .values()
                .map(|s| (s.id, s.buffer_minutes))
                .collect(),
        }
    }

    /// The agenda of `resource` on `day`, empty but keyed when nobody booked it yet.
    pub fn agenda(&self, resource: &ResourceId, day: LocalDate) -> AgendaState {
        self.agendas
            .get(&(resource.clone(), day))
            .cloned()
            .unwrap_or_else(|| AgendaState::new(resource.clone(), day))
    }

    fn booking(&self, id: BookingId) -> Option<BookingState> {
        self.bookings
            .iter()
            .find(|s| s.booking.as_ref().is_some_and(|b| b.booking_id == id))
            .cloned()
    }

    /// What `actions` do to bookings and agendas, for `customer`: one change per booking
    /// touched, in order. Actions on a booking or service that is not there are passed over
    /// (the engine only acts on what it was shown). The calendar takes each change in, so the
    /// next action is decided on what the previous left.
    pub fn carry_out(
        &mut self,
        config: &BotConfigState,
        actions: &[BotAction],
        customer: &PhoneNumber,
        now: DateTime<Utc>,
    ) -> Result<Vec<BookingChange>, SchedulingError> {
        let Some(settings) = &config.settings else {
            return Ok(vec![]);
        };
        let mut changes = Vec::new();
        for action in actions {
            let (booking_id, before, scheduled) = match action {
                BotAction::RequestBooking {
                    booking_id,
                    reference,
                    service_id,
                    start,
                    resource,
                    customer_name,
                    confirm,
                    ..
                } => {
                    let Some(service) = config.services.get(service_id) else {
                        continue;
                    };
                    let request = AppointmentRequest {
                        booking_id: *booking_id,
                        reference: reference.clone(),
                        service_id: *service_id,
                        service_name: service.name.clone(),
                        price: service.price,
                        resource: resource.clone(),
                        appointment: appointment_at(*start, service.duration),
                        customer: Customer {
                            phone: customer.clone(),
                            name: customer_name.clone(),
                        },
                        channel: Channel::WhatsApp,
                        confirm: *confirm,
                        reminders: reminder_times(settings, *start),
                        now,
                    };
                    let before = BookingState::default();
                    let scheduled = scheduling::request(
                        &before,
                        &self.agenda(resource, agenda_day(settings, *start)),
                        request,
                        service.buffer_minutes,
                        service.capacity,
                    )?;
                    (*booking_id, before, scheduled)
                }
                BotAction::CancelBooking { booking_id } => {
                    let Some(before) = self.booking(*booking_id) else {
                        continue;
                    };
                    let booking = before.booking.as_ref().expect("found");
                    let agenda = self.agenda(
                        &booking.resource,
                        agenda_day(settings, booking.appointment.start),
                    );
                    let scheduled =
                        scheduling::cancel(&before, &agenda, Party::Customer, None, now)?;
                    (*booking_id, before, scheduled)
                }
                BotAction::RescheduleBooking {
                    booking_id,
                    start,
                    resource,
                } => {
                    let Some(before) = self.booking(*booking_id) else {
                        continue;
                    };
                    let booking = before.booking.clone().expect("found");
                    let Some(service) = config.services.get(&booking.service_id) else {
                        continue;
                    };
                    let scheduled = scheduling::reschedule(
                        &before,
                        &self.agenda(
                            &booking.resource,
                            agenda_day(settings, booking.appointment.start),
                        ),
                        &self.agenda(resource, agenda_day(settings, *start)),
                        NewTime {
                            appointment: appointment_at(*start, service.duration),
                            resource: resource.clone(),
                            buffer_minutes: service.buffer_minutes,
                            capacity: service.capacity,
                            reminders: reminder_times(settings, *start),
                        },
                        Party::Customer,
                        now,
                    )?;
                    (*booking_id, before, scheduled)
                }
                BotAction::ConfirmAttendance { booking_id } => {
                    let Some(before) = self.booking(*booking_id) else {
                        continue;
                    };
                    let events = BookingAggregate::decide(
                        &before,
                        crate::booking::BookingCommand::ConfirmAttendance { now },
                    )?;
                    if events.is_empty() {
                        continue;
                    }
                    let scheduled = Scheduled {
                        booking: events,
                        agendas: vec![],
                    };
                    (*booking_id, before, scheduled)
                }
                BotAction::ReserveSlot {
                    booking_id,
                    service_id,
                    start,
                    until,
                    resource,
                } => {
                    let Some(service) = config.services.get(service_id) else {
                        continue;
                    };
                    let agenda = self.agenda(resource, agenda_day(settings, *start));
                    let events = Agenda::decide(
                        &agenda,
                        AgendaCommand::Reserve {
                            booking_id: *booking_id,
                            interval: occupied(
                                appointment_at(*start, service.duration),
                                service.buffer_minutes,
                            ),
                            capacity: service.capacity,
                            until: *until,
                            now,
                        },
                    )?;
                    (
                        *booking_id,
                        BookingState::default(),
                        only_agenda(agenda, events),
                    )
                }
                BotAction::ReleaseSlot {
                    booking_id,
                    start,
                    resource,
                } => {
                    let agenda = self.agenda(resource, agenda_day(settings, *start));
                    let events = Agenda::decide(
                        &agenda,
                        AgendaCommand::ReleaseReservation {
                            booking_id: *booking_id,
                        },
                    )?;
                    if events.is_empty() {
                        continue;
                    }
                    (
                        *booking_id,
                        BookingState::default(),
                        only_agenda(agenda, events),
                    )
                }
                // The waitlist is not the calendar's (the command side appends it).
                BotAction::HandOff
                | BotAction::RequestErasure { .. }
                | BotAction::JoinWaitlist { .. }
                | BotAction::LeaveWaitlist { .. } => continue,
            };
            self.take_in(before, &scheduled);
            changes.push(BookingChange {
                booking_id,
                scheduled,
            });
        }
        Ok(changes)
    }

    /// Applies a change to the calendar's own copies of the booking and its agendas.
    fn take_in(&mut self, before: BookingState, scheduled: &Scheduled) {
        self.take_in_agendas(scheduled);
        if scheduled.booking.is_empty() {
            return;
        }
        let after = scheduled
            .booking
            .iter()
            .fold(before, BookingAggregate::evolve);
        let id = after.booking.as_ref().map(|b| b.booking_id);
        match self
            .bookings
            .iter_mut()
            .find(|s| s.booking.as_ref().map(|b| b.booking_id) == id)
        {
            Some(slot) => *slot = after,
            None => self.bookings.push(after),
        }
    }

    fn take_in_agendas(&mut self, scheduled: &Scheduled) {
        for change in &scheduled.agendas {
            if let Some(key) = &change.agenda.key {
                let evolved = change
                    .events
                    .iter()
                    .fold(change.agenda.clone(), Agenda::evolve);
                self.agendas.insert(key.clone(), evolved);
            }
        }
    }
}

/// A change to one agenda only (a reservation made or let go).
fn only_agenda(agenda: AgendaState, events: Vec<crate::agenda::AgendaEvent>) -> Scheduled {
    Scheduled {
        booking: vec![],
        agendas: vec![AgendaChange { agenda, events }],
    }
}

impl Calendar for CustomerCalendar {
    fn taken(
        &self,
        resource: &ResourceId,
        date: LocalDate,
        now: DateTime<Utc>,
    ) -> Vec<(BookingId, Interval)> {
        self.agendas
            .get(&(resource.clone(), date))
            .map(|a| a.taken(now))
            .unwrap_or_default()
    }

    fn bookings(&self) -> Vec<BookingView> {
        self.bookings
            .iter()
            .filter_map(|s| s.booking.as_ref())
            .map(|b| BookingView {
                booking_id: b.booking_id,
                service_id: b.service_id,
                service_name: b.service_name.clone(),
                appointment: b.appointment,
                buffer_minutes: self.buffers.get(&b.service_id).copied().unwrap_or(0),
                status: b.status,
                resource: b.resource.clone(),
            })
            .collect()
    }
}
