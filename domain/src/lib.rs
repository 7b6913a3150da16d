//! The booking platform's domain: checked value types, commands, events, aggregates, the bot
//! conversation engine, availability rules and plan limits.
//!
//! Pure: no async runtime, database, HTTP, cache or broker. Deciding is a synchronous function
//! of state and command; whatever a decision needs from outside (the time, availability, the
//! bot configuration) comes in as an argument. The aggregates arrive with their issue.

#![forbid(unsafe_code)]
