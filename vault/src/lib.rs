//! Secrets at rest, and the reservations that keep names unique across tenants: every table
//! that holds what must never enter the event log.
//!
//! Owns password hashes (argon2id), refresh-token, invitation and API-key hashes (SHA-256),
//! sealed TOTP secrets and WhatsApp credentials (AES-256-GCM), and the global directories
//! (slugs, WhatsApp numbers, API-key hashes) written in the same transaction as the events
//! that claim them. Every statement here is compile-checked against the schema.
//!
//! Tenant tables are read and written on the caller's connection, inside the caller's
//! tenant transaction (`eventstore::TenantTx::conn`), so row-level security confines them to
//! that tenant and they commit or roll back with the events of the same unit of work. The
//! directories are global and take any executor.
//!
//! Must not: decide anything (the application layer does), know an event type, or log a
//! secret. Secrets leave this crate only to the caller that asked for them.

#![forbid(unsafe_code)]

pub mod api_keys;
pub mod directory;
pub mod email_verification;
pub mod hashing;
pub mod mfa;
pub mod sealing;
pub mod sessions;
pub mod users;
pub mod webhooks;
pub mod whatsapp;

pub use hashing::{
    hash_password, needs_rehash, new_token, sha256, tenant_of_token, verify_password,
};
pub use sealing::Sealer;

/// The executor every statement runs on: a pooled connection, or the caller's transaction.
pub type Conn = sqlx::PgConnection;
