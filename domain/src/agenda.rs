//! The agenda of one resource on one local day: which intervals are held, by which booking.
//! Stream `agenda/<resource>:<yyyy-mm-dd>`. It enforces the invariant that matters most:
//! a resource never holds more overlapping bookings than its capacity, also when many
//! customers race for the same slot (the store's optimistic concurrency on this stream
//! serializes them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::{BookingId, ResourceId};
use crate::values::LocalDate;

/// A half-open interval `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Self> {
        (start < end).then_some(Self { start, end })
    }

    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// The stream id of a resource's agenda for a local day.
pub fn agenda_stream_id(resource: &ResourceId, day: LocalDate) -> String {
    format!("{resource}:{day}")
}

#[derive(Debug, Clone, PartialEq)]
pub enum AgendaCommand {
    /// Hold `interval` (the service's duration plus its buffer) for a booking. A reservation
    /// the booking made of it becomes the booking's hold.
    Hold {
        booking_id: BookingId,
        interval: Interval,
        capacity: u32,
        now: DateTime<Utc>,
    },
    Release {
        booking_id: BookingId,
    },
    /// Keep `interval` for a customer who chose it and is finishing the booking, until
    /// `until`: nobody else can hold or reserve it meanwhile. The booking that follows holds
    /// it under the same id. Reserving again (another time, or the same time later) replaces
    /// the reservation.
    Reserve {
        booking_id: BookingId,
        interval: Interval,
        capacity: u32,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// The customer let a reservation go (chose otherwise, started over). Nothing when there
    /// is none (it expired, or became a booking).
    ReleaseReservation {
        booking_id: BookingId,
    },
    /// Time ran out on a reservation. Nothing when it is not due, or is gone.
    ExpireReservation {
        booking_id: BookingId,
        now: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AgendaEvent {
    SlotHeld {
        resource: ResourceId,
        day: LocalDate,
        booking_id: BookingId,
        interval: Interval,
    },
    SlotReleased {
        resource: ResourceId,
        day: LocalDate,
        booking_id: BookingId,
    },
    SlotReserved {
        resource: ResourceId,
        day: LocalDate,
        booking_id: BookingId,
        interval: Interval,
        until: DateTime<Utc>,
    },
    ReservationReleased {
        resource: ResourceId,
        day: LocalDate,
        booking_id: BookingId,
    },
    ReservationExpired {
        resource: ResourceId,
        day: LocalDate,
        booking_id: BookingId,
    },
}

impl DomainEvent for AgendaEvent {
    const STREAM_TYPE: &'static str = "agenda";

    fn event_type(&self) -> &'static str {
        match self {
            Self::SlotHeld { .. } => "SlotHeld",
            Self::SlotReleased { .. } => "SlotReleased",
            Self::SlotReserved { .. } => "SlotReserved",
            Self::ReservationReleased { .. } => "ReservationReleased",
            Self::ReservationExpired { .. } => "ReservationExpired",
        }
    }
}

/// A time kept for a customer finishing a booking, until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    pub booking_id: BookingId,
    pub interval: Interval,
    pub until: DateTime<Utc>,
}

impl Reservation {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now < self.until
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgendaState {
    pub key: Option<(ResourceId, LocalDate)>,
    /// Bookings' holds.
    pub holds: Vec<(BookingId, Interval)>,
    /// Reservations, live or not yet expired by the clock (an expired one takes nothing).
    pub reservations: Vec<Reservation>,
}

impl AgendaState {
    /// An empty agenda that knows which resource and day it is (a new stream).
    pub fn new(resource: ResourceId, day: LocalDate) -> Self {
        Self {
            key: Some((resource, day)),
            ..Self::default()
        }
    }

    /// What is taken at `now`, by whom: the bookings' holds and the live reservations.
    pub fn taken(&self, now: DateTime<Utc>) -> Vec<(BookingId, Interval)> {
        self.holds
            .iter()
            .copied()
            .chain(
                self.reservations
                    .iter()
                    .filter(|r| r.is_live(now))
                    .map(|r| (r.booking_id, r.interval)),
            )
            .collect()
    }

    /// The intervals taken at `now` by anyone but `except`.
    pub fn taken_by_others(&self, now: DateTime<Utc>, except: BookingId) -> Vec<Interval> {
        self.taken(now)
            .into_iter()
            .filter(|(b, _)| *b != except)
            .map(|(_, i)| i)
            .collect()
    }

    fn reservation(&self, booking_id: BookingId) -> Option<&Reservation> {
        self.reservations
            .iter()
            .find(|r| r.booking_id == booking_id)
    }

    fn holds_booking(&self, booking_id: BookingId) -> bool {
        self.holds.iter().any(|(b, _)| *b == booking_id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgendaError {
    #[error("that time is already taken")]
    SlotTaken,
    #[error("the booking already holds a slot on this agenda")]
    AlreadyHeld,
    #[error("the booking holds no slot on this agenda")]
    NotHeld,
    #[error("the agenda does not know its resource and day")]
    Unkeyed,
}

/// Whether `interval` is free for `booking_id` at `now`: fewer than `capacity` others overlap.
fn fits(
    state: &AgendaState,
    booking_id: BookingId,
    interval: &Interval,
    capacity: u32,
    now: DateTime<Utc>,
) -> Result<(), AgendaError> {
    let overlapping = state
        .taken_by_others(now, booking_id)
        .iter()
        .filter(|h| h.overlaps(interval))
        .count();
    if overlapping >= capacity.max(1) as usize {
        return Err(AgendaError::SlotTaken);
    }
    Ok(())
}

pub struct Agenda;

impl Decider for Agenda {
    type State = AgendaState;
    type Command = AgendaCommand;
    type Event = AgendaEvent;
    type Error = AgendaError;

    fn decide(
        state: &AgendaState,
        command: AgendaCommand,
    ) -> Result<Vec<AgendaEvent>, AgendaError> {
        let (resource, day) = state.key.clone().ok_or(AgendaError::Unkeyed)?;
        match command {
            AgendaCommand::Hold {
                booking_id,
                interval,
                capacity,
                now,
            } => {
                if state.holds_booking(booking_id) {
                    return Err(AgendaError::AlreadyHeld);
                }
                fits(state, booking_id, &interval, capacity, now)?;
                Ok(vec![AgendaEvent::SlotHeld {
                    resource,
                    day,
                    booking_id,
                    interval,
                }])
            }
            AgendaCommand::Release { booking_id } => {
                if !state.holds_booking(booking_id) {
                    return Err(AgendaError::NotHeld);
                }
                Ok(vec![AgendaEvent::SlotReleased {
                    resource,
                    day,
                    booking_id,
                }])
            }
            AgendaCommand::Reserve {
                booking_id,
                interval,
                capacity,
                until,
                now,
            } => {
                if state.holds_booking(booking_id) {
                    return Err(AgendaError::AlreadyHeld);
                }
                fits(state, booking_id, &interval, capacity, now)?;
                Ok(vec![AgendaEvent::SlotReserved {
                    resource,
                    day,
                    booking_id,
                    interval,
                    until,
                }])
            }
            AgendaCommand::ReleaseReservation { booking_id } => {
                Ok(match state.reservation(booking_id) {
                    Some(_) => vec![AgendaEvent::ReservationReleased {
                        resource,
                        day,
                        booking_id,
                    }],
                    None => vec![],
                })
            }
            AgendaCommand::ExpireReservation { booking_id, now } => {
                Ok(match state.reservation(booking_id) {
                    Some(r) if !r.is_live(now) => vec![AgendaEvent::ReservationExpired {
                        resource,
                        day,
                        booking_id,
                    }],
                    _ => vec![],
                })
            }
        }
    }

    fn evolve(mut state: AgendaState, event: &AgendaEvent) -> AgendaState {
        match event {
            AgendaEvent::SlotHeld {
                resource,
                day,
                booking_id,
                interval,
            } => {
                state.key = Some((resource.clone(), *day));
                state.reservations.retain(|r| r.booking_id != *booking_id);
                state.holds.push((*booking_id, *interval));
            }
            AgendaEvent::SlotReleased {
                resource,
                day,
                booking_id,
            } => {
                state.key = Some((resource.clone(), *day));
                state.holds.retain(|(b, _)| b != booking_id);
            }
            AgendaEvent::SlotReserved {
                resource,
                day,
                booking_id,
                interval,
                until,
            } => {
                state.key = Some((resource.clone(), *day));
                state.reservations.retain(|r| r.booking_id != *booking_id);
                state.reservations.push(Reservation {
                    booking_id: *booking_id,
                    interval: *interval,
                    until: *until,
                });
            }
            AgendaEvent::ReservationReleased {
                resource,
                day,
                booking_id,
            }
            | AgendaEvent::ReservationExpired {
                resource,
                day,
                booking_id,
            } => {
                state.key = Some((resource.clone(), *day));
                state.reservations.retain(|r| r.booking_id != *booking_id);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::assert_round_trips;

    pub(crate) fn at(hm: &str) -> DateTime<Utc> {
        format!("2026-12-01T{hm}:00Z").parse().unwrap()
    }

    fn interval(from: &str, to: &str) -> Interval {
        Interval::new(at(from), at(to)).unwrap()
    }

    fn booking(n: u128) -> BookingId {
        BookingId::from_uuid(uuid::Uuid::from_u128(n))
    }

    fn empty() -> AgendaState {
        AgendaState::new(
            ResourceId::default_resource(),
            "2026-12-01".parse().unwrap(),
        )
    }

    fn held(state: AgendaState, n: u128, from: &str, to: &str) -> AgendaState {
        let events = Agenda::decide(
            &state,
            AgendaCommand::Hold {
                booking_id: booking(n),
                interval: interval(from, to),
                capacity: 1,
                now: now(),
            },
        )
        .unwrap();
        events.iter().fold(state, Agenda::evolve)
    }

    fn now() -> DateTime<Utc> {
        at("08:00")
    }

    #[test]
    fn an_overlapping_hold_is_refused_and_an_adjacent_one_is_not() {
        let state = held(empty(), 1, "10:00", "11:00");
        let hold = |n, from, to| {
            Agenda::decide(
                &state,
                AgendaCommand::Hold {
                    booking_id: booking(n),
                    interval: interval(from, to),
                    capacity: 1,
                    now: now(),
                },
            )
        };
        assert_eq!(hold(2, "10:30", "11:30"), Err(AgendaError::SlotTaken));
        assert_eq!(hold(2, "09:30", "10:01"), Err(AgendaError::SlotTaken));
        assert!(
            hold(2, "11:00", "12:00").is_ok(),
            "half-open intervals touch"
        );
        assert!(hold(2, "09:00", "10:00").is_ok());
        assert_eq!(hold(1, "12:00", "13:00"), Err(AgendaError::AlreadyHeld));
    }

    #[test]
    fn capacity_allows_that_many_overlapping_holds() {
        let state = held(empty(), 1, "10:00", "11:00");
        let hold = |state: &AgendaState, n| {
            Agenda::decide(
                state,
                AgendaCommand::Hold {
                    booking_id: booking(n),
                    interval: interval("10:00", "11:00"),
                    capacity: 2,
                    now: now(),
                },
            )
        };
        let second = hold(&state, 2).unwrap();
        let state = second.iter().fold(state, Agenda::evolve);
        assert_eq!(hold(&state, 3), Err(AgendaError::SlotTaken));
    }

    #[test]
    fn a_released_slot_can_be_held_again() {
        let state = held(empty(), 1, "10:00", "11:00");
        let released = Agenda::decide(
            &state,
            AgendaCommand::Release {
                booking_id: booking(1),
            },
        )
        .unwrap();
        let state = released.iter().fold(state, Agenda::evolve);
        assert_eq!(state.holds.len(), 0);
        let _ = held(state.clone(), 2, "10:00", "11:00");
        assert_eq!(
            Agenda::decide(
                &state,
                AgendaCommand::Release {
                    booking_id: booking(1)
                }
            ),
            Err(AgendaError::NotHeld)
        );
    }

    #[test]
    fn an_agenda_must_know_its_resource_and_day() {
        let hold = AgendaCommand::Hold {
            booking_id: booking(1),
            interval: interval("10:00", "11:00"),
            capacity: 1,
            now: now(),
        };
        assert_eq!(
            Agenda::decide(&AgendaState::default(), hold),
            Err(AgendaError::Unkeyed)
        );
    }

    fn reserved(state: AgendaState, n: u128, from: &str, to: &str, until: &str) -> AgendaState {
        let events = Agenda::decide(
            &state,
            AgendaCommand::Reserve {
                booking_id: booking(n),
                interval: interval(from, to),
                capacity: 1,
                until: at(until),
                now: now(),
            },
        )
        .unwrap();
        events.iter().fold(state, Agenda::evolve)
    }

    #[test]
    fn a_live_reservation_keeps_its_time_from_everyone_else_until_it_runs_out() {
        let state = reserved(empty(), 1, "10:00", "11:00", "08:10");
        let hold = |n, now| {
            Agenda::decide(
                &state,
                AgendaCommand::Hold {
                    booking_id: booking(n),
                    interval: interval("10:30", "11:30"),
                    capacity: 1,
                    now: at(now),
                },
            )
        };
        let reserve = |n, now| {
            Agenda::decide(
                &state,
                AgendaCommand::Reserve {
                    booking_id: booking(n),
                    interval: interval("10:00", "11:00"),
                    capacity: 1,
                    until: at("09:00"),
                    now: at(now),
                },
            )
        };
        assert_eq!(hold(2, "08:09"), Err(AgendaError::SlotTaken));
        assert_eq!(reserve(2, "08:09"), Err(AgendaError::SlotTaken));
        // Once it has run out it takes nothing, expired by the clock or not yet.
        assert!(hold(2, "08:10").is_ok());
        assert!(reserve(2, "08:10").is_ok());
        assert_eq!(state.taken(at("08:09")).len(), 1);
        assert!(state.taken(at("08:10")).is_empty());
    }

    #[test]
    fn the_booking_that_follows_a_reservation_holds_it_even_after_it_ran_out() {
        let state = reserved(empty(), 1, "10:00", "11:00", "08:10");
        let late = at("08:30");
        let events = Agenda::decide(
            &state,
            AgendaCommand::Hold {
                booking_id: booking(1),
                interval: interval("10:00", "11:00"),
                capacity: 1,
                now: late,
            },
        )
        .unwrap();
        let state = events.iter().fold(state, Agenda::evolve);
        assert_eq!(state.holds, vec![(booking(1), interval("10:00", "11:00"))]);
        assert!(
            state.reservations.is_empty(),
            "the reservation became the hold"
        );
        assert_eq!(
            Agenda::decide(
                &state,
                AgendaCommand::ExpireReservation {
                    booking_id: booking(1),
                    now: late
                }
            ),
            Ok(vec![]),
            "a booked reservation has nothing left to expire"
        );
    }

    #[test]
    fn reserving_again_replaces_the_reservation_and_releasing_or_expiring_is_idempotent() {
        let state = reserved(empty(), 1, "10:00", "11:00", "08:10");
        let state = reserved(state, 1, "12:00", "13:00", "08:20");
        assert_eq!(state.reservations.len(), 1);
        assert_eq!(state.reservations[0].interval, interval("12:00", "13:00"));
        let expire = |state: &AgendaState, now| {
            Agenda::decide(
                state,
                AgendaCommand::ExpireReservation {
                    booking_id: booking(1),
                    now: at(now),
                },
            )
            .unwrap()
        };
        assert!(expire(&state, "08:19").is_empty(), "not due yet");
        let expired = expire(&state, "08:20");
        assert!(matches!(
            expired.as_slice(),
            [AgendaEvent::ReservationExpired { .. }]
        ));
        let state = expired.iter().fold(state, Agenda::evolve);
        assert!(expire(&state, "08:30").is_empty());
        let release = AgendaCommand::ReleaseReservation {
            booking_id: booking(1),
        };
        assert_eq!(Agenda::decide(&state, release), Ok(vec![]));
    }

    #[test]
    fn events_round_trip_through_the_store_format() {
        let day: LocalDate = "2026-12-01".parse().unwrap();
        assert_round_trips(&[
            AgendaEvent::SlotHeld {
                resource: ResourceId::default_resource(),
                day,
                booking_id: booking(1),
                interval: interval("10:00", "11:00"),
            },
            AgendaEvent::SlotReleased {
                resource: ResourceId::default_resource(),
                day,
                booking_id: booking(1),
            },
            AgendaEvent::SlotReserved {
                resource: ResourceId::default_resource(),
                day,
                booking_id: booking(1),
                interval: interval("10:00", "11:00"),
                until: at("08:10"),
            },
            AgendaEvent::ReservationReleased {
                resource: ResourceId::default_resource(),
                day,
                booking_id: booking(1),
            },
            AgendaEvent::ReservationExpired {
                resource: ResourceId::default_resource(),
                day,
                booking_id: booking(1),
            },
        ]);
    }
}
