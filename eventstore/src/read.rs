//! Reading events back, and the gap-free commit-order read shared by tenant and global readers.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

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
    /// The event, its payload upcast to its type's current schema.
    pub(crate) fn decode(self, upcasters: &Upcasters) -> RecordedEvent {
        let (schema_version, payload) =
            upcasters.upcast(&self.event_type, self.schema_version as u32, self.payload);
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
            schema_version,
            payload,
            metadata: self.metadata.0,
            recorded_at: self.recorded_at,
        }
    }
}

/// Decodes rows read with [`EventRow`]'s columns.
pub(crate) fn decode_all(rows: Vec<EventRow>, upcasters: &Upcasters) -> Vec<RecordedEvent> {
    rows.into_iter().map(|row| row.decode(upcasters)).collect()
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
    upcasters: &Upcasters,
) -> Result<Vec<RecordedEvent>, sqlx::Error> {
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
    Ok(decode_all(rows, upcasters))
}
