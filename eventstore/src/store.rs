//! Appending and reading one tenant's events, as the application role under row-level security.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::AppendError;
use crate::read::{self, EventRow, RowFilter};
use crate::tx::TenantTx;
use crate::types::{
    AppendOutcome, AppendedStream, EventMetadata, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StreamAppend, StreamRef, TenantId,
};
use crate::upcast::Upcasters;
use crate::wake::Wakeups;

/// How often `append` retries by itself when a stream appended with [`ExpectedVersion::Any`]
/// moved under it. `Any` writers queue on a per-stream lock, so this only happens when a
/// writer with an exact expectation got in between. Exact expectations are never retried
/// here: the caller must decide again.
const ANY_VERSION_ATTEMPTS: usize = 5;

/// Events per append, all streams together: a command produces a handful, never thousands.
pub const MAX_EVENTS_PER_APPEND: usize = 1_000;

/// The tenant-facing event store. Connects as the application role: every operation runs in a
/// [`TenantTx`] and sees one tenant only.
#[derive(Clone, Debug)]
pub struct EventStore {
    pool: PgPool,
    upcasters: Arc<Upcasters>,
    wakeups: Option<Wakeups>,
}

impl EventStore {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            upcasters: Arc::new(Upcasters::new()),
            wakeups: None,
        }
    }

    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// Announce commits on NATS so log readers wake at once.
    pub fn with_wakeups(mut self, wakeups: Wakeups) -> Self {
        self.wakeups = Some(wakeups);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Starts a unit of work for one tenant.
    pub async fn begin(&self, tenant_id: TenantId) -> Result<TenantTx, sqlx::Error> {
        TenantTx::begin(&self.pool, tenant_id, self.wakeups.clone()).await
    }

    /// Brings a stream's history from elsewhere (a business's previous system, a demo's past):
    /// the stream must not exist yet, and each event keeps the time it happened as its
    /// `recorded_at`. Its place in the commit order is the import's, so every reader sees it
    /// after what was there before, as with any append. A stream that exists is a
    /// [`AppendError::Conflict`].
    pub async fn import(
        &self,
        tenant_id: TenantId,
        stream: &StreamRef,
        events: Vec<(NewEvent, DateTime<Utc>)>,
    ) -> Result<(), AppendError> {
        let (events, times): (Vec<NewEvent>, Vec<DateTime<Utc>>) = events.into_iter().unzip();
        let append = StreamAppend {
            stream: stream.clone(),
            expected: ExpectedVersion::NoStream,
            events,
        };
        validate(std::slice::from_ref(&append))?;
        let versions: Vec<i32> = (1..=append.events.len() as i32).collect();
        let ids: Vec<Uuid> = append.events.iter().map(|e| e.event_id).collect();
        let types: Vec<String> = append.events.iter().map(|e| e.event_type.clone()).collect();
        let schemas: Vec<i32> = append
            .events
            .iter()
            .map(|e| e.schema_version as i32)
            .collect();
        let payloads: Vec<serde_json::Value> =
            append.events.iter().map(|e| e.payload.clone()).collect();
        let metadata = append
            .events
            .iter()
            .map(|e| serde_json::to_value(&e.metadata))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| AppendError::Invalid(format!("metadata: {e}")))?;
        let mut tx = self.begin(tenant_id).await?;
        let inserted = sqlx::query!(
            "insert into events (tenant_id, stream_type, stream_id, version, event_id, event_type,
                                 schema_version, payload, metadata, recorded_at)
             select $1, $2, $3, x.version, x.event_id, x.event_type, x.schema_version, x.payload,
                    x.metadata, x.recorded_at
               from unnest($4::int[], $5::uuid[], $6::text[], $7::int[], $8::jsonb[],
                           $9::jsonb[], $10::timestamptz[])
                    as x(version, event_id, event_type, schema_version, payload, metadata,
                         recorded_at)
             on conflict on constraint events_stream_version do nothing",
            tenant_id,
            stream.stream_type,
            stream.stream_id,
            &versions,
            &ids,
            &types,
            &schemas,
            &payloads,
            &metadata,
            &times
        )
        .execute(tx.conn())
        .await?;
        if inserted.rows_affected() != versions.len() as u64 {
            let actual = current_version(tx.conn(), stream).await?;
            tx.rollback().await?;
            return Err(AppendError::Conflict {
                stream: stream.clone(),
                expected: ExpectedVersion::NoStream,
                actual,
            });
        }
        tx.appended = true;
        tx.commit().await?;
        Ok(())
    }

    /// Appends to one or more streams of a tenant in one transaction: all or nothing.
    ///
    /// If every event id already exists as this same append (a retried command), nothing is
    /// written and the first append's outcome is returned with `replayed: true`.
    pub async fn append(
        &self,
        tenant_id: TenantId,
        appends: Vec<StreamAppend>,
    ) -> Result<AppendOutcome, AppendError> {
        validate(&appends)?;
        for _ in 0..ANY_VERSION_ATTEMPTS {
            let inserted = if appends.len() == 1 {
                // One statement in its own implicit transaction: one round trip.
                let mut conn = self.pool.acquire().await?;
                insert_all(&mut conn, tenant_id, &appends).await?
            } else {
                let mut tx = self.begin(tenant_id).await?;
                let inserted = insert_all(tx.conn(), tenant_id, &appends).await?;
                match inserted {
                    Inserted::Written(_) => tx.commit().await?,
                    Inserted::Refused => tx.rollback().await?,
                }
                inserted
            };
            match inserted {
                Inserted::Written(outcome) => {
                    if let Some(wakeups) = &self.wakeups {
                        wakeups.announce();
                    }
                    return Ok(outcome);
                }
                Inserted::Refused => {
                    let mut tx = self.begin(tenant_id).await?;
                    let resolution = resolve_refusal(tx.conn(), &appends).await;
                    tx.rollback().await?;
                    match resolution? {
                        Some(final_answer) => return final_answer,
                        None => continue, // an `Any` stream moved under us: try again
                    }
                }
            }
        }
        Err(AppendError::Database(sqlx::Error::Protocol(format!(
            "append kept racing with other writers after {ANY_VERSION_ATTEMPTS} attempts"
        ))))
    }

    /// Appends inside a caller's unit of work (e.g. together with a secrets-table write). The
    /// append is a savepoint: if it is refused, the caller's transaction stays usable. The
    /// caller commits; readers are woken then.
    pub async fn append_in(
        &self,
        tx: &mut TenantTx,
        appends: Vec<StreamAppend>,
    ) -> Result<AppendOutcome, AppendError> {
        validate(&appends)?;
        let tenant_id = tx.tenant_id();
        let mut savepoint = sqlx::Acquire::begin(tx.transaction()).await?;
        match insert_all(&mut savepoint, tenant_id, &appends).await? {
            Inserted::Written(outcome) => {
                savepoint.commit().await?;
                tx.appended = true;
                Ok(outcome)
            }
            Inserted::Refused => {
                savepoint.rollback().await?;
                match resolve_refusal(tx.conn(), &appends).await? {
                    Some(final_answer) => final_answer,
                    None => Err(AppendError::Database(sqlx::Error::Protocol(
                        "a stream appended with ExpectedVersion::Any moved during the transaction"
                            .into(),
                    ))),
                }
            }
        }
    }

    /// A stream's events from `from_version` (inclusive, 1-based) on, in version order.
    pub async fn read_stream(
        &self,
        tenant_id: TenantId,
        stream: &StreamRef,
        from_version: u32,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        // One statement in its own implicit transaction (`read_stream` sets the tenant for
        // it): one round trip.
        let rows = sqlx::query_as!(
            EventRow,
            r#"select global_position as "global_position!", tx_id as "tx_id!",
                      tenant_id as "tenant_id!", stream_type as "stream_type!",
                      stream_id as "stream_id!", version as "version!", event_id as "event_id!",
                      event_type as "event_type!", schema_version as "schema_version!",
                      payload as "payload!", metadata as "metadata!: Json<EventMetadata>",
                      recorded_at as "recorded_at!"
                 from read_stream($1, $2, $3, $4)"#,
            tenant_id,
            &stream.stream_type,
            &stream.stream_id,
            from_version as i32
        )
        .fetch_all(&self.pool)
        .await?;
        read::open(&self.pool, rows, &self.upcasters).await
    }

    /// A stream's events with versions in `[from_version, to_version]`, read on a connection
    /// the caller holds (inside its tenant transaction): a projection filling a gap reads the
    /// missing events in the same transaction as its writes.
    pub async fn read_stream_range_in(
        &self,
        conn: &mut sqlx::PgConnection,
        tenant_id: TenantId,
        stream: &StreamRef,
        from_version: u32,
        to_version: u32,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let rows = sqlx::query_as!(
            EventRow,
            r#"select global_position, transaction_id::text::bigint as "tx_id!", tenant_id,
                      stream_type, stream_id, version, event_id, event_type, schema_version,
                      payload, metadata as "metadata: Json<EventMetadata>", recorded_at
                 from events
                where tenant_id = $1 and stream_type = $2 and stream_id = $3
                  and version between $4 and $5
                order by version"#,
            tenant_id,
            &stream.stream_type,
            &stream.stream_id,
            from_version as i32,
            to_version as i32
        )
        .fetch_all(&mut *conn)
        .await?;
        read::open_in(conn, rows, &self.upcasters).await
    }

    /// Several streams in one query, each in version order (streams without events are
    /// absent from the map).
    pub async fn read_streams(
        &self,
        tenant_id: TenantId,
        streams: &[StreamRef],
    ) -> Result<std::collections::HashMap<StreamRef, Vec<RecordedEvent>>, sqlx::Error> {
        let from: Vec<(StreamRef, u32)> = streams.iter().map(|s| (s.clone(), 1)).collect();
        self.read_streams_from(tenant_id, &from).await
    }

    /// Several streams in one query, each from its own version on (inclusive, 1-based): a
    /// reader that kept a stream folded up to some version reads only what came after. Streams
    /// without events from there are absent from the map.
    pub async fn read_streams_from(
        &self,
        tenant_id: TenantId,
        streams: &[(StreamRef, u32)],
    ) -> Result<std::collections::HashMap<StreamRef, Vec<RecordedEvent>>, sqlx::Error> {
        let types: Vec<String> = streams.iter().map(|(s, _)| s.stream_type.clone()).collect();
        let ids: Vec<String> = streams.iter().map(|(s, _)| s.stream_id.clone()).collect();
        let from: Vec<i32> = streams
            .iter()
            .map(|(_, v)| i32::try_from(*v).unwrap_or(i32::MAX))
            .collect();
        // One statement in its own implicit transaction (`read_streams_from` sets the tenant
        // for it): one round trip.
        let rows = sqlx::query_as!(
            EventRow,
            r#"select global_position as "global_position!", tx_id as "tx_id!",
                      tenant_id as "tenant_id!", stream_type as "stream_type!",
                      stream_id as "stream_id!", version as "version!", event_id as "event_id!",
                      event_type as "event_type!", schema_version as "schema_version!",
                      payload as "payload!", metadata as "metadata!: Json<EventMetadata>",
                      recorded_at as "recorded_at!"
                 from read_streams_from($1, $2, $3, $4)"#,
            tenant_id,
            &types,
            &ids,
            &from
        )
        .fetch_all(&self.pool)
        .await?;
        let events = read::open(&self.pool, rows, &self.upcasters).await?;
        let mut out: std::collections::HashMap<StreamRef, Vec<RecordedEvent>> = Default::default();
        for event in events {
            out.entry(event.stream.clone()).or_default().push(event);
        }
        Ok(out)
    }

    /// The events of every stream of `stream_type` whose id lies in `[from_id, to_id]`, by
    /// stream then version: e.g. one resource's agenda days over a date range in one query.
    pub async fn read_streams_between(
        &self,
        tenant_id: TenantId,
        stream_type: &str,
        from_id: &str,
        to_id: &str,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        // One statement in its own implicit transaction: one round trip.
        let rows = sqlx::query_as!(
            EventRow,
            r#"select global_position as "global_position!", tx_id as "tx_id!",
                      tenant_id as "tenant_id!", stream_type as "stream_type!",
                      stream_id as "stream_id!", version as "version!", event_id as "event_id!",
                      event_type as "event_type!", schema_version as "schema_version!",
                      payload as "payload!", metadata as "metadata!: Json<EventMetadata>",
                      recorded_at as "recorded_at!"
                 from read_streams_between($1, $2, $3, $4)"#,
            tenant_id,
            stream_type,
            from_id,
            to_id
        )
        .fetch_all(&self.pool)
        .await?;
        read::open(&self.pool, rows, &self.upcasters).await
    }

    /// How many events of `event_type` the tenant recorded in `[from, to)`. Indexed for
    /// `AppointmentRequested` (a plan's limits count bookings); other types scan the tenant's
    /// events.
    pub async fn count_events(
        &self,
        tenant_id: TenantId,
        event_type: &str,
        from: chrono::DateTime<chrono::Utc>,
        to: chrono::DateTime<chrono::Utc>,
    ) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin(tenant_id).await?;
        let count = sqlx::query_scalar!(
            r#"select count(*) as "count!" from events
                where tenant_id = $1 and event_type = $2 and recorded_at >= $3 and recorded_at < $4"#,
            tenant_id,
            event_type,
            from,
            to
        )
        .fetch_one(tx.conn())
        .await?;
        tx.rollback().await?;
        Ok(count as u64)
    }

    /// The current version of a stream (0 if it does not exist).
    pub async fn stream_version(
        &self,
        tenant_id: TenantId,
        stream: &StreamRef,
    ) -> Result<u32, sqlx::Error> {
        let mut tx = self.begin(tenant_id).await?;
        let version = current_version(tx.conn(), stream).await?;
        tx.rollback().await?;
        Ok(version)
    }

    /// Up to `limit` of this tenant's events after `after`, in commit order, never skipping an
    /// event that commits late (see [`crate::GlobalLog::read_all`]).
    pub async fn read_tenant(
        &self,
        tenant_id: TenantId,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let mut tx = self.begin(tenant_id).await?;
        let rows =
            read::read_in_commit_order(tx.conn(), RowFilter::Tenant(tenant_id), after, limit)
                .await?;
        let events = read::open_in(tx.conn(), rows, &self.upcasters).await?;
        tx.rollback().await?;
        Ok(events)
    }
}

/// Checks what the database would otherwise reject less clearly, before any I/O.
fn validate(appends: &[StreamAppend]) -> Result<(), AppendError> {
    let invalid = |msg: String| Err(AppendError::Invalid(msg));
    if appends.is_empty() {
        return invalid("nothing to append".into());
    }
    let total: usize = appends.iter().map(|a| a.events.len()).sum();
    if total > MAX_EVENTS_PER_APPEND {
        return invalid(format!(
            "{total} events in one append (at most {MAX_EVENTS_PER_APPEND})"
        ));
    }
    let mut streams = HashSet::new();
    let mut ids = HashSet::new();
    for append in appends {
        let stream = &append.stream;
        if !is_token(&stream.stream_type, 64) {
            return invalid(format!(
                "stream type {:?} must be 1 to 64 characters of A-Z a-z 0-9 _ -",
                stream.stream_type
            ));
        }
        if stream.stream_id.is_empty() || stream.stream_id.len() > 256 {
            return invalid(format!("stream id of {stream} must be 1 to 256 bytes"));
        }
        if !streams.insert(stream) {
            return invalid(format!("stream {stream} appears twice in one append"));
        }
        if append.events.is_empty() {
            return invalid(format!("no events for stream {stream}"));
        }
        if let ExpectedVersion::Exact(0) = append.expected {
            return invalid(format!(
                "expected version 0 of {stream}: say NoStream for a new stream"
            ));
        }
        for event in &append.events {
            if !is_token(&event.event_type, 128) {
                return invalid(format!(
                    "event type {:?} must be 1 to 128 characters of A-Z a-z 0-9 _ -",
                    event.event_type
                ));
            }
            if event.schema_version == 0 {
                return invalid(format!(
                    "event {} has schema version 0 (versions start at 1)",
                    event.event_id
                ));
            }
            if !ids.insert(event.event_id) {
                return invalid(format!(
                    "event id {} appears twice in one append",
                    event.event_id
                ));
            }
        }
    }
    Ok(())
}

/// NATS subject tokens: no dots, wildcards or spaces.
fn is_token(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

enum Inserted {
    Written(AppendOutcome),
    /// An expectation failed or a unique key was hit; the transaction must be rolled back and
    /// the reason found out (see [`resolve_refusal`]).
    Refused,
}

/// Inserts every stream's events through `append_to_stream` (see the migration), which checks
/// each stream's expected version. Outside a transaction block, one stream is one implicit
/// transaction; inside one, the caller's transaction makes the streams atomic.
async fn insert_all(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    appends: &[StreamAppend],
) -> Result<Inserted, sqlx::Error> {
    if appends.len() > 1 {
        lock_unexpected_streams(conn, tenant_id, appends).await?;
    }
    let mut streams = Vec::with_capacity(appends.len());
    let mut last_position = Position::START;
    for append in appends {
        let events = &append.events;
        let ids: Vec<Uuid> = events.iter().map(|e| e.event_id).collect();
        let types: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
        let schema_versions: Vec<i32> = events.iter().map(|e| e.schema_version as i32).collect();
        let payloads: Vec<&serde_json::Value> = events.iter().map(|e| &e.payload).collect();
        let metadata: Vec<Json<&EventMetadata>> =
            events.iter().map(|e| Json(&e.metadata)).collect();
        let result = sqlx::query!(
            r#"select out_version as "version!", out_global_position as "global_position!",
                      out_transaction_id as "tx_id!"
                 from append_to_stream($1, $2, $3, $4, $5, $6, $7, $8, $9)"#,
            tenant_id,
            &append.stream.stream_type,
            &append.stream.stream_id,
            append.expected.required().map(|v| v as i32),
            &ids,
            &types,
            &schema_versions,
            &payloads as _,
            &metadata as _
        )
        .fetch_all(&mut *conn)
        .await;
        let rows = match result {
            Ok(rows) => rows,
            Err(err) if is_unique_violation(&err) => return Ok(Inserted::Refused),
            Err(err) => return Err(err),
        };
        if rows.len() != events.len() {
            return Ok(Inserted::Refused);
        }
        let versions: Vec<i32> = rows.iter().map(|r| r.version).collect();
        for row in &rows {
            last_position = last_position.max(Position {
                global_position: row.global_position as u64,
                transaction_id: row.tx_id as u64,
            });
        }
        streams.push(AppendedStream {
            stream: append.stream.clone(),
            first_version: versions.iter().copied().min().unwrap_or(0) as u32,
            last_version: versions.iter().copied().max().unwrap_or(0) as u32,
        });
    }
    Ok(Inserted::Written(AppendOutcome {
        streams,
        last_position,
        replayed: false,
    }))
}

/// Writers without an expectation queue on a per-stream lock rather than race (a conversation
/// with many messages arriving at once would otherwise burn through retries). The function
/// takes the lock itself; a multi-stream append takes them first, in one global order, so two
/// such appends cannot deadlock. The key is the function's own.
async fn lock_unexpected_streams(
    conn: &mut PgConnection,
    tenant_id: TenantId,
    appends: &[StreamAppend],
) -> Result<(), sqlx::Error> {
    let mut unexpected: Vec<&StreamRef> = appends
        .iter()
        .filter(|a| a.expected == ExpectedVersion::Any)
        .map(|a| &a.stream)
        .collect();
    unexpected.sort();
    for stream in unexpected {
        sqlx::query!(
            "select pg_advisory_xact_lock(hashtextextended($1, 0))",
            format!("{tenant_id}/{}/{}", stream.stream_type, stream.stream_id)
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

async fn current_version(conn: &mut PgConnection, stream: &StreamRef) -> Result<u32, sqlx::Error> {
    // Not max(version): see `append_to_stream` in the migrations.
    let version = sqlx::query_scalar!(
        "select version from events
         where tenant_id = nullif(current_setting('app.tenant_id', true), '')::uuid
           and stream_type = $1 and stream_id = $2
         order by version desc
         limit 1",
        &stream.stream_type,
        &stream.stream_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(version.unwrap_or(0) as u32)
}

/// Finds out why an append was refused, in a fresh transaction of the same tenant:
/// - every event id exists, as exactly this append: a retry; answer the original outcome;
/// - some exist: the idempotency key was reused for something else;
/// - none exist and a stream is not where it was expected: a conflict;
/// - none exist and every expectation holds now: an `Any` stream raced; `None` says retry.
async fn resolve_refusal(
    conn: &mut PgConnection,
    appends: &[StreamAppend],
) -> Result<Option<Result<AppendOutcome, AppendError>>, sqlx::Error> {
    let ids: Vec<Uuid> = appends
        .iter()
        .flat_map(|a| a.events.iter().map(|e| e.event_id))
        .collect();
    let existing = sqlx::query_as!(
        StoredId,
        r#"select event_id, stream_type, stream_id, version, global_position,
                  transaction_id::text::bigint as "tx_id!"
             from events where event_id = any($1)"#,
        &ids
    )
    .fetch_all(&mut *conn)
    .await?;

    if !existing.is_empty() {
        return Ok(Some(replayed_outcome(appends, &existing)));
    }

    for append in appends {
        let actual = current_version(conn, &append.stream).await?;
        if let Some(required) = append.expected.required()
            && required != actual
        {
            return Ok(Some(Err(AppendError::Conflict {
                stream: append.stream.clone(),
                expected: append.expected,
                actual,
            })));
        }
    }
    Ok(None)
}

/// Where an event id already stands in the log.
struct StoredId {
    event_id: Uuid,
    stream_type: String,
    stream_id: String,
    version: i32,
    global_position: i64,
    tx_id: i64,
}

/// The outcome of the original append, if `existing` (the stored events with the requested
/// ids) is exactly that append: same ids, each in the stream it is asked for now.
fn replayed_outcome(
    appends: &[StreamAppend],
    existing: &[StoredId],
) -> Result<AppendOutcome, AppendError> {
    let stored: BTreeMap<Uuid, (StreamRef, u32, Position)> = existing
        .iter()
        .map(|row| {
            let stream = StreamRef::new(row.stream_type.clone(), row.stream_id.clone());
            let position = Position {
                global_position: row.global_position as u64,
                transaction_id: row.tx_id as u64,
            };
            (row.event_id, (stream, row.version as u32, position))
        })
        .collect();

    let mut streams = Vec::with_capacity(appends.len());
    let mut last_position = Position::START;
    for append in appends {
        let mut versions = Vec::with_capacity(append.events.len());
        for event in &append.events {
            match stored.get(&event.event_id) {
                Some((stream, version, position)) if *stream == append.stream => {
                    versions.push(*version);
                    last_position = last_position.max(*position);
                }
                _ => {
                    return Err(AppendError::IdempotencyMismatch {
                        event_id: event.event_id,
                    });
                }
            }
        }
        streams.push(AppendedStream {
            stream: append.stream.clone(),
            first_version: versions.iter().copied().min().unwrap_or(0),
            last_version: versions.iter().copied().max().unwrap_or(0),
        });
    }
    Ok(AppendOutcome {
        streams,
        last_position,
        replayed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{EventMetadata, NewEvent};

    fn event(event_type: &str) -> NewEvent {
        NewEvent {
            event_id: Uuid::new_v4(),
            event_type: event_type.into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            metadata: EventMetadata::default(),
        }
    }

    fn append(stream_type: &str, events: Vec<NewEvent>) -> StreamAppend {
        StreamAppend {
            stream: StreamRef::new(stream_type, "s-1"),
            expected: ExpectedVersion::Any,
            events,
        }
    }

    #[test]
    fn malformed_appends_are_refused_before_any_io() {
        let refused =
            |appends: Vec<StreamAppend>| matches!(validate(&appends), Err(AppendError::Invalid(_)));
        assert!(refused(vec![]));
        assert!(refused(vec![append("booking", vec![])]));
        assert!(refused(vec![append("book.ing", vec![event("Booked")])]));
        assert!(refused(vec![append("booking", vec![event("Booked>")])]));
        assert!(refused(vec![
            append("booking", vec![event("A")]),
            append("booking", vec![event("B")]),
        ]));
        let same = event("A");
        assert!(refused(vec![append("booking", vec![same.clone(), same])]));
        let mut zero = event("A");
        zero.schema_version = 0;
        assert!(refused(vec![append("booking", vec![zero])]));
        let mut exact_zero = append("booking", vec![event("A")]);
        exact_zero.expected = ExpectedVersion::Exact(0);
        assert!(refused(vec![exact_zero]));
        assert!(validate(&[append("booking", vec![event("Booked")])]).is_ok());
    }
}
