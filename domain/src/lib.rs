//! The booking platform's domain: checked value types, commands, events, aggregates, the bot
//! conversation engine, availability rules and plan limits.
//!
//! Pure: no async runtime, database, HTTP, cache or broker. Deciding is a synchronous function
//! of state and command ([`Decider`]); whatever a decision needs from outside (the time,
//! availability, the bot configuration) comes in through the command. Ids arrive in commands
//! too: the domain makes none (that would need randomness).

#![forbid(unsafe_code)]

pub mod access;
pub mod agenda;
#[cfg(test)]
mod asyncapi;
pub mod availability;
pub mod billing;
pub mod booking;
pub mod bot;
pub mod bot_config;
#[cfg(test)]
mod catalog;
pub mod conversation;
pub mod decider;
pub mod event;
pub mod ids;
pub mod integration;
mod labels;
pub mod notification;
pub mod personal;
pub mod plan;
pub mod reminders;
pub mod scheduling;
pub mod tenant;
pub mod upcast;
pub mod values;
pub mod waitlist;
pub mod webhook;

pub use decider::{Decider, EventuallyAggregate};
pub use event::{DecodeError, DomainEvent, Encoded, decode, encode};

/// The AsyncAPI 3.0 document of the internal events stream, `asyncapi/events.json`, which the
/// tests generate from the event catalogue and keep current.
pub const EVENTS_ASYNCAPI: &str = include_str!("../asyncapi/events.json");

/// The AsyncAPI 3.0 document of the public events (`integration`), `asyncapi/integrations.json`.
pub const INTEGRATIONS_ASYNCAPI: &str = include_str!("../asyncapi/integrations.json");
