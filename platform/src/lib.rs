//! Service plumbing shared by the three binaries and the operator CLI: layered settings,
//! telemetry, database pools per role, bootstrap and migrations, health and readiness
//! endpoints, serving with graceful shutdown.
//!
//! Also the cross-service HTTP pieces: the problem+json error type and JSON extractor, and
//! access-token issuance and verification (the `Principal` of a request). It holds no routes
//! beyond `/healthz` and `/readyz`, and no event types.

#![forbid(unsafe_code)]

pub mod answers;
pub mod auth;
pub mod backup;
pub mod credentials;
pub mod db;
pub mod docs;
pub mod health;
pub mod metrics;
pub mod params;
pub mod problem;
pub mod ratelimit;
pub mod redis_link;
pub mod schemas;
pub mod security;
pub mod serve;
pub mod settings;
pub mod telemetry;
pub mod tenant_gate;

pub use settings::{
    DatabaseSettings, HttpSettings, LogSettings, NatsSettings, RedisSettings, ServiceSettings,
};
