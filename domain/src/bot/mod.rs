//! The WhatsApp bot: message types, the pure conversation engine, and its transcript tests.

pub mod engine;
pub mod message;

#[cfg(test)]
mod transcripts;

pub use engine::{BookingView, BotAction, BotContext, BotState, Calendar, Input, Step, Turn, step};
pub use message::{Choice, Inbound, Reply};
