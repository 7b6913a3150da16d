//! The platform's vocabulary on NATS: which stream holds the events, which subjects carry them,
//! which headers describe them, and how the stream is provisioned.
//!
//! Owns names and definitions, and how a consumer pulls ([`consume`]). It does not know the
//! event store or any event type, and it never publishes an event itself: publishing is the relay's job (`eventstore::relay`), so that
//! every message on the stream corresponds to exactly one committed event.
//!
//! Everything is scoped by a [`Namespace`], so that tests (and, if ever needed, environments)
//! share one server without seeing each other's streams or subjects.

#![forbid(unsafe_code)]

pub mod consume;

use std::time::Duration;

use anyhow::Context as _;
use async_nats::jetstream::{self, stream};
use secrecy::{ExposeSecret as _, SecretString};
use uuid::Uuid;

/// Message headers the relay sets on every event. `Nats-Msg-Id` (the event id) is JetStream's
/// own de-duplication header; the rest let consumers route and check order without parsing
/// the payload.
pub mod headers {
    pub const MSG_ID: &str = "Nats-Msg-Id";
    pub const TENANT: &str = "Booking-Tenant";
    pub const STREAM_TYPE: &str = "Booking-Stream-Type";
    pub const STREAM_ID: &str = "Booking-Stream-Id";
    pub const VERSION: &str = "Booking-Version";
    pub const EVENT_TYPE: &str = "Booking-Event-Type";
    pub const SCHEMA_VERSION: &str = "Booking-Schema-Version";
    /// The event's place in the global read order, `<transaction_id>.<global_position>`.
    pub const POSITION: &str = "Booking-Position";
    /// The W3C trace context of the publishing span, on the events of a traced operation.
    pub const TRACEPARENT: &str = "traceparent";
}

/// How long JetStream remembers a `Nats-Msg-Id`. The relay does not depend on it for
/// exactly-once (it resumes after the last message actually stored), it only makes a
/// re-publish after a lost ack harmless.
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// A set of names on one NATS server: the events stream and the subjects around it.
///
/// Production uses the empty prefix: stream `EVENTS`, subjects `evt.<tenant>.<stream_type>.<event_type>`.
/// A test uses a unique prefix, e.g. stream `T3F2AEVENTS`, subjects `t3f2a.evt.…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a namespace prefix is lowercase ASCII letters and digits (got {0:?})")]
pub struct InvalidPrefix(String);

impl Namespace {
    /// The production namespace.
    pub fn root() -> Self {
        Self {
            prefix: String::new(),
        }
    }

    /// A namespace with a prefix of lowercase ASCII letters and digits.
    pub fn with_prefix(prefix: &str) -> Result<Self, InvalidPrefix> {
        if prefix.is_empty()
            || !prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(InvalidPrefix(prefix.to_owned()));
        }
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// A fresh namespace no one else uses (tests).
    pub fn unique() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            prefix: format!("t{}", &id[..12]),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    fn subject_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}.", self.prefix)
        }
    }

    /// The JetStream stream that stores every event.
    pub fn events_stream(&self) -> String {
        format!("{}EVENTS", self.prefix.to_ascii_uppercase())
    }

    /// `evt.>`: every event of every tenant.
    pub fn all_events(&self) -> String {
        format!("{}evt.>", self.subject_prefix())
    }

    /// `evt.<tenant>.>`: every event of one tenant (analytics consumers).
    pub fn tenant_events(&self, tenant_id: Uuid) -> String {
        format!("{}evt.{tenant_id}.>", self.subject_prefix())
    }

    /// `evt.<tenant>.<stream_type>.<event_type>`. Both types are checked subject tokens
    /// (the event store's table constraints allow only `[A-Za-z0-9_-]`).
    pub fn event_subject(&self, tenant_id: Uuid, stream_type: &str, event_type: &str) -> String {
        format!(
            "{}evt.{tenant_id}.{stream_type}.{event_type}",
            self.subject_prefix()
        )
    }

    /// Core NATS (not JetStream) subject on which writers announce a committed transaction so
    /// that log readers wake without polling. Deliberately outside `evt.>`: it must never be
    /// captured by the events stream.
    pub fn commit_wakeup(&self) -> String {
        format!("{}eventstore.committed", self.subject_prefix())
    }
}

/// Where events are stored on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    #[default]
    File,
    Memory,
}

/// The events stream's definition. Only fields that nats-server 2.9 understands are set:
/// Debian's server is 2.9.x.
pub fn events_stream_config(ns: &Namespace, storage: Storage, replicas: usize) -> stream::Config {
    stream::Config {
        name: ns.events_stream(),
        subjects: vec![ns.all_events()],
        storage: match storage {
            Storage::File => stream::StorageType::File,
            Storage::Memory => stream::StorageType::Memory,
        },
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        duplicate_window: DUPLICATE_WINDOW,
        num_replicas: replicas.max(1),
        ..Default::default()
    }
}

/// Creates the events stream, or brings an existing one's subjects in line. Idempotent: every
/// relay leader calls it when it takes over. `replicas` applies on creation (1 on a single
/// node, 3 on the cluster of `nats/cluster/`); an existing stream keeps its replica count.
pub async fn provision_events_stream(
    js: &jetstream::Context,
    ns: &Namespace,
    storage: Storage,
    replicas: usize,
) -> anyhow::Result<stream::Stream> {
    let wanted = events_stream_config(ns, storage, replicas);
    match js.get_stream(&wanted.name).await {
        Ok(mut existing) => {
            let info = existing
                .info()
                .await
                .context("failed to read stream info")?;
            if info.config.subjects != wanted.subjects
                || info.config.duplicate_window != wanted.duplicate_window
            {
                let mut config = info.config.clone();
                config.subjects = wanted.subjects;
                config.duplicate_window = wanted.duplicate_window;
                js.update_stream(config)
                    .await
                    .context("failed to update the events stream")?;
                tracing::info!(stream = %wanted.name, "updated the events stream's definition");
            }
            Ok(existing)
        }
        Err(err) if is_stream_not_found(&err) => {
            let stream = js
                .get_or_create_stream(wanted.clone())
                .await
                .with_context(|| format!("failed to create stream {}", wanted.name))?;
            tracing::info!(stream = %wanted.name, "created the events stream");
            Ok(stream)
        }
        Err(err) => Err(err).context("failed to look up the events stream"),
    }
}

fn is_stream_not_found(err: &jetstream::context::GetStreamError) -> bool {
    matches!(
        err.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Who a service is on the NATS server: its user (which fixes the subjects it may use, see
/// `nats/auth.conf`) and password.
#[derive(Clone)]
pub struct Login {
    pub user: String,
    pub password: SecretString,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Login {
    /// The inbox prefix this user's replies come to, `_INBOX_<user>`: each user may subscribe
    /// to its own inboxes only, so no service reads the replies (pulled messages included)
    /// meant for another.
    pub fn inbox_prefix(&self) -> String {
        format!("_INBOX_{}", self.user)
    }
}

/// Connects to NATS, as `login` when given (the shipped server configs refuse anonymous
/// clients). The client keeps retrying in the background, also for the first connection, so a
/// service starts (and reports not-ready) while NATS is down. `url` is one server's, or a
/// cluster's nodes' separated by commas.
pub async fn connect(
    url: &str,
    name: &str,
    login: Option<&Login>,
) -> anyhow::Result<async_nats::Client> {
    let mut options = async_nats::ConnectOptions::new();
    if let Some(login) = login {
        options = async_nats::ConnectOptions::with_user_and_password(
            login.user.clone(),
            login.password.expose_secret().to_owned(),
        )
        .custom_inbox_prefix(login.inbox_prefix());
    }
    options
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        // A cluster's nodes, comma-separated: the client reconnects to another when one goes.
        .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
        .await
        .with_context(|| format!("failed to set up a NATS client for {url}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_namespace_uses_the_designed_names() {
        let ns = Namespace::root();
        let tenant = Uuid::nil();
        assert_eq!(ns.events_stream(), "EVENTS");
        assert_eq!(ns.all_events(), "evt.>");
        assert_eq!(
            ns.event_subject(tenant, "booking", "AppointmentBooked"),
            format!("evt.{tenant}.booking.AppointmentBooked")
        );
        assert_eq!(ns.tenant_events(tenant), format!("evt.{tenant}.>"));
    }

    #[test]
    fn a_prefixed_namespace_keeps_the_wakeup_subject_outside_the_events_stream() {
        let ns = Namespace::with_prefix("t1").unwrap();
        assert_eq!(ns.events_stream(), "T1EVENTS");
        assert_eq!(ns.all_events(), "t1.evt.>");
        assert_eq!(ns.commit_wakeup(), "t1.eventstore.committed");
        assert!(!ns.commit_wakeup().starts_with("t1.evt."));
    }

    #[test]
    fn a_prefix_with_subject_syntax_is_refused() {
        assert!(Namespace::with_prefix("a.b").is_err());
        assert!(Namespace::with_prefix("A").is_err());
        assert!(Namespace::with_prefix("").is_err());
        assert!(Namespace::with_prefix(">").is_err());
    }
}
