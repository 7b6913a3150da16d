//! Reading events back, and the gap-free commit-order read shared by tenant and global readers.

use sqlx::postgres::PgRow;
use sqlx::types::Json;
use sqlx::{PgConnection, Row as _};

use crate::types::{EventMetadata, Position, RecordedEvent, StreamRef, TenantId};
use crate::upcast::Upcasters;

/// Every column, transaction id as a bigint. The alias matters: under its own name the cast
/// would shadow the table column in `ORDER BY transaction_id` and turn an index walk into a
/// sort of the whole table.
pub(crate) const COLUMNS: &str = "global_position, transaction_id::text::bigint as tx_id, tenant_id, \
     stream_type, stream_id, version, event_id, event_type, schema_version, payload, metadata, \
     recorded_at";

pub(crate) fn decode(row: &PgRow, upcasters: &Upcasters) -> Result<RecordedEvent, sqlx::Error> {
    let event_type: String = row.try_get(7)?;
    let stored_version = row.try_get::<i32, _>(8)? as u32;
    let (schema_version, payload) = upcasters.upcast(&event_type, stored_version, row.try_get(9)?);
    let Json(metadata): Json<EventMetadata> = row.try_get(10)?;
    Ok(RecordedEvent {
        position: Position {
            global_position: row.try_get::<i64, _>(0)? as u64,
            transaction_id: row.try_get::<i64, _>(1)? as u64,
        },
        tenant_id: row.try_get(2)?,
        stream: StreamRef {
            stream_type: row.try_get(3)?,
            stream_id: row.try_get(4)?,
        },
        version: row.try_get::<i32, _>(5)? as u32,
        event_id: row.try_get(6)?,
        event_type,
        schema_version,
        payload,
        metadata,
        recorded_at: row.try_get(11)?,
    })
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
    let tenant_clause = match filter {
        RowFilter::All => "",
        RowFilter::Tenant(_) => "and tenant_id = $4",
    };
    let sql = format!(
        "select {COLUMNS} from events
         where (transaction_id, global_position) > ($1::text::xid8, $2)
           and transaction_id < pg_snapshot_xmin(pg_current_snapshot())
           {tenant_clause}
         order by events.transaction_id, events.global_position
         limit $3"
    );
    let mut query = sqlx::query(&sql)
        .bind(after.transaction_id.to_string())
        .bind(after.global_position as i64)
        .bind(limit.min(i64::MAX as usize) as i64);
    if let RowFilter::Tenant(tenant_id) = filter {
        query = query.bind(tenant_id);
    }
    let rows = query.fetch_all(conn).await?;
    rows.iter().map(|row| decode(row, upcasters)).collect()
}
