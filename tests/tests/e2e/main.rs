//! The end-to-end tests, one module per area, in one test binary: each file of its own would
//! link the whole platform again (minutes of linking and gigabytes of disk per file).

mod access_matrix;
mod analytics;
mod asyncapi;
mod attacks;
mod auth;
mod billing;
mod bookings;
mod browser;
mod conversations;
mod dashboard;
mod emails;
mod end_to_end;
mod idempotency;
mod limits;
mod metrics;
mod mfa;
mod nats_auth;
mod openapi;
mod projections;
mod public_events;
mod queries;
mod reminders;
mod schema;
mod schemathesis;
mod sender;
mod services;
mod soak;
mod staff;
mod stripe;
mod takeover;
mod team;
mod transport;
mod unit_of_work;
mod webhooks;
mod whatsapp;
