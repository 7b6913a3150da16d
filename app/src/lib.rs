//! The use cases of the platform, between the pure domain and the binaries.
//!
//! Each use case is a plain async function (`bookings::cancel`, `conversation::take_turn`,
//! `team::invite`, ...) over a [`UnitOfWork`]: it loads aggregates (the unit remembers the
//! version of each stream read), decides with the domain, stages the events, and may write the
//! vault's tables on the same transaction. [`execute`] commits the unit, appending every
//! staged stream atomically at the version it was read, and on a version conflict decides
//! again on fresh state, a bounded number of times. It is the one retry loop of every command
//! in every binary. Event ids derive from the command's idempotency key, so a retried command
//! appends nothing new.
//!
//! Failures are an [`AppError`]; the HTTP services map it to problem+json in one place
//! (`platform::problem`).
//!
//! Must not: know HTTP (no status codes, headers or extractors), run SQL of its own (the
//! event store's API and the vault hold every statement), or publish to NATS.

#![forbid(unsafe_code)]

pub mod actor;
pub mod api_keys;
pub mod billing;
pub mod bookings;
pub mod catalog;
pub mod context;
pub mod conversation;
pub mod customers;
pub mod email_verification;
pub mod error;
pub mod events;
pub mod execute;
pub mod notifications;
pub mod onboarding;
pub mod sessions;
pub mod states;
pub mod team;
pub mod tenants;
pub mod unit_of_work;
pub mod waitlist;
pub mod webhooks;
pub mod whatsapp;

pub use actor::Actor;
pub use context::CommandContext;
pub use error::{AppError, ConstraintExt, FieldError, Rejection};
pub use execute::{ATTEMPTS, Committed, execute};
pub use states::StateCache;
pub use unit_of_work::UnitOfWork;

use eventstore::EventStore;

/// What the use cases reach: the event store (and the aggregates this process keeps folded),
/// the sealer for secrets at rest, and the policies that are settings.
#[derive(Clone, Debug)]
pub struct App {
    pub store: EventStore,
    pub states: StateCache,
    pub sealer: vault::Sealer,
    pub policy: Policy,
}

/// Durations the product fixes by setting, not by code.
#[derive(Clone, Debug)]
pub struct Policy {
    /// How long a refresh token lives (a session without activity).
    pub refresh_ttl: chrono::Duration,
    /// The free trial a new business starts with.
    pub trial: chrono::Duration,
    /// How long an invitation can be accepted.
    pub invitation_ttl: chrono::Duration,
    /// How long a business keeps everything after a failed payment before it is suspended.
    pub grace: chrono::Duration,
    /// Where a business upgrades or subscribes (problem answers link to it).
    pub upgrade_url: String,
    /// Whether a webhook endpoint may be a plain `http://` URL (a receiver on this machine, in
    /// development and tests); otherwise only `https://`.
    pub webhooks_allow_http: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            refresh_ttl: chrono::Duration::days(30),
            trial: chrono::Duration::days(14),
            invitation_ttl: chrono::Duration::days(7),
            grace: chrono::Duration::days(7),
            upgrade_url: "https://app.booking.invalid/billing".into(),
            webhooks_allow_http: false,
        }
    }
}
