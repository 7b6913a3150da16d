//! Booking and agenda, decided together. A booking holds its slot on the agenda of its
//! resource and local day; requesting, cancelling and rescheduling change both, and the command
//! side appends the resulting streams in one transaction with an expected version on each: if
//! another customer took the slot in the meantime, the agenda stream's version has moved and the
//! whole decision is retried against the new agenda (where the slot is now taken).

use chrono::{DateTime, Utc};

use crate::agenda::{Agenda, AgendaCommand, AgendaError, AgendaEvent, AgendaState, Interval};
use crate::booking::{
    AppointmentRequest, BookingAggregate, BookingCommand, BookingError, BookingEvent, BookingState,
    Party,
};
use crate::decider::Decider;
use crate::ids::ResourceId;
use crate::values::{Reason, ServiceDuration};

/// Events for the booking stream and for each agenda stream touched (one, or two when a
/// reschedule changes day or resource). An agenda is identified by its state's key.
#[derive(Debug, Clone, PartialEq)]
pub struct Scheduled {
    pub booking: Vec<BookingEvent>,
    pub agendas: Vec<AgendaChange>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgendaChange {
    pub agenda: AgendaState,
    pub events: Vec<AgendaEvent>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchedulingError {
    #[error(transparent)]
    Booking(#[from] BookingError),
    #[error(transparent)]
    Agenda(#[from] AgendaError),
}

/// What a booking occupies on its agenda: its own time plus the service's buffer after it.
pub fn occupied(appointment: Interval, buffer_minutes: u32) -> Interval {
    Interval {
        start: appointment.start,
        end: appointment.end + chrono::Duration::minutes(i64::from(buffer_minutes)),
    }
}

/// The appointment interval of a service starting at `start`.
pub fn appointment_at(start: DateTime<Utc>, duration: ServiceDuration) -> Interval {
    Interval {
        start,
        end: start + duration.as_duration(),
    }
}

/// Requests a booking and holds its slot. `agenda` is the agenda of the requested resource and
/// the appointment's local day.
pub fn request(
    booking: &BookingState,
    agenda: &AgendaState,
    request: AppointmentRequest,
    buffer_minutes: u32,
    capacity: u32,
) -> Result<Scheduled, SchedulingError> {
    let hold = AgendaCommand::Hold {
        booking_id: request.booking_id,
        interval: occupied(request.appointment, buffer_minutes),
        capacity,
        now: request.now,
    };
    let booking_events = BookingAggregate::decide(booking, BookingCommand::Request(request))?;
    let agenda_events = Agenda::decide(agenda, hold)?;
    Ok(Scheduled {
        booking: booking_events,
        agendas: vec![AgendaChange {
            agenda: agenda.clone(),
            events: agenda_events,
        }],
    })
}

/// Cancels a booking and releases its slot.
pub fn cancel(
    booking: &BookingState,
    agenda: &AgendaState,
    by: Party,
    reason: Option<Reason>,
    now: DateTime<Utc>,
) -> Result<Scheduled, SchedulingError> {
    let booking_id = booking
        .booking
        .as_ref()
        .ok_or(BookingError::NotFound)?
        .booking_id;
    let booking_events =
        BookingAggregate::decide(booking, BookingCommand::Cancel { by, reason, now })?;
    let agenda_events = Agenda::decide(agenda, AgendaCommand::Release { booking_id })?;
    Ok(Scheduled {
        booking: booking_events,
        agendas: vec![AgendaChange {
            agenda: agenda.clone(),
            events: agenda_events,
        }],
    })
}

/// Where and when a booking moves to, with what its service needs there.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTime {
    pub appointment: Interval,
    pub resource: ResourceId,
    pub buffer_minutes: u32,
    pub capacity: u32,
    /// The reminders of the new time.
    pub reminders: Vec<DateTime<Utc>>,
}

/// Moves a booking: releases the old slot and holds the new one. When both are on the same
/// agenda (same resource and day), pass the same state for both and one change comes back.
pub fn reschedule(
    booking: &BookingState,
    old_agenda: &AgendaState,
    new_agenda: &AgendaState,
    new_time: NewTime,
    by: Party,
    now: DateTime<Utc>,
) -> Result<Scheduled, SchedulingError> {
    let NewTime {
        appointment: to,
        resource,
        buffer_minutes,
        capacity,
        reminders,
    } = new_time;
    let booking_id = booking
        .booking
        .as_ref()
        .ok_or(BookingError::NotFound)?
        .booking_id;
    let booking_events = BookingAggregate::decide(
        booking,
        BookingCommand::Reschedule {
            to,
            resource,
            by,
            reminders,
            now,
        },
    )?;
    let release = Agenda::decide(old_agenda, AgendaCommand::Release { booking_id })?;
    let hold = AgendaCommand::Hold {
        booking_id,
        interval: occupied(to, buffer_minutes),
        capacity,
        now,
    };
    if old_agenda.key == new_agenda.key {
        // Release first, so moving within one's own slot (e.g. 30 minutes later) is allowed.
        let released = release.iter().fold(old_agenda.clone(), Agenda::evolve);
        let held = Agenda::decide(&released, hold)?;
        return Ok(Scheduled {
            booking: booking_events,
            agendas: vec![AgendaChange {
                agenda: old_agenda.clone(),
                events: release.into_iter().chain(held).collect(),
            }],
        });
    }
    let held = Agenda::decide(new_agenda, hold)?;
    Ok(Scheduled {
        booking: booking_events,
        agendas: vec![
            AgendaChange {
                agenda: old_agenda.clone(),
                events: release,
            },
            AgendaChange {
                agenda: new_agenda.clone(),
                events: held,
            },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::booking::tests::{at, slot};
    use crate::booking::{Channel, Customer};
    use crate::ids::{BookingId, ServiceId};
    use crate::values::{Money, PhoneNumber};

    fn agenda(day: &str) -> AgendaState {
        AgendaState::new(ResourceId::default_resource(), day.parse().unwrap())
    }

    fn request_cmd(n: u128, appointment: Interval) -> AppointmentRequest {
        AppointmentRequest {
            booking_id: BookingId::from_uuid(uuid::Uuid::from_u128(n)),
            reference: format!("BK-{n}"),
            service_id: ServiceId::from_uuid(uuid::Uuid::from_u128(99)),
            service_name: "Haircut".into(),
            price: Money::parse(2500, "EUR").unwrap(),
            resource: ResourceId::default_resource(),
            appointment,
            customer: Customer {
                phone: PhoneNumber::parse(&format!("+3460000{n:04}")).unwrap(),
                name: None,
            },
            channel: Channel::WhatsApp,
            confirm: true,
            reminders: vec![],
            now: at("08:00"),
        }
    }

    fn apply(s: &Scheduled) -> (BookingState, AgendaState) {
        let booking = BookingAggregate::fold(&s.booking);
        let change = &s.agendas[0];
        let agenda = change
            .events
            .iter()
            .fold(change.agenda.clone(), Agenda::evolve);
        (booking, agenda)
    }

    #[test]
    fn the_second_customer_for_a_slot_is_refused_with_the_buffer_counted() {
        let day = agenda("2026-12-01");
        let first = request(
            &BookingState::default(),
            &day,
            request_cmd(1, slot("10:00", "10:45")),
            15,
            1,
        )
        .unwrap();
        let (_, day) = apply(&first);
        // 10:45 is inside the first booking's 15-minute buffer.
        let second = request(
            &BookingState::default(),
            &day,
            request_cmd(2, slot("10:45", "11:30")),
            15,
            1,
        );
        assert_eq!(second, Err(SchedulingError::Agenda(AgendaError::SlotTaken)));
        assert!(
            request(
                &BookingState::default(),
                &day,
                request_cmd(2, slot("11:00", "11:45")),
                15,
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn cancelling_frees_the_slot_for_someone_else() {
        let first = request(
            &BookingState::default(),
            &agenda("2026-12-01"),
            request_cmd(1, slot("10:00", "10:45")),
            0,
            1,
        )
        .unwrap();
        let (booking, day) = apply(&first);
        let cancelled = cancel(&booking, &day, Party::Customer, None, at("09:00")).unwrap();
        let day = cancelled.agendas[0].events.iter().fold(day, Agenda::evolve);
        assert!(
            request(
                &BookingState::default(),
                &day,
                request_cmd(2, slot("10:00", "10:45")),
                0,
                1
            )
            .is_ok()
        );
    }

    #[test]
    fn rescheduling_within_a_day_may_overlap_its_own_old_slot() {
        let first = request(
            &BookingState::default(),
            &agenda("2026-12-01"),
            request_cmd(1, slot("10:00", "10:45")),
            0,
            1,
        )
        .unwrap();
        let (booking, day) = apply(&first);
        let moved = reschedule(
            &booking,
            &day,
            &day,
            NewTime {
                appointment: slot("10:30", "11:15"),
                resource: ResourceId::default_resource(),
                buffer_minutes: 0,
                capacity: 1,
                reminders: vec![],
            },
            Party::Customer,
            at("08:00"),
        )
        .unwrap();
        assert_eq!(moved.agendas.len(), 1);
        let day = moved.agendas[0].events.iter().fold(day, Agenda::evolve);
        assert_eq!(day.holds.len(), 1);
        assert_eq!(day.holds[0].1, slot("10:30", "11:15"));
    }

    #[test]
    fn rescheduling_to_another_day_touches_both_agendas() {
        let first = request(
            &BookingState::default(),
            &agenda("2026-12-01"),
            request_cmd(1, slot("10:00", "10:45")),
            0,
            1,
        )
        .unwrap();
        let (booking, day1) = apply(&first);
        let day2 = agenda("2026-12-02");
        let to = Interval::new(
            "2026-12-02T10:00:00Z".parse().unwrap(),
            "2026-12-02T10:45:00Z".parse().unwrap(),
        )
        .unwrap();
        let moved = reschedule(
            &booking,
            &day1,
            &day2,
            NewTime {
                appointment: to,
                resource: ResourceId::default_resource(),
                buffer_minutes: 0,
                capacity: 1,
                reminders: vec![],
            },
            Party::Business,
            at("08:00"),
        )
        .unwrap();
        assert_eq!(moved.agendas.len(), 2);
        assert!(matches!(
            moved.agendas[0].events[..],
            [AgendaEvent::SlotReleased { .. }]
        ));
        assert!(matches!(
            moved.agendas[1].events[..],
            [AgendaEvent::SlotHeld { .. }]
        ));
    }
}
