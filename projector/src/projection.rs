//! What every projection shares: which streams it reads, which tables it writes, and how one
//! event is applied exactly once and in stream order.
//!
//! A projection records, in the same transaction as its read-model rows, the last version of
//! each stream it has applied (`rm_<projection>_applied`). An event at or below that version is
//! a duplicate and is skipped; an event further ahead than the next version means a delivery
//! gap, and the missing events are read from the event store, the source of truth, in the same
//! transaction before it is applied.
//!
//! A batch is applied for every projection at once ([`apply_together`]), under the projector's
//! role, which admits the batch's tenants: for each projection, two statements check and record
//! the next versions of all the batch's streams, every tenant's; then the projections written
//! most (bookings, conversations, usage, integrations) fold every tenant's events into one
//! statement per table where the order of the events allows it.
//!
//! Which tables a projection owns is written once, in the `rm_tables` catalogue of the
//! migrations. The statements on `rm_<projection>_applied` name their table by the projection,
//! so they are built here ([`AppliedSql`]) and prepared against the schema by a test; every
//! other statement of the projector is compile-checked.

use std::collections::HashMap;
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
            advance: format!(
                "update {table} a set version = s.version
                   from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[])
                        as s(tenant_id, stream_type, stream_id, after, version)
                  where a.tenant_id = s.tenant_id and a.stream_type = s.stream_type
                    and a.stream_id = s.stream_id and a.version = s.after
                  returning a.tenant_id, a.stream_type, a.stream_id"
            ),
            start: format!(
                "insert into {table} (tenant_id, stream_type, stream_id, version)
                 select tenant_id, stream_type, stream_id, version
                   from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::int[])
                        as s(tenant_id, stream_type, stream_id, after, version)
                 on conflict do nothing
                 returning tenant_id, stream_type, stream_id"
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
            load: format!(
                "insert into {table} (tenant_id, stream_type, stream_id, version)
                 select * from unnest($1::uuid[], $2::text[], $3::text[], $4::int[])"
            ),
        }
    }

    /// Applies `events` inside the caller's transaction: a duplicate is skipped, a gap filled
    /// from the store, and the tables written are those `search_path` finds (the live ones, or
    /// a rebuild's shadows). [`apply_together`] for this projection alone.
    pub async fn apply_all(
        self,
        conn: &mut PgConnection,
        store: &EventStore,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<Vec<Applied>> {
        let mut outcomes = apply_together(&[self], conn, store, events).await?;
        Ok(outcomes.pop().unwrap_or_default())
    }

    /// Each stream of this projection's in `events` (one tenant's): its first and last version
    /// there and whether they are consecutive (the claim's happy path), and where each stream
    /// is in the list.
    fn streams<'a>(
        self,
        events: &[&'a RecordedEvent],
    ) -> (Vec<Claim<'a>>, HashMap<(&'a str, &'a str), usize>) {
        let mut streams: Vec<Claim> = Vec::new();
        let mut by_stream: HashMap<(&str, &str), usize> = HashMap::new();
        for event in events
            .iter()
            .filter(|e| self.handles(&e.stream.stream_type))
        {
            let key = (
                event.stream.stream_type.as_str(),
                event.stream.stream_id.as_str(),
            );
            match by_stream.get(&key) {
                Some(&k) => {
                    let claim = &mut streams[k];
                    claim.consecutive &= event.version == claim.last + 1;
                    claim.last = event.version;
                }
                None => {
                    by_stream.insert(key, streams.len());
                    streams.push(Claim {
                        stream: &event.stream,
                        first: event.version,
                        last: event.version,
                        consecutive: true,
                        claimed: false,
                    });
                }
            }
        }
        (streams, by_stream)
    }

    /// Checks and records the next versions of every stream of this projection's in `tenants`
    /// (each tenant's events) whose events there are simply the next ones: one statement for
    /// those that start, one for those that go on. Returns the streams recorded; the others (a
    /// duplicate, a gap) are for [`Projection::plan_tenant`] to take one by one.
    async fn claim(
        self,
        conn: &mut PgConnection,
        tenants: &[(uuid::Uuid, Vec<&RecordedEvent>)],
    ) -> anyhow::Result<Claimed> {
        // The streams that start here (nothing applied yet) and those that go on: one
        // statement each, so that neither plans a join it does not need (a rebuild's claims
        // are all starts, onto shadows the planner takes to be small).
        let (mut starts, mut goes_on) = (Streams::default(), Streams::default());
        for (tenant, events) in tenants {
            for claim in self.streams(events).0.iter().filter(|c| c.consecutive) {
                let streams = if claim.first == 1 {
                    &mut starts
                } else {
                    &mut goes_on
                };
                streams.tenants.push(*tenant);
                streams.types.push(claim.stream.stream_type.as_str());
                streams.ids.push(claim.stream.stream_id.as_str());
                streams.after.push(claim.first as i32 - 1);
                streams.version.push(claim.last as i32);
            }
        }
        let sql = self.applied_sql();
        let mut claimed = Claimed::default();
        for (streams, sql) in [(goes_on, &sql.advance), (starts, &sql.start)] {
            if streams.tenants.is_empty() {
                continue;
            }
            let recorded: Vec<(uuid::Uuid, String, String)> = sqlx::query_as(sql)
                .bind(streams.tenants)
                .bind(streams.types)
                .bind(streams.ids)
                .bind(streams.after)
                .bind(streams.version)
                .fetch_all(&mut *conn)
                .await?;
            claimed.0.extend(recorded);
        }
        Ok(claimed)
    }

    /// What [`apply_together`] makes of one tenant's events, all of which concern this
    /// projection, the streams [`Projection::claim`] recorded taken as they are: each event's
    /// outcome, and the events to apply in order (a duplicate left out, a gap's missing events
    /// read from the store). The versions of the streams the claim did not record are recorded
    /// here.
    async fn plan_tenant(
        self,
        conn: &mut PgConnection,
        store: &EventStore,
        events: &[&RecordedEvent],
        claimed: &Claimed,
    ) -> anyhow::Result<(Vec<Applied>, Plan)> {
        let tenant = events[0].tenant_id;
        let sql = self.applied_sql();
        let (mut streams, by_stream) = self.streams(events);
        for claim in &mut streams {
            claim.claimed = claimed.0.contains(&(
                tenant,
                claim.stream.stream_type.clone(),
                claim.stream.stream_id.clone(),
            ));
        }
        // Where each unclaimed stream stands (its row locked): the version read, and the one
        // applied as its events are gone through one by one.
        let mut applied: HashMap<usize, (u32, u32)> = HashMap::new();
        for (k, claim) in streams.iter().enumerate().filter(|(_, c)| !c.claimed) {
            let (version,): (i32,) = sqlx::query_as(sql.current.as_str())
                .bind(tenant)
                .bind(&claim.stream.stream_type)
                .bind(&claim.stream.stream_id)
                .fetch_one(&mut *conn)
                .await?;
            applied.insert(k, (version as u32, version as u32));
        }
        let mut outcomes = Vec::with_capacity(events.len());
        let mut missing: Vec<RecordedEvent> = Vec::new();
        // The events to apply, in order: the given ones (by index) and the missing ones read
        // from the store (by their index in `missing`).
        let mut plan: Vec<Planned> = Vec::with_capacity(events.len());
        for (i, event) in events.iter().enumerate() {
            let key = (
                event.stream.stream_type.as_str(),
                event.stream.stream_id.as_str(),
            );
            // Another projection's stream (an erasure this one scrubs: no version), or one the
            // claim recorded.
            let Some((_, version)) = by_stream.get(&key).and_then(|k| applied.get_mut(k)) else {
                outcomes.push(Applied::Applied);
                plan.push(Planned::Given(i));
                continue;
            };
            if event.version <= *version {
                outcomes.push(Applied::Duplicate);
                continue;
            }
            let gap = event.version - 1 - *version;
            if gap > 0 {
                let earlier = store
                    .read_stream_range_in(
                        conn,
                        tenant,
                        &event.stream,
                        *version + 1,
                        event.version - 1,
                    )
                    .await
                    .context("failed to read a gap from the event store")?;
                anyhow::ensure!(
                    earlier.len() as u32 == gap,
                    "the event store lacks versions {}..{} of {}",
                    *version + 1,
                    event.version - 1,
                    event.stream
                );
                for e in earlier {
                    plan.push(Planned::Missing(missing.len()));
                    missing.push(e);
                }
                outcomes.push(Applied::FilledGap(gap as usize));
            } else {
                outcomes.push(Applied::Applied);
            }
            plan.push(Planned::Given(i));
            *version = event.version;
        }
        for (k, (read, version)) in &applied {
            if read == version {
                // Nothing but duplicates.
                continue;
            }
            let stream = streams[*k].stream;
            sqlx::query(sql.set.as_str())
                .bind(tenant)
                .bind(&stream.stream_type)
                .bind(&stream.stream_id)
                .bind(*version as i32)
                .execute(&mut *conn)
                .await?;
        }
        Ok((outcomes, Plan { plan, missing }))
    }

    /// Applies the fresh events of a batch's tenants (each tenant's together, in their order):
    /// set-based where the projection knows how.
    async fn apply_fresh(
        self,
        conn: &mut PgConnection,
        store: &EventStore,
        events: &[&RecordedEvent],
    ) -> anyhow::Result<()> {
        // Each event by itself, or (the set-based ones) all of them together.
        let together = match self {
            Projection::Bookings => projections::bookings::apply_all(conn, events).await,
            Projection::Conversations => {
                projections::conversations::apply_all(conn, store, events).await
            }
            Projection::Usage => projections::usage::apply_all(conn, events).await,
            Projection::Integrations => {
                projections::integrations::apply_all(conn, store, events).await
            }
            Projection::Tenants
            | Projection::Catalog
            | Projection::Agenda
            | Projection::Billing => {
                for event in events {
                    let result = match self {
                        Projection::Tenants => projections::tenants::apply(conn, event).await,
                        Projection::Catalog => projections::catalog::apply(conn, event).await,
                        Projection::Agenda => projections::agenda::apply(conn, event).await,
                        _ => projections::billing::apply(conn, event).await,
                    };
                    result.with_context(|| failed_on(self, event))?;
                }
                return Ok(());
            }
        };
        together.with_context(|| match events {
            [event] => failed_on(self, event),
            _ => format!(
                "{} failed on {} events from {} to {}",
                self.name(),
                events.len(),
                describe(events[0]),
                describe(events[events.len() - 1])
            ),
        })
    }
}

/// Applies `events` to each of `projections` inside the caller's transaction, and returns
/// each projection's outcomes (in the order of `projections`, one per event).
///
/// For the span of it the transaction takes the projector's role (`booking_projector`), whose
/// policies admit the rows of the tenants `app.tenant_ids` names: the batch's tenants. Every
/// statement binds its rows' tenants, so one statement writes any number of them.
///
/// First each projection checks and records the next versions of all the streams it reads,
/// every tenant's, with one statement (which takes their rows' locks, so two transactions never
/// interleave one stream's events). Then each projection in turn applies its fresh events, every
/// tenant's, tenant after tenant, each tenant's in their order: tenants are independent (every
/// read-model row is one tenant's), so this is the log's order as far as any row can tell, and
/// the set-based projections fold them into one statement per table. Only a stream that is not
/// simply the next versions (a duplicate, a gap) costs statements of its own.
pub async fn apply_together(
    projections: &[Projection],
    conn: &mut PgConnection,
    store: &EventStore,
    events: &[&RecordedEvent],
) -> anyhow::Result<Vec<Vec<Applied>>> {
    let mut outcomes = vec![vec![Applied::NotMine; events.len()]; projections.len()];
    let tenants = by_tenant(events, |e| projections.iter().any(|p| p.concerns(e)));
    if tenants.is_empty() {
        return Ok(outcomes);
    }
    become_projector(conn, tenants.iter().map(|(t, _)| *t)).await?;
    for (projection, outcomes) in projections.iter().zip(outcomes.iter_mut()) {
        // Each tenant's events of this projection: where they are in `events`, and themselves.
        let mut mine: Vec<Vec<usize>> = Vec::with_capacity(tenants.len());
        let mut theirs: Vec<(uuid::Uuid, Vec<&RecordedEvent>)> = Vec::with_capacity(tenants.len());
        for (tenant, all) in &tenants {
            let indexes: Vec<usize> = all
                .iter()
                .copied()
                .filter(|i| projection.concerns(events[*i]))
                .collect();
            if !indexes.is_empty() {
                theirs.push((*tenant, indexes.iter().map(|i| events[*i]).collect()));
                mine.push(indexes);
            }
        }
        let claimed = projection.claim(conn, &theirs).await?;
        let mut plans = Vec::with_capacity(theirs.len());
        for ((_, given), indexes) in theirs.iter().zip(&mine) {
            let (applied, plan) = projection.plan_tenant(conn, store, given, &claimed).await?;
            for (i, outcome) in indexes.iter().zip(applied) {
                outcomes[*i] = outcome;
            }
            plans.push(plan);
        }
        let fresh: Vec<&RecordedEvent> = plans
            .iter()
            .zip(&theirs)
            .flat_map(|(plan, (_, given))| plan.events(given))
            .collect();
        if !fresh.is_empty() {
            projection.apply_fresh(conn, store, &fresh).await?;
        }
    }
    sqlx::query("reset role").execute(&mut *conn).await?;
    Ok(outcomes)
}

/// A rebuild's first pass over its shadows ([`crate::rebuild`]): applies `events` to each of
/// `projections` inside the caller's transaction, and records the versions of `done`'s streams
/// with one plain insert per projection.
///
/// Unlike [`apply_together`], nothing is checked against recorded versions: the caller reads
/// each tenant's whole history once, in commit order, page after page, and hands over every
/// event of it exactly once, checking each stream's versions consecutive from 1 on
/// ([`TenantVersions::record`]). So every event is fresh, and what a projection has applied of
/// a stream is known without asking the database; it is written once, when the tenant's last
/// page is applied (a tenant's pages may span several calls, and `done` may name a tenant
/// with no event in `events`).
pub async fn load_together(
    projections: &[Projection],
    conn: &mut PgConnection,
    store: &EventStore,
    events: &[&RecordedEvent],
    done: &[TenantVersions],
) -> anyhow::Result<()> {
    let mut tenants: Vec<uuid::Uuid> =
        by_tenant(events, |e| projections.iter().any(|p| p.concerns(e)))
            .into_iter()
            .map(|(tenant, _)| tenant)
            .collect();
    tenants.extend(done.iter().map(|d| d.tenant));
    if tenants.is_empty() {
        return Ok(());
    }
    become_projector(conn, tenants.into_iter()).await?;
    for projection in projections {
        let fresh: Vec<&RecordedEvent> = events
            .iter()
            .copied()
            .filter(|e| projection.concerns(e))
            .collect();
        if !fresh.is_empty() {
            projection.apply_fresh(conn, store, &fresh).await?;
        }
        let mut streams = Streams::default();
        for tenant in done {
            for ((stream_type, stream_id), version) in &tenant.streams {
                if projection.handles(stream_type) {
                    streams.tenants.push(tenant.tenant);
                    streams.types.push(stream_type);
                    streams.ids.push(stream_id);
                    streams.version.push(*version as i32);
                }
            }
        }
        if !streams.tenants.is_empty() {
            sqlx::query(&projection.applied_sql().load)
                .bind(streams.tenants)
                .bind(streams.types)
                .bind(streams.ids)
                .bind(streams.version)
                .execute(&mut *conn)
                .await?;
        }
    }
    sqlx::query("reset role").execute(&mut *conn).await?;
    Ok(())
}

/// The last version of each stream of one tenant's history read so far, in a rebuild's first
/// pass ([`load_together`]).
#[derive(Debug)]
pub struct TenantVersions {
    pub tenant: uuid::Uuid,
    /// (stream type, stream id) to the last version read.
    streams: HashMap<(String, String), u32>,
}

impl TenantVersions {
    pub fn new(tenant: uuid::Uuid) -> Self {
        Self {
            tenant,
            streams: HashMap::new(),
        }
    }

    /// Takes the tenant's next event in commit order: its version must be the one after the
    /// last read of its stream (1 for a stream not seen yet), since the log holds every version
    /// of a stream and commits them in order.
    pub fn record(&mut self, event: &RecordedEvent) -> anyhow::Result<()> {
        anyhow::ensure!(
            event.tenant_id == self.tenant,
            "{} is tenant {}'s, not {}'s",
            describe(event),
            event.tenant_id,
            self.tenant
        );
        let last = self
            .streams
            .entry((
                event.stream.stream_type.clone(),
                event.stream.stream_id.clone(),
            ))
            .or_insert(0);
        anyhow::ensure!(
            event.version > *last,
            "{} read after version {last} of its stream",
            describe(event)
        );
        anyhow::ensure!(
            event.version == *last + 1,
            "the event store lacks versions {}..{} of {}",
            *last + 1,
            event.version - 1,
            event.stream
        );
        *last = event.version;
        Ok(())
    }
}

/// The indexes of the events `keep` takes, tenant by tenant (in the order each tenant first
/// appears), each tenant's in their order.
pub(crate) fn by_tenant(
    events: &[&RecordedEvent],
    keep: impl Fn(&RecordedEvent) -> bool,
) -> Vec<(uuid::Uuid, Vec<usize>)> {
    let mut tenants: Vec<(uuid::Uuid, Vec<usize>)> = Vec::new();
    let mut index: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (i, event) in events.iter().enumerate().filter(|(_, e)| keep(e)) {
        let slot = *index.entry(event.tenant_id).or_insert_with(|| {
            tenants.push((event.tenant_id, Vec::new()));
            tenants.len() - 1
        });
        tenants[slot].1.push(i);
    }
    tenants
}

/// Takes the projector's role for the rest of the transaction (or until `reset role`), and names
/// the tenants whose rows it may read and write (`app.tenant_ids`, a JSON object keyed by
/// them): one statement.
async fn become_projector(
    conn: &mut PgConnection,
    tenants: impl Iterator<Item = uuid::Uuid>,
) -> sqlx::Result<()> {
    // A JSON object keyed by the tenants (migration 31).
    let list: serde_json::Map<String, serde_json::Value> = tenants
        .map(|t| (t.to_string(), serde_json::Value::Bool(true)))
        .collect();
    sqlx::query(
        "select set_config('app.tenant_ids', $1, true), set_config('role', 'booking_projector', true)",
    )
    .bind(serde_json::Value::Object(list).to_string())
    .execute(conn)
    .await?;
    Ok(())
}

/// The streams of a claim statement, column by column.
#[derive(Default)]
struct Streams<'a> {
    tenants: Vec<uuid::Uuid>,
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    after: Vec<i32>,
    version: Vec<i32>,
}

/// The streams a claim recorded: (tenant, stream type, stream id).
#[derive(Default)]
struct Claimed(std::collections::HashSet<(uuid::Uuid, String, String)>);

fn describe(event: &RecordedEvent) -> String {
    format!("{} {} v{}", event.event_type, event.stream, event.version)
}

fn failed_on(projection: Projection, event: &RecordedEvent) -> String {
    format!("{} failed on {}", projection.name(), describe(event))
}

/// One stream's events in a tenant's share of a batch.
struct Claim<'a> {
    stream: &'a eventstore::StreamRef,
    first: u32,
    last: u32,
    /// Each version one more than the one before.
    consecutive: bool,
    /// The claim statement recorded `last` as applied.
    claimed: bool,
}

/// An event to apply: one of those given, or one read from the store to fill a gap.
enum Planned {
    Given(usize),
    Missing(usize),
}

/// One tenant's events to apply ([`Projection::plan_tenant`]), in order.
struct Plan {
    plan: Vec<Planned>,
    /// The events a gap lacked, read from the store.
    missing: Vec<RecordedEvent>,
}

impl Plan {
    /// The events to apply, of those `given` and those read.
    fn events<'a>(
        &'a self,
        given: &[&'a RecordedEvent],
    ) -> impl Iterator<Item = &'a RecordedEvent> {
        self.plan.iter().map(move |p| match p {
            Planned::Given(i) => given[*i],
            Planned::Missing(m) => &self.missing[*m],
        })
    }
}

/// A customer's erasure: the erased customer's subject (their conversation's id) and their
/// bookings, whose rows name them.
pub(crate) struct Erasure {
    pub subject: uuid::Uuid,
    pub bookings: Vec<uuid::Uuid>,
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
    /// Records the next versions of many streams of many tenants at once: for each stream, its
    /// last version here where the one applied is the one before its first. Returns the streams
    /// recorded (tenant, type, id).
    pub advance: String,
    /// The same for streams starting at version 1 (after version 0): recorded where none is.
    pub start: String,
    /// The version applied so far (0 for a new stream), locking the stream's row.
    pub current: String,
    /// Records a version after duplicates or a gap.
    pub set: String,
    /// Records the versions of streams of which nothing is recorded (a rebuild's first pass,
    /// [`load_together`]): a plain insert.
    pub load: String,
}

impl AppliedSql {
    pub fn all(&self) -> [&str; 5] {
        [
            &self.advance,
            &self.start,
            &self.current,
            &self.set,
            &self.load,
        ]
    }
}

/// Decodes a recorded event into its aggregate's event type.
pub fn decode<E: domain::event::DomainEvent>(event: &RecordedEvent) -> anyhow::Result<E> {
    Ok(domain::event::decode(&event.event_type, &event.payload)?)
}

#[cfg(test)]
mod tests {
    use eventstore::{EventMetadata, Position, StreamRef};
    use uuid::Uuid;

    use super::*;

    fn event(tenant: Uuid, stream_id: &str, version: u32) -> RecordedEvent {
        RecordedEvent {
            position: Position::START,
            tenant_id: tenant,
            stream: StreamRef::new("booking", stream_id),
            version,
            event_id: Uuid::new_v4(),
            event_type: "BookingCancelled".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            metadata: EventMetadata::default(),
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_tenant_s_versions_are_taken_consecutive_per_stream_and_nothing_else() {
        let tenant = Uuid::new_v4();
        let mut versions = TenantVersions::new(tenant);
        for (stream, version) in [("a", 1), ("b", 1), ("a", 2), ("a", 3), ("b", 2)] {
            versions.record(&event(tenant, stream, version)).unwrap();
        }
        let last = |versions: &TenantVersions| {
            let of = |id: &str| versions.streams[&("booking".to_string(), id.to_string())];
            (of("a"), of("b"))
        };
        assert_eq!(last(&versions), (3, 2));

        let again = versions.record(&event(tenant, "a", 3)).unwrap_err();
        assert!(again.to_string().contains("after version 3"), "{again}");
        let hole = versions.record(&event(tenant, "b", 5)).unwrap_err();
        assert!(hole.to_string().contains("lacks versions 3..4"), "{hole}");
        let other = versions.record(&event(Uuid::new_v4(), "c", 1)).unwrap_err();
        assert!(other.to_string().contains("not"), "{other}");
        assert_eq!(last(&versions), (3, 2), "a refused event records nothing");
        assert_eq!(versions.streams.len(), 2);
    }
}
