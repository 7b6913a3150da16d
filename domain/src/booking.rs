//! One appointment's lifecycle. Stream `booking/<booking_id>`.
//!
//! requested ──confirm──▶ confirmed ──complete──▶ completed
//!     │                      ├──no-show──▶ no_show
//!     └──────cancel──────────┴──cancel──▶ cancelled
//! A requested or confirmed booking can be rescheduled before it starts.
//! Its reminders are scheduled with it (the times come in, decided from the business's
//! settings) and each is sent once, while the booking is active and before it starts.
//! Time comes in with the command (`now`): the domain never reads a clock.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::agenda::Interval;
use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::{BookingId, ResourceId, ServiceId};
use crate::values::{Money, PhoneNumber, Reason};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingStatus {
    Requested,
    Confirmed,
    Cancelled,
    Completed,
    NoShow,
}

crate::labels::labels!(BookingStatus {
    Requested => "requested",
    Confirmed => "confirmed",
    Cancelled => "cancelled",
    Completed => "completed",
    NoShow => "no_show",
});

/// Who acted: the customer (from WhatsApp) or the business (dashboard, API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Customer,
    Business,
}

crate::labels::labels!(Party {
    Customer => "customer",
    Business => "business",
});

/// Where the booking came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Stored as `whatsapp`; early development builds wrote `whats_app`, still read.
    #[serde(rename = "whatsapp", alias = "whats_app")]
    WhatsApp,
    Dashboard,
    Api,
}

crate::labels::labels!(Channel {
    WhatsApp => "whatsapp",
    Dashboard => "dashboard",
    Api => "api",
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    pub phone: PhoneNumber,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A booking asked for: what, when, for whom, from where.
#[derive(Debug, Clone, PartialEq)]
pub struct AppointmentRequest {
    pub booking_id: BookingId,
    /// A short code the customer can quote (`BK-7Q4K`), made at the edge.
    pub reference: String,
    pub service_id: ServiceId,
    pub service_name: String,
    pub price: Money,
    pub resource: ResourceId,
    /// The service's own time, without buffer.
    pub appointment: Interval,
    pub customer: Customer,
    pub channel: Channel,
    /// Confirm at once (no payment step) rather than wait for a confirmation.
    pub confirm: bool,
    /// When to remind the customer (in the future; see `reminders::reminder_times`).
    pub reminders: Vec<DateTime<Utc>>,
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BookingCommand {
    Request(AppointmentRequest),
    Confirm {
        now: DateTime<Utc>,
    },
    Cancel {
        by: Party,
        reason: Option<Reason>,
        now: DateTime<Utc>,
    },
    Reschedule {
        to: Interval,
        resource: ResourceId,
        by: Party,
        /// The reminders of the new time (they replace those of the old one).
        reminders: Vec<DateTime<Utc>>,
        now: DateTime<Utc>,
    },
    /// The reminder due `at` goes out, or is passed over when it cannot be delivered
    /// (nothing if it was sent, replaced, or the booking is no longer ahead).
    SendReminder {
        at: DateTime<Utc>,
        deliverable: bool,
        now: DateTime<Utc>,
    },
    /// The customer said they will come (a reminder's Confirm).
    ConfirmAttendance {
        now: DateTime<Utc>,
    },
    Complete {
        now: DateTime<Utc>,
    },
    MarkNoShow {
        now: DateTime<Utc>,
    },
    /// The customer is here (the front desk saw them come in), from two hours before the
    /// appointment; said twice, it is recorded once.
    MarkArrived {
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BookingEvent {
    AppointmentRequested {
        booking_id: BookingId,
        reference: String,
        service_id: ServiceId,
        service_name: String,
        price: Money,
        resource: ResourceId,
        appointment: Interval,
        customer: Customer,
        channel: Channel,
    },
    AppointmentConfirmed,
    AppointmentCancelled {
        by: Party,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Reason>,
    },
    AppointmentRescheduled {
        from: Interval,
        to: Interval,
        from_resource: ResourceId,
        to_resource: ResourceId,
        by: Party,
    },
    AppointmentCompleted,
    AppointmentMarkedNoShow,
    /// The reminders still to send, replacing any before.
    RemindersScheduled {
        at: Vec<DateTime<Utc>>,
    },
    ReminderSent {
        at: DateTime<Utc>,
    },
    /// The reminder due `at` could not go: no template, and the customer had not written
    /// within 24 hours.
    ReminderSkipped {
        at: DateTime<Utc>,
    },
    AttendanceConfirmed,
    /// The customer came in, at `at`.
    CustomerArrived {
        at: DateTime<Utc>,
    },
}

impl DomainEvent for BookingEvent {
    const STREAM_TYPE: &'static str = "booking";

    fn event_type(&self) -> &'static str {
        match self {
            Self::AppointmentRequested { .. } => "AppointmentRequested",
            Self::AppointmentConfirmed => "AppointmentConfirmed",
            Self::AppointmentCancelled { .. } => "AppointmentCancelled",
            Self::AppointmentRescheduled { .. } => "AppointmentRescheduled",
            Self::AppointmentCompleted => "AppointmentCompleted",
            Self::AppointmentMarkedNoShow => "AppointmentMarkedNoShow",
            Self::RemindersScheduled { .. } => "RemindersScheduled",
            Self::ReminderSent { .. } => "ReminderSent",
            Self::ReminderSkipped { .. } => "ReminderSkipped",
            Self::AttendanceConfirmed => "AttendanceConfirmed",
            Self::CustomerArrived { .. } => "CustomerArrived",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BookingState {
    pub booking: Option<Booking>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Booking {
    pub booking_id: BookingId,
    pub reference: String,
    pub service_id: ServiceId,
    pub service_name: String,
    pub price: Money,
    pub resource: ResourceId,
    pub appointment: Interval,
    pub customer: Customer,
    pub status: BookingStatus,
    /// Reminders still to send, soonest first.
    pub reminders: Vec<DateTime<Utc>>,
    pub attendance_confirmed: bool,
    /// When the customer came in, once the front desk said so.
    pub arrived_at: Option<DateTime<Utc>>,
}

impl Booking {
    /// Holds a slot on its agenda (requested or confirmed).
    pub fn is_active(&self) -> bool {
        matches!(
            self.status,
            BookingStatus::Requested | BookingStatus::Confirmed
        )
    }
}

/// The short code a customer quotes for a booking (`BK-7Q4KX2`), derived from its id:
/// Crockford base32 of its first bytes, without look-alike letters.
pub fn booking_reference(booking_id: BookingId) -> String {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let bits = u64::from_be_bytes(
        booking_id.uuid().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    );
    let code: String = (0..6)
        .map(|i| ALPHABET[((bits >> (59 - 5 * i)) & 31) as usize] as char)
        .collect();
    format!("BK-{code}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BookingError {
    #[error("the booking already exists")]
    AlreadyRequested,
    #[error("the booking does not exist")]
    NotFound,
    #[error("a booking that is {0:?} cannot be {1}")]
    IllegalTransition(BookingStatus, &'static str),
    #[error("the appointment time is in the past")]
    InThePast,
    #[error("the appointment has not started yet")]
    NotStarted,
    #[error("the appointment already started")]
    AlreadyStarted,
    #[error("that is the time it already has")]
    SameTime,
    #[error("a customer can arrive from two hours before the appointment")]
    TooEarlyToArrive,
}

pub struct BookingAggregate;

/// The reminder times between `now` and `start`, soonest first, once each.
fn upcoming_reminders(
    mut reminders: Vec<DateTime<Utc>>,
    now: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Vec<DateTime<Utc>> {
    reminders.retain(|r| *r > now && *r < start);
    reminders.sort();
    reminders.dedup();
    reminders
}

impl Decider for BookingAggregate {
    type State = BookingState;
    type Command = BookingCommand;
    type Event = BookingEvent;
    type Error = BookingError;

    fn decide(
        state: &BookingState,
        command: BookingCommand,
    ) -> Result<Vec<BookingEvent>, BookingError> {
        use BookingCommand as C;
        use BookingEvent as E;
        use BookingStatus as S;
        let Some(booking) = &state.booking else {
            return match command {
                C::Request(AppointmentRequest {
                    booking_id,
                    reference,
                    service_id,
                    service_name,
                    price,
                    resource,
                    appointment,
                    customer,
                    channel,
                    confirm,
                    reminders,
                    now,
                }) => {
                    if appointment.start <= now {
                        return Err(BookingError::InThePast);
                    }
                    let reminders = upcoming_reminders(reminders, now, appointment.start);
                    let mut events = vec![E::AppointmentRequested {
                        booking_id,
                        reference,
                        service_id,
                        service_name,
                        price,
                        resource,
                        appointment,
                        customer,
                        channel,
                    }];
                    if confirm {
                        events.push(E::AppointmentConfirmed);
                    }
                    if !reminders.is_empty() {
                        events.push(E::RemindersScheduled { at: reminders });
                    }
                    Ok(events)
                }
                _ => Err(BookingError::NotFound),
            };
        };
        let status = booking.status;
        let illegal = |what| Err(BookingError::IllegalTransition(status, what));
        match command {
            C::Request(_) => Err(BookingError::AlreadyRequested),
            C::Confirm { .. } => match status {
                S::Requested => Ok(vec![E::AppointmentConfirmed]),
                _ => illegal("confirmed"),
            },
            C::Cancel { by, reason, now } => match status {
                S::Requested | S::Confirmed if booking.appointment.start <= now => {
                    Err(BookingError::AlreadyStarted)
                }
                S::Requested | S::Confirmed => Ok(vec![E::AppointmentCancelled { by, reason }]),
                _ => illegal("cancelled"),
            },
            C::Reschedule {
                to,
                resource,
                by,
                reminders,
                now,
            } => match status {
                S::Requested | S::Confirmed => {
                    if booking.appointment.start <= now {
                        return Err(BookingError::AlreadyStarted);
                    }
                    if to.start <= now {
                        return Err(BookingError::InThePast);
                    }
                    if to == booking.appointment && resource == booking.resource {
                        return Err(BookingError::SameTime);
                    }
                    let reminders = upcoming_reminders(reminders, now, to.start);
                    let mut events = vec![E::AppointmentRescheduled {
                        from: booking.appointment,
                        to,
                        from_resource: booking.resource.clone(),
                        to_resource: resource,
                        by,
                    }];
                    if reminders != booking.reminders {
                        events.push(E::RemindersScheduled { at: reminders });
                    }
                    Ok(events)
                }
                _ => illegal("rescheduled"),
            },
            C::SendReminder {
                at,
                deliverable,
                now,
            } => {
                let due = booking.is_active()
                    && at <= now
                    && now < booking.appointment.start
                    && booking.reminders.contains(&at);
                Ok(match (due, deliverable) {
                    (false, _) => vec![],
                    (true, true) => vec![E::ReminderSent { at }],
                    (true, false) => vec![E::ReminderSkipped { at }],
                })
            }
            C::ConfirmAttendance { now } => match status {
                S::Requested | S::Confirmed if booking.appointment.start <= now => {
                    Err(BookingError::AlreadyStarted)
                }
                S::Requested | S::Confirmed if booking.attendance_confirmed => Ok(vec![]),
                S::Requested | S::Confirmed => Ok(vec![E::AttendanceConfirmed]),
                _ => illegal("confirmed by the customer"),
            },
            C::Complete { now } => match status {
                S::Confirmed if booking.appointment.start > now => Err(BookingError::NotStarted),
                S::Confirmed => Ok(vec![E::AppointmentCompleted]),
                _ => illegal("completed"),
            },
            C::MarkArrived { now } => match status {
                S::Requested | S::Confirmed if booking.arrived_at.is_some() => Ok(vec![]),
                S::Requested | S::Confirmed
                    if now < booking.appointment.start - chrono::Duration::hours(2) =>
                {
                    Err(BookingError::TooEarlyToArrive)
                }
                S::Requested | S::Confirmed => Ok(vec![E::CustomerArrived { at: now }]),
                _ => illegal("marked as arrived"),
            },
            C::MarkNoShow { now } => match status {
                S::Confirmed if booking.appointment.start > now => Err(BookingError::NotStarted),
                S::Confirmed => Ok(vec![E::AppointmentMarkedNoShow]),
                _ => illegal("marked as a no-show"),
            },
        }
    }

    fn evolve(mut state: BookingState, event: &BookingEvent) -> BookingState {
        use BookingEvent as E;
        if let E::AppointmentRequested {
            booking_id,
            reference,
            service_id,
            service_name,
            price,
            resource,
            appointment,
            customer,
            ..
        } = event
        {
            state.booking = Some(Booking {
                booking_id: *booking_id,
                reference: reference.clone(),
                service_id: *service_id,
                service_name: service_name.clone(),
                price: *price,
                resource: resource.clone(),
                appointment: *appointment,
                customer: customer.clone(),
                status: BookingStatus::Requested,
                reminders: Vec::new(),
                attendance_confirmed: false,
                arrived_at: None,
            });
            return state;
        }
        if let Some(booking) = state.booking.as_mut() {
            match event {
                E::AppointmentRequested { .. } => {}
                E::AppointmentConfirmed => booking.status = BookingStatus::Confirmed,
                E::AppointmentCancelled { .. } => booking.status = BookingStatus::Cancelled,
                E::AppointmentRescheduled {
                    to, to_resource, ..
                } => {
                    booking.appointment = *to;
                    booking.resource = to_resource.clone();
                }
                E::AppointmentCompleted => booking.status = BookingStatus::Completed,
                E::AppointmentMarkedNoShow => booking.status = BookingStatus::NoShow,
                E::RemindersScheduled { at } => booking.reminders = at.clone(),
                E::ReminderSent { at } | E::ReminderSkipped { at } => {
                    booking.reminders.retain(|r| r != at)
                }
                E::AttendanceConfirmed => booking.attendance_confirmed = true,
                E::CustomerArrived { at } => booking.arrived_at = Some(*at),
            }
        }
        state
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    pub fn at(s: &str) -> DateTime<Utc> {
        format!("2026-12-01T{s}:00Z").parse().unwrap()
    }

    pub fn slot(from: &str, to: &str) -> Interval {
        Interval::new(at(from), at(to)).unwrap()
    }

    fn requested() -> BookingEvent {
        BookingEvent::AppointmentRequested {
            booking_id: BookingId::from_uuid(uuid::Uuid::from_u128(1)),
            reference: "BK-7Q4K".into(),
            service_id: ServiceId::from_uuid(uuid::Uuid::from_u128(2)),
            service_name: "Haircut".into(),
            price: Money::parse(2500, "EUR").unwrap(),
            resource: ResourceId::default_resource(),
            appointment: slot("10:00", "10:45"),
            customer: Customer {
                phone: PhoneNumber::parse("+34600000001").unwrap(),
                name: Some("Ana".into()),
            },
            channel: Channel::WhatsApp,
        }
    }

    fn request(confirm: bool, now: &str) -> BookingCommand {
        let BookingEvent::AppointmentRequested {
            booking_id,
            reference,
            service_id,
            service_name,
            price,
            resource,
            appointment,
            customer,
            channel,
        } = requested()
        else {
            unreachable!()
        };
        BookingCommand::Request(AppointmentRequest {
            booking_id,
            reference,
            service_id,
            service_name,
            price,
            resource,
            appointment,
            customer,
            channel,
            confirm,
            reminders: vec![],
            now: at(now),
        })
    }

    #[test]
    fn reminders_are_scheduled_with_the_booking_and_each_sent_once_before_it_starts() {
        let BookingCommand::Request(mut with_reminders) = request(true, "07:00") else {
            unreachable!()
        };
        // One already past, one after the start, one twice: only the future ones, once.
        with_reminders.reminders = vec![
            at("09:00"),
            at("06:00"),
            at("08:00"),
            at("09:00"),
            at("11:00"),
        ];
        let scheduled = BookingEvent::RemindersScheduled {
            at: vec![at("08:00"), at("09:00")],
        };
        given::<BookingAggregate>(&[])
            .when(BookingCommand::Request(with_reminders))
            .then_expect(&[
                requested(),
                BookingEvent::AppointmentConfirmed,
                scheduled.clone(),
            ]);
        let booked = [requested(), BookingEvent::AppointmentConfirmed, scheduled];
        let send = |r: &str, now: &str| BookingCommand::SendReminder {
            at: at(r),
            deliverable: true,
            now: at(now),
        };
        given::<BookingAggregate>(&booked)
            .when(send("08:00", "08:00"))
            .then_expect(&[BookingEvent::ReminderSent { at: at("08:00") }]);
        given::<BookingAggregate>(&booked)
            .when(send("08:00", "07:59"))
            .then_expect(&[]);
        given::<BookingAggregate>(&booked)
            .when(BookingCommand::SendReminder {
                at: at("08:00"),
                deliverable: false,
                now: at("08:00"),
            })
            .then_expect(&[BookingEvent::ReminderSkipped { at: at("08:00") }]);
        let mut sent = booked.to_vec();
        sent.push(BookingEvent::ReminderSent { at: at("08:00") });
        given::<BookingAggregate>(&sent)
            .when(send("08:00", "08:01"))
            .then_expect(&[]);
        given::<BookingAggregate>(&sent)
            .when(send("09:00", "10:00"))
            .then_expect(&[]);
        let mut cancelled = booked.to_vec();
        cancelled.push(BookingEvent::AppointmentCancelled {
            by: Party::Customer,
            reason: None,
        });
        given::<BookingAggregate>(&cancelled)
            .when(send("09:00", "09:00"))
            .then_expect(&[]);
        // A new time brings its own reminders.
        given::<BookingAggregate>(&booked)
            .when(BookingCommand::Reschedule {
                to: slot("15:00", "15:45"),
                resource: ResourceId::default_resource(),
                by: Party::Customer,
                reminders: vec![at("13:00")],
                now: at("08:30"),
            })
            .then_expect(&[
                BookingEvent::AppointmentRescheduled {
                    from: slot("10:00", "10:45"),
                    to: slot("15:00", "15:45"),
                    from_resource: ResourceId::default_resource(),
                    to_resource: ResourceId::default_resource(),
                    by: Party::Customer,
                },
                BookingEvent::RemindersScheduled {
                    at: vec![at("13:00")],
                },
            ]);
    }

    #[test]
    fn the_customer_confirms_attendance_once_before_the_start() {
        let confirmed = [requested(), BookingEvent::AppointmentConfirmed];
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::ConfirmAttendance { now: at("09:00") })
            .then_expect(&[BookingEvent::AttendanceConfirmed]);
        let mut again = confirmed.to_vec();
        again.push(BookingEvent::AttendanceConfirmed);
        given::<BookingAggregate>(&again)
            .when(BookingCommand::ConfirmAttendance { now: at("09:10") })
            .then_expect(&[]);
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::ConfirmAttendance { now: at("10:00") })
            .then_expect_error(BookingError::AlreadyStarted);
    }

    #[test]
    fn a_request_opens_the_booking_and_may_confirm_it_at_once() {
        given::<BookingAggregate>(&[])
            .when(request(false, "08:00"))
            .then_expect(&[requested()]);
        given::<BookingAggregate>(&[])
            .when(request(true, "08:00"))
            .then_expect(&[requested(), BookingEvent::AppointmentConfirmed]);
        given::<BookingAggregate>(&[])
            .when(request(false, "10:00"))
            .then_expect_error(BookingError::InThePast);
        given::<BookingAggregate>(&[requested()])
            .when(request(false, "08:00"))
            .then_expect_error(BookingError::AlreadyRequested);
    }

    #[test]
    fn confirmation_only_from_requested() {
        given::<BookingAggregate>(&[requested()])
            .when(BookingCommand::Confirm { now: at("08:00") })
            .then_expect(&[BookingEvent::AppointmentConfirmed]);
        given::<BookingAggregate>(&[requested(), BookingEvent::AppointmentConfirmed])
            .when(BookingCommand::Confirm { now: at("08:00") })
            .then_expect_error(BookingError::IllegalTransition(
                BookingStatus::Confirmed,
                "confirmed",
            ));
        given::<BookingAggregate>(&[])
            .when(BookingCommand::Confirm { now: at("08:00") })
            .then_expect_error(BookingError::NotFound);
    }

    #[test]
    fn cancelling_before_the_start_by_either_party() {
        let cancel = |now| BookingCommand::Cancel {
            by: Party::Customer,
            reason: Some(Reason::parse("sick").unwrap()),
            now: at(now),
        };
        given::<BookingAggregate>(&[requested(), BookingEvent::AppointmentConfirmed])
            .when(cancel("09:00"))
            .then_expect(&[BookingEvent::AppointmentCancelled {
                by: Party::Customer,
                reason: Some(Reason::parse("sick").unwrap()),
            }]);
        given::<BookingAggregate>(&[requested()])
            .when(cancel("10:00"))
            .then_expect_error(BookingError::AlreadyStarted);
        let cancelled = BookingEvent::AppointmentCancelled {
            by: Party::Business,
            reason: None,
        };
        given::<BookingAggregate>(&[requested(), cancelled])
            .when(cancel("09:00"))
            .then_expect_error(BookingError::IllegalTransition(
                BookingStatus::Cancelled,
                "cancelled",
            ));
    }

    #[test]
    fn rescheduling_moves_a_future_booking_to_a_future_time() {
        let reschedule = |to: Interval, now| BookingCommand::Reschedule {
            to,
            resource: ResourceId::default_resource(),
            by: Party::Customer,
            reminders: vec![],
            now: at(now),
        };
        given::<BookingAggregate>(&[requested()])
            .when(reschedule(slot("15:00", "15:45"), "08:00"))
            .then_expect(&[BookingEvent::AppointmentRescheduled {
                from: slot("10:00", "10:45"),
                to: slot("15:00", "15:45"),
                from_resource: ResourceId::default_resource(),
                to_resource: ResourceId::default_resource(),
                by: Party::Customer,
            }]);
        given::<BookingAggregate>(&[requested()])
            .when(reschedule(slot("07:00", "07:45"), "08:00"))
            .then_expect_error(BookingError::InThePast);
        given::<BookingAggregate>(&[requested()])
            .when(reschedule(slot("10:00", "10:45"), "08:00"))
            .then_expect_error(BookingError::SameTime);
        given::<BookingAggregate>(&[requested()])
            .when(reschedule(slot("15:00", "15:45"), "10:30"))
            .then_expect_error(BookingError::AlreadyStarted);
    }

    #[test]
    fn a_customer_arrives_once_from_two_hours_before_and_not_to_a_cancelled_booking() {
        let confirmed = [requested(), BookingEvent::AppointmentConfirmed];
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::MarkArrived { now: at("09:55") })
            .then_expect(&[BookingEvent::CustomerArrived { at: at("09:55") }]);
        given::<BookingAggregate>(&[requested()])
            .when(BookingCommand::MarkArrived { now: at("10:05") })
            .then_expect(&[BookingEvent::CustomerArrived { at: at("10:05") }]);
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::MarkArrived { now: at("07:30") })
            .then_expect_error(BookingError::TooEarlyToArrive);
        let arrived = [
            requested(),
            BookingEvent::CustomerArrived { at: at("09:55") },
        ];
        given::<BookingAggregate>(&arrived)
            .when(BookingCommand::MarkArrived { now: at("09:58") })
            .then_expect(&[]);
        let cancelled = [
            requested(),
            BookingEvent::AppointmentCancelled {
                by: Party::Business,
                reason: None,
            },
        ];
        given::<BookingAggregate>(&cancelled)
            .when(BookingCommand::MarkArrived { now: at("09:55") })
            .then_expect_error(BookingError::IllegalTransition(
                BookingStatus::Cancelled,
                "marked as arrived",
            ));
        let state = arrived
            .iter()
            .fold(BookingState::default(), BookingAggregate::evolve);
        assert_eq!(state.booking.unwrap().arrived_at, Some(at("09:55")));
    }

    #[test]
    fn completion_and_no_show_need_a_confirmed_booking_that_started() {
        let confirmed = [requested(), BookingEvent::AppointmentConfirmed];
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::Complete { now: at("10:50") })
            .then_expect(&[BookingEvent::AppointmentCompleted]);
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::MarkNoShow { now: at("10:20") })
            .then_expect(&[BookingEvent::AppointmentMarkedNoShow]);
        given::<BookingAggregate>(&confirmed)
            .when(BookingCommand::Complete { now: at("09:00") })
            .then_expect_error(BookingError::NotStarted);
        given::<BookingAggregate>(&[requested()])
            .when(BookingCommand::Complete { now: at("11:00") })
            .then_expect_error(BookingError::IllegalTransition(
                BookingStatus::Requested,
                "completed",
            ));
        let done = [
            requested(),
            BookingEvent::AppointmentConfirmed,
            BookingEvent::AppointmentCompleted,
        ];
        given::<BookingAggregate>(&done)
            .when(BookingCommand::MarkNoShow { now: at("11:00") })
            .then_expect_error(BookingError::IllegalTransition(
                BookingStatus::Completed,
                "marked as a no-show",
            ));
    }

    #[test]
    fn events_round_trip_through_the_store_format() {
        assert_round_trips(&[
            requested(),
            BookingEvent::AppointmentConfirmed,
            BookingEvent::AppointmentCancelled {
                by: Party::Business,
                reason: None,
            },
            BookingEvent::AppointmentRescheduled {
                from: slot("10:00", "10:45"),
                to: slot("11:00", "11:45"),
                from_resource: ResourceId::default_resource(),
                to_resource: ResourceId::parse("chair-2").unwrap(),
                by: Party::Business,
            },
            BookingEvent::AppointmentCompleted,
            BookingEvent::AppointmentMarkedNoShow,
            BookingEvent::RemindersScheduled {
                at: vec![at("08:00")],
            },
            BookingEvent::ReminderSent { at: at("08:00") },
            BookingEvent::ReminderSkipped { at: at("08:00") },
            BookingEvent::AttendanceConfirmed,
        ]);
    }
}
