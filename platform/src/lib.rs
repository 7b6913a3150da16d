//! Service plumbing shared by the three binaries and the operator CLI: layered settings,
//! telemetry, database pools per role, bootstrap and migrations, health and readiness
//! endpoints, serving with graceful shutdown.
//!
//! Knows nothing of the product: no event types, no routes beyond `/healthz` and `/readyz`.
//! Later: auth verification, tenant context and the problem+json error type belong here too.

#![forbid(unsafe_code)]

pub mod db;
pub mod health;
pub mod serve;
pub mod settings;
pub mod telemetry;

pub use settings::{
    DatabaseSettings, HttpSettings, LogSettings, NatsSettings, RedisSettings, ServiceSettings,
};
