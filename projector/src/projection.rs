//! What every projection shares: which streams it reads, which tables it writes, and how one
//! event is applied exactly once and in stream order.
//!
//! A projection records, in the same transaction as its read-model rows, the last version of
//! each stream it has applied (`rm_<projection>_applied`). An event at or below that version is
//! a duplicate and is skipped; an event further ahead than the next version means a delivery
//! gap, and the missing events are read from the event store, the source of truth, in the same
//! transaction before it is applied.

use std::fmt;
use std::str::FromStr;

use anyhow::Context as _;
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
}

impl Projection {
    pub const ALL: [Projection; 6] = [
        Projection::Tenants,
        Projection::Catalog,
        Projection::Bookings,
        Projection::Agenda,
        Projection::Conversations,
        Projection::Usage,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Projection::Tenants => "tenants",
            Projection::Catalog => "catalog",
            Projection::Bookings => "bookings",
            Projection::Agenda => "agenda",
            Projection::Conversations => "conversations",
            Projection::Usage => "usage",
        }
    }

    /// The stream types whose events it reads.
    pub fn stream_types(self) -> &'static [&'static str] {
        match self {
            Projection::Tenants => &["tenant", "user"],
            Projection::Catalog => &["bot_config"],
            Projection::Bookings => &["booking"],
            Projection::Agenda => &["agenda"],
            Projection::Conversations => &["conversation"],
            Projection::Usage => &["conversation", "booking"],
        }
    }

    pub fn handles(self, stream_type: &str) -> bool {
        self.stream_types().contains(&stream_type)
    }

    /// Its tables, the applied-versions table last.
    pub fn tables(self) -> &'static [&'static str] {
        match self {
            Projection::Tenants => &["rm_tenants", "rm_users", "rm_tenants_applied"],
            Projection::Catalog => &["rm_bot_config", "rm_services", "rm_catalog_applied"],
            Projection::Bookings => &["rm_bookings", "rm_booking_history", "rm_bookings_applied"],
            Projection::Agenda => &["rm_agenda", "rm_agenda_applied"],
            Projection::Conversations => &[
                "rm_conversations",
                "rm_messages",
                "rm_conversations_applied",
            ],
            Projection::Usage => &["rm_usage", "rm_usage_applied"],
        }
    }

    /// Applies `event` (a duplicate is skipped, a gap filled from the store) inside the
    /// caller's transaction, whose `app.tenant_id` is the event's tenant.
    pub async fn apply(
        self,
        conn: &mut PgConnection,
        target: Target,
        store: &EventStore,
        event: &RecordedEvent,
    ) -> anyhow::Result<Applied> {
        if !self.handles(&event.stream.stream_type) {
            return Ok(Applied::NotMine);
        }
        let applied_table = target.table(&format!("rm_{}_applied", self.name()));
        // The happy path is one statement that both checks and records the version (and takes
        // the stream's row lock, so two consumers never interleave one stream's events).
        let claim = if event.version == 1 {
            format!(
                "insert into {applied_table} (tenant_id, stream_type, stream_id, version)
                 select $1, $2, $3, $4 on conflict do nothing"
            )
        } else {
            format!(
                "update {applied_table} set version = $4
                 where tenant_id = $1 and stream_type = $2 and stream_id = $3 and version = $4 - 1"
            )
        };
        let claimed = sqlx::query(&claim)
            .bind(event.tenant_id)
            .bind(&event.stream.stream_type)
            .bind(&event.stream.stream_id)
            .bind(event.version as i32)
            .execute(&mut *conn)
            .await?
            .rows_affected()
            == 1;
        if claimed {
            self.apply_fresh(conn, target, event).await?;
            return Ok(Applied::Applied);
        }
        // A duplicate, or a gap: see where the stream stands.
        let (applied,): (i32,) = sqlx::query_as(&format!(
            "insert into {applied_table} (tenant_id, stream_type, stream_id, version)
             values ($1, $2, $3, 0)
             on conflict (tenant_id, stream_type, stream_id)
             do update set version = {applied_table}.version
             returning version"
        ))
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
            self.apply_fresh(conn, target, earlier).await?;
        }
        self.apply_fresh(conn, target, event).await?;
        sqlx::query(&format!(
            "update {applied_table} set version = $4
             where tenant_id = $1 and stream_type = $2 and stream_id = $3"
        ))
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
        target: Target,
        event: &RecordedEvent,
    ) -> anyhow::Result<()> {
        let result = match self {
            Projection::Tenants => projections::tenants::apply(conn, target, event).await,
            Projection::Catalog => projections::catalog::apply(conn, target, event).await,
            Projection::Bookings => projections::bookings::apply(conn, target, event).await,
            Projection::Agenda => projections::agenda::apply(conn, target, event).await,
            Projection::Conversations => {
                projections::conversations::apply(conn, target, event).await
            }
            Projection::Usage => projections::usage::apply(conn, target, event).await,
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

impl fmt::Display for Projection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "no projection is called {0:?} (known: tenants, catalog, bookings, agenda, conversations, usage)"
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

/// Which copy of the tables a write goes to: the live ones, or a rebuild's shadows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Live,
    Shadow,
}

impl Target {
    pub fn table(self, name: &str) -> String {
        match self {
            Target::Live => name.to_owned(),
            Target::Shadow => format!("{name}__next"),
        }
    }
}

/// Decodes a recorded event into its aggregate's event type.
pub fn decode<E: domain::event::DomainEvent>(event: &RecordedEvent) -> anyhow::Result<E> {
    Ok(domain::event::decode(
        &event.event_type,
        event.payload.clone(),
    )?)
}
