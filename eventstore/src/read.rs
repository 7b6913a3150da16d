//! Reading events back, and the gap-free commit-order read shared by tenant and global readers.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::personal;
use crate::types::{EventMetadata, Position, RecordedEvent, StreamRef, TenantId};
use crate::upcast::Upcasters;

/// An event as selected. Every read names the same columns, the transaction id cast to a
/// bigint under its own alias (`tx_id`): under the column's own name the cast would shadow the
/// table column in `ORDER BY transaction_id` and turn an index walk into a sort of the whole
/// table.
pub(crate) struct EventRow {
    pub global_position: i64,
    pub tx_id: i64,
    pub tenant_id: Uuid,
    pub stream_type: String,
    pub stream_id: String,
    pub version: i32,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: i32,
    pub payload: serde_json::Value,
    pub metadata: Json<EventMetadata>,
    pub recorded_at: DateTime<Utc>,
}

impl EventRow {
    /// The event as stored: personal values sealed, the payload in its stored schema.
    pub(crate) fn into_event(self) -> RecordedEvent {
        RecordedEvent {
            position: Position {
                global_position: self.global_position as u64,
                transaction_id: self.tx_id as u64,
            },
            tenant_id: self.tenant_id,
            stream: StreamRef {
                stream_type: self.stream_type,
                stream_id: self.stream_id,
            },
            version: self.version as u32,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version as u32,
            payload: self.payload,
            metadata: self.metadata.0,
            recorded_at: self.recorded_at,
        }
    }
}

/// Rows read with [`EventRow`]'s columns as readers get them: personal values revealed
/// (`crate::personal`), payloads upcast to their type's current schema.
pub(crate) async fn open(
    pool: &PgPool,
    rows: Vec<EventRow>,
    upcasters: &Upcasters,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let mut events: Vec<RecordedEvent> = rows.into_iter().map(EventRow::into_event).collect();
    personal::reveal(pool, &mut events).await?;
    upcast_all(&mut events, upcasters);
    Ok(events)
}

/// [`open`] on a connection the caller holds.
pub(crate) async fn open_in(
    conn: &mut PgConnection,
    rows: Vec<EventRow>,
    upcasters: &Upcasters,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
    let mut events: Vec<RecordedEvent> = rows.into_iter().map(EventRow::into_event).collect();
    personal::reveal_in(conn, &mut events).await?;
    upcast_all(&mut events, upcasters);
    Ok(events)
}

/// Events received from the JetStream stream (published sealed, in their stored schema) as
/// readers get them: revealed, then upcast.
pub async fn open_received(
    pool: &PgPool,
    events: &mut [RecordedEvent],
    upcasters: &Upcasters,
) -> Result<(), sqlx::Error> {
    personal::reveal(pool, events).await?;
    upcast_all(events, upcasters);
    Ok(())
}

/// Brings payloads to their type's current schema (after revealing: an upcaster sees what
/// was written, never a sealed value).
pub fn upcast_all(events: &mut [RecordedEvent], upcasters: &Upcasters) {
    for event in events {
        let (schema_version, payload) = upcasters.upcast(
            &event.event_type,
            event.schema_version,
            std::mem::take(&mut event.payload),
        );
        event.schema_version = schema_version;
        event.payload = payload;
    }
}

pub(crate) enum RowFilter {
    All,
    Tenant(TenantId),
}

/// Up to `limit` events after `after` in commit order, never skipping one that commits late.
///
/// A position is taken when a row is inserted but becomes visible only at commit, so "the
/// next position" can appear after later ones. This read only returns events of transactions
/// older than the snapshot's xmin: every such transaction has finished, so nothing can still
/// appear before the last event returned. A transaction left open elsewhere delays readers;
/// it never makes them skip.
pub(crate) async fn read_in_commit_order(
    conn: &mut PgConnection,
    filter: RowFilter,
    after: Position,
    limit: usize,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let (tx, position, limit) = (
        after.transaction_id.to_string(),
        after.global_position as i64,
        limit.min(i64::MAX as usize) as i64,
    );
    let rows = match filter {
        RowFilter::All => {
            sqlx::query_as!(
                EventRow,
                r#"select global_position, transaction_id::text::bigint as "tx_id!", tenant_id,
                          stream_type, stream_id, version, event_id, event_type, schema_version,
                          payload, metadata as "metadata: Json<EventMetadata>", recorded_at
                     from events
                    where (transaction_id, global_position) > ($1::text::xid8, $2)
                      and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                    order by events.transaction_id, events.global_position
                    limit $3"#,
                tx,
                position,
                limit
            )
            .fetch_all(conn)
            .await?
        }
        RowFilter::Tenant(tenant_id) => {
            sqlx::query_as!(
                EventRow,
                r#"select global_position, transaction_id::text::bigint as "tx_id!", tenant_id,
                          stream_type, stream_id, version, event_id, event_type, schema_version,
                          payload, metadata as "metadata: Json<EventMetadata>", recorded_at
                     from events
                    where (transaction_id, global_position) > ($1::text::xid8, $2)
                      and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                      and tenant_id = $4
                    order by events.transaction_id, events.global_position
                    limit $3"#,
                tx,
                position,
                limit,
                tenant_id
            )
            .fetch_all(conn)
            .await?
        }
    };
    Ok(rows)
}
