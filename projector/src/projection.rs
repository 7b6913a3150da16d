//! What every projection shares: which streams it reads, which tables it writes, and how one
//! event is applied exactly once and in stream order.
//!
//! A projection records, in the same transaction as its read-model rows, the last version of
//! each stream it has applied (`rm_<projection>_applied`). An event at or below that version is
//! a duplicate and is skipped; an event further ahead than the next version means a delivery
//! gap, and the missing events are read from the event store, the source of truth, in the same
//! transaction before it is applied.
//!
//! Which tables a projection owns is written once, in the `rm_tables` catalogue of the
//! migrations. The statements on `rm_<projection>_applied` name their table by the projection,
//! so they are built here ([`AppliedSql`]) and prepared against the schema by a test; every
//! other statement of the projector is compile-checked.

use std::fmt;
use std::str::FromStr;

use anyhow::Context as _;
use domain::DomainEvent as _;
use domain::access::UserEvent;
use domain::agenda::AgendaEvent;
use domain::billing::BillingEvent;
use domain::booking::BookingEvent;
use domain::bot_config::BotConfigEvent;
use domain::conversation::ConversationEvent;
use domain::tenant::TenantEvent;
use domain::webhook::WebhookEvent;
use eventstore::{EventStore, RecordedEvent};
use sqlx::PgConnection;

use crate::projections;

/// Every projection the projector maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Projection {
    /// Tenant profile, status, plan, WhatsApp number; users (no secrets).
    Tenants,
    /// Bot configuration and services.
    Catalog,
    /// Bookings and each booking's history.
    Bookings,
    /// What each resource holds on each day (availability).
    Agenda,
    /// The inbox and each conversation's messages with their delivery status.
    Conversations,
    /// Messages and bookings per tenant and month.
    Usage,
    /// A business's subscription, its usage alerts and its invoices.
    Billing,
    /// The public events feed: each tenant's public events, numbered (`rm_public_events`).
    Integrations,
}

impl Projection {
    pub const ALL: [Projection; 8] = [
        Projection::Tenants,
        Projection::Catalog,
        Projection::Bookings,
        Projection::Agenda,
        Projection::Conversations,
        Projection::Usage,
        Projection::Billing,
        Projection::Integrations,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Tenants => "tenants",
            Projection::Catalog => "catalog",
            Projection::Bookings => "bookings",
            Projection::Agenda => "agenda",
            Projection::Conversations => "conversations",
            Projection::Usage => "usage",
            Projection::Billing => "billing",
            Projection::Integrations => "integrations",
        }
    }

    /// The stream types whose events it reads.
    pub fn stream_types(self) -> &'static [&'static str] {
        match self {
            Projection::Tenants => &[TenantEvent::STREAM_TYPE, UserEvent::STREAM_TYPE],
            Projection::Catalog => &[BotConfigEvent::STREAM_TYPE],
            Projection::Bookings => &[BookingEvent::STREAM_TYPE],
            Projection::Agenda => &[AgendaEvent::STREAM_TYPE],
            Projection::Conversations => &[ConversationEvent::STREAM_TYPE],
            Projection::Usage => &[ConversationEvent::STREAM_TYPE, BookingEvent::STREAM_TYPE],
            Projection::Billing => &[BillingEvent::STREAM_TYPE],
            Projection::Integrations => &[
                BookingEvent::STREAM_TYPE,
                ConversationEvent::STREAM_TYPE,
                WebhookEvent::STREAM_TYPE,
            ],
        }
    }

    /// Whether `event` is anything to this projection: an event of its streams, or the
    /// erasure of a customer it shows from another stream.
    pub fn concerns(self, event: &RecordedEvent) -> bool {
        self.handles(&event.stream.stream_type)
            || (self == Projection::Bookings
                && event.stream.stream_type == ConversationEvent::STREAM_TYPE
                && event.event_type == "CustomerErased")
    }

    pub fn handles(self, stream_type: &str) -> bool {
        self.stream_types().contains(&stream_type)
    }

    /// The statements on this projection's applied versions (built once per process).
    pub fn applied_sql(self) -> &'static AppliedSql {
        static ALL: std::sync::LazyLock<Vec<AppliedSql>> = std::sync::LazyLock::new(|| {
            Projection::ALL
                .iter()
                .map(|p| p.build_applied_sql())
                .collect()
        });
        let index = Projection::ALL
            .iter()
            .position(|p| *p == self)
            .expect("every projection is in ALL");
        &ALL[index]
    }

    fn build_applied_sql(self) -> AppliedSql {
        let table = format!("rm_{}_applied", self.name());
        AppliedSql {
            claim_first: format!(
                "insert into {table} (tenant_id, stream_type, stream_id, version)
                 select $1, $2, $3, $4 on conflict do nothing"
            ),
            claim_next: format!(
                "update {table} set version = $4
                 where tenant_id = $1 and stream_type = $2 and stream_id = $3 and version = $4 - 1"
            ),
            current: format!(
                "insert into {table} (tenant_id, stream_type, stream_id, version)
                 values ($1, $2, $3, 0)
                 on conflict (tenant_id, stream_type, stream_id)
                 do update set version = {table}.version
                 returning version"
            ),
            set: format!(
                "update {table} set version = $4
                 where tenant_id = $1 and stream_type = $2 and stream_id = $3"
            ),
        }
    }

    /// Applies `event` (a duplicate is skipped, a gap filled from the store) inside the
    /// caller's transaction, whose `app.tenant_id` is the event's tenant. The tables written
    /// are those `search_path` finds: the live ones, or a rebuild's shadows.
    pub async fn apply(
        self,
        conn: &mut PgConnection,
        store: &EventStore,
        event: &RecordedEvent,
    ) -> anyhow::Result<Applied> {
        if let Some(erased) = foreign_erasure(self, event)? {
            // Another projection's stream: scrubbed in place, which is idempotent, so without
            // a version of its own; in the stream's order, after what it scrubs.
            projections::bookings::scrub(conn, event, &erased).await?;
            return Ok(Applied::Applied);
        }
        if !self.handles(&event.stream.stream_type) {
            return Ok(Applied::NotMine);
        }
        let sql = self.applied_sql();
        // The happy path is one statement that both checks and records the version (and takes
        // the stream's row lock, so two consumers never interleave one stream's events).
        let claim = if event.version == 1 {
            sql.claim_first.as_str()
        } else {
            sql.claim_next.as_str()
        };
        let claimed = sqlx::query(claim)
            .bind(event.tenant_id)
            .bind(&event.stream.stream_type)
            .bind(&event.stream.stream_id)
            .bind(event.version as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        if claimed {
            self.apply_fresh(conn, store, event).await?;
            return Ok(Applied::Applied);
        }
        // A duplicate, or a gap: see where the stream stands.
        let (applied,): (i32,) = sqlx::query_as(sql.current.as_str())
            .bind(event.tenant_id)
            .bind(&event.stream.stream_type)
            .bind(&event.stream.stream_id)
            .fetch_one(&mut *conn)
            .await?;
        let applied = applied as u32;
        if event.version <= applied {
            return Ok(Applied::Duplicate);
        }
        let missing = store
            .read_stream_range_in(
                conn,
                event.tenant_id,
                &event.stream,
                applied + 1,
                event.version - 1,
            )
            .await
            .context("failed to read a gap from the event store")?;
        anyhow::ensure!(
            missing.len() as u32 == event.version - 1 - applied,
            "the event store lacks versions {}..{} of {}",
            applied + 1,
            event.version - 1,
            event.stream
        );
        for earlier in &missing {
            self.apply_fresh(conn, store, earlier).await?;
        }
        self.apply_fresh(conn, store, event).await?;
        sqlx::query(sql.set.as_str())
            .bind(event.tenant_id)
            .bind(&event.stream.stream_type)
            .bind(&event.stream.stream_id)
            .bind(event.version as i32)
            .execute(&mut *conn)
            .await?;
        Ok(Applied::FilledGap(missing.len()))
    }

    async fn apply_fresh(
        self,
        conn: &mut PgConnection,
        store: &EventStore,
        event: &RecordedEvent,
    ) -> anyhow::Result<()> {
        let result = match self {
            Projection::Tenants => projections::tenants::apply(conn, event).await,
            Projection::Catalog => projections::catalog::apply(conn, event).await,
            Projection::Bookings => projections::bookings::apply(conn, event).await,
            Projection::Agenda => projections::agenda::apply(conn, event).await,
            Projection::Conversations => {
                projections::conversations::apply(conn, store, event).await
            }
            Projection::Usage => projections::usage::apply(conn, event).await,
            Projection::Billing => projections::billing::apply(conn, event).await,
            Projection::Integrations => projections::integrations::apply(conn, store, event).await,
        };
        result.with_context(|| {
            format!(
                "{} failed on {} {} v{}",
                self.name(),
                event.event_type,
                event.stream,
                event.version
            )
        })
    }
}

/// A customer's erasure: the erased customer's subject (their conversation's id) and their
/// bookings, whose rows name them.
pub(crate) struct Erasure {
    pub subject: uuid::Uuid,
    pub bookings: Vec<uuid::Uuid>,
}

/// The erasure of a customer shown by a projection that does not follow conversations (the
/// bookings'): scrubbed in place, idempotently.
fn foreign_erasure(
    projection: Projection,
    event: &RecordedEvent,
) -> anyhow::Result<Option<Erasure>> {
    if !projection.concerns(event) || projection.handles(&event.stream.stream_type) {
        return Ok(None);
    }
    erasure(event)
}

/// The erasure `event` is, if it is one.
pub(crate) fn erasure(event: &RecordedEvent) -> anyhow::Result<Option<Erasure>> {
    if event.stream.stream_type != ConversationEvent::STREAM_TYPE
        || event.event_type != "CustomerErased"
    {
        return Ok(None);
    }
    let ConversationEvent::CustomerErased { bookings } = decode::<ConversationEvent>(event)? else {
        return Ok(None);
    };
    Ok(Some(Erasure {
        subject: event.stream.stream_id.parse()?,
        bookings: bookings.iter().map(|b| b.uuid()).collect(),
    }))
}

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no projection is called {0:?} (known: tenants, catalog, bookings, agenda, conversations, usage, billing, integrations)"
)]
pub struct UnknownProjection(String);

impl FromStr for Projection {
    type Err = UnknownProjection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Projection::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProjection(s.to_owned()))
    }
}

/// What happened to one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Applied,
    /// Applied after the given number of missing events read from the store.
    FilledGap(usize),
    /// Seen before: nothing written.
    Duplicate,
    /// Not a stream this projection reads.
    NotMine,
}

/// The statements on a projection's `rm_<projection>_applied` table (see
/// [`Projection::applied_sql`]).
#[derive(Debug, Clone)]
pub struct AppliedSql {
    /// Records version 1 of a stream not seen before.
    pub claim_first: String,
    /// Records the next version of a stream.
    pub claim_next: String,
    /// The version applied so far (0 for a new stream), locking the stream's row.
    pub current: String,
    /// Records a version after a gap was filled.
    pub set: String,
}

impl AppliedSql {
    pub fn all(&self) -> [&str; 4] {
        [
            &self.claim_first,
            &self.claim_next,
            &self.current,
            &self.set,
        ]
    }
}

/// Decodes a recorded event into its aggregate's event type.
pub fn decode<E: domain::event::DomainEvent>(event: &RecordedEvent) -> anyhow::Result<E> {
    Ok(domain::event::decode(
        &event.event_type,
        event.payload.clone(),
    )?)
}
