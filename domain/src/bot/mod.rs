//! The WhatsApp bot: message types, the pure conversation engine, what its actions do to
//! bookings and agendas, and the transcript tests that run them together.

pub mod calendar;
pub mod engine;
pub mod i18n;
pub mod message;
pub mod understand;

#[cfg(test)]
mod transcripts;

pub use calendar::{BookingChange, CustomerCalendar};
pub use engine::{BookingView, BotAction, BotContext, BotState, Calendar, Input, Step, Turn, step};
pub use message::{Choice, Inbound, Reply};
