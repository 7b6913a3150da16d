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
    /// Hold `interval` (the service's duration plus its buffer) for a booking.
    Hold {
        booking_id: BookingId,
        interval: Interval,
        capacity: u32,
    },
    Release {
        booking_id: BookingId,
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
}

impl DomainEvent for AgendaEvent {
    const STREAM_TYPE: &'static str = "agenda";

    fn event_type(&self) -> &'static str {
        match self {
            Self::SlotHeld { .. } => "SlotHeld",
            Self::SlotReleased { .. } => "SlotReleased",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgendaState {
    pub key: Option<(ResourceId, LocalDate)>,
    pub holds: Vec<(BookingId, Interval)>,
}

impl AgendaState {
    /// An empty agenda that knows which resource and day it is (a new stream).
    pub fn new(resource: ResourceId, day: LocalDate) -> Self {
        Self {
            key: Some((resource, day)),
            holds: Vec::new(),
        }
    }

    /// How many holds overlap `interval`.
    pub fn overlapping(&self, interval: &Interval) -> usize {
        self.holds
            .iter()
            .filter(|(_, h)| h.overlaps(interval))
            .count()
    }

    pub fn intervals(&self) -> impl Iterator<Item = &Interval> {
        self.holds.iter().map(|(_, i)| i)
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
            } => {
                if state.holds.iter().any(|(b, _)| *b == booking_id) {
                    return Err(AgendaError::AlreadyHeld);
                }
                if state.overlapping(&interval) >= capacity.max(1) as usize {
                    return Err(AgendaError::SlotTaken);
                }
                Ok(vec![AgendaEvent::SlotHeld {
                    resource,
                    day,
                    booking_id,
                    interval,
                }])
            }
            AgendaCommand::Release { booking_id } => {
                if !state.holds.iter().any(|(b, _)| *b == booking_id) {
                    return Err(AgendaError::NotHeld);
                }
                Ok(vec![AgendaEvent::SlotReleased {
                    resource,
                    day,
                    booking_id,
                }])
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
            },
        )
        .unwrap();
        events.iter().fold(state, Agenda::evolve)
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
        };
        assert_eq!(
            Agenda::decide(&AgendaState::default(), hold),
            Err(AgendaError::Unkeyed)
        );
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
        ]);
    }
}
