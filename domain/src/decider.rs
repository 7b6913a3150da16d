//! Deciding and evolving, as plain synchronous functions, and their adapter to `eventually`'s
//! `Aggregate` trait.
//!
//! `decide(&state, command) -> Result<Vec<Event>, Error>` says what happens; `evolve(state,
//! &event) -> state` is infallible: a stored event is a fact, replaying it cannot fail.

use std::marker::PhantomData;

use futures::future::BoxFuture;

use crate::event::DomainEvent;

pub trait Decider {
    type State: Default + Clone + std::fmt::Debug;
    type Command;
    type Event: DomainEvent;
    type Error: std::error::Error + Send + Sync + 'static;

    fn decide(state: &Self::State, command: Self::Command)
    -> Result<Vec<Self::Event>, Self::Error>;

    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// The state after a history of events.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), Self::evolve)
    }
}

/// Any [`Decider`] as an `eventually` aggregate, for code written against its
/// `Aggregate`/`Repository` vocabulary. The future it returns is already complete.
pub struct EventuallyAggregate<D>(PhantomData<D>);

impl<D> Default for EventuallyAggregate<D> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<D> Clone for EventuallyAggregate<D> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<D> eventually_core::aggregate::Aggregate for EventuallyAggregate<D>
where
    D: Decider + Send + Sync,
    D::State: Send + Sync,
    D::Command: Send,
    D::Event: Send,
{
    type Id = String;
    type State = D::State;
    type Event = D::Event;
    type Command = D::Command;
    type Error = D::Error;

    fn apply(state: Self::State, event: Self::Event) -> Result<Self::State, Self::Error> {
        Ok(D::evolve(state, &event))
    }

    fn handle<'a, 's: 'a>(
        &'a self,
        _id: &'s Self::Id,
        state: &'s Self::State,
        command: Self::Command,
    ) -> BoxFuture<'a, Result<Option<Vec<Self::Event>>, Self::Error>>
    where
        Self: Sized,
    {
        let decided = D::decide(state, command).map(Some);
        Box::pin(futures::future::ready(decided))
    }
}

/// Given/when/then for deciders, without a database.
#[cfg(test)]
pub(crate) mod scenario {
    use super::Decider;

    pub struct Given<D: Decider> {
        state: D::State,
    }

    pub fn given<D: Decider>(history: &[D::Event]) -> Given<D> {
        Given {
            state: D::fold(history),
        }
    }

    pub struct When<D: Decider> {
        result: Result<Vec<D::Event>, D::Error>,
    }

    impl<D: Decider> Given<D> {
        pub fn when(self, command: D::Command) -> When<D> {
            When {
                result: D::decide(&self.state, command),
            }
        }
    }

    impl<D: Decider> When<D>
    where
        D::Event: PartialEq,
        D::Error: PartialEq,
    {
        #[track_caller]
        pub fn then_expect(self, expected: &[D::Event]) {
            match self.result {
                Ok(events) => assert_eq!(events, expected),
                Err(err) => panic!("expected events, got error: {err}"),
            }
        }

        #[track_caller]
        pub fn then_expect_error(self, expected: D::Error) {
            match self.result {
                Ok(events) => panic!("expected {expected}, got events: {events:?}"),
                Err(err) => assert_eq!(err, expected),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eventually_core::aggregate::{Aggregate as _, AggregateExt as _};

    use super::*;
    use crate::agenda::{Agenda, AgendaCommand, AgendaError, AgendaState, Interval};
    use crate::ids::{BookingId, ResourceId};

    #[test]
    fn a_decider_works_through_eventuallys_aggregate_trait() {
        type A = EventuallyAggregate<Agenda>;
        let aggregate = A::default();
        let state = AgendaState::new(
            ResourceId::default_resource(),
            "2026-12-01".parse().unwrap(),
        );
        let interval = Interval::new(
            "2026-12-01T09:00:00Z".parse().unwrap(),
            "2026-12-01T10:00:00Z".parse().unwrap(),
        )
        .unwrap();
        let hold = |n| AgendaCommand::Hold {
            booking_id: BookingId::from_uuid(uuid::Uuid::from_u128(n)),
            interval,
            capacity: 1,
            now: "2026-12-01T08:00:00Z".parse().unwrap(),
        };
        let id = "main:2026-12-01".to_owned();
        let events = futures::executor::block_on(aggregate.handle(&id, &state, hold(1)))
            .unwrap()
            .unwrap();
        let state = A::fold(state, events.into_iter()).unwrap();
        let second = futures::executor::block_on(aggregate.handle(&id, &state, hold(2)));
        assert_eq!(second.unwrap_err(), AgendaError::SlotTaken);
    }
}
