//! The whole log, across tenants: the operator role's view, for the relay, replay and audit.

use std::sync::Arc;

use sqlx::PgPool;

use crate::read::{self, RowFilter};
use crate::types::{Position, RecordedEvent, TenantId};
use crate::upcast::Upcasters;

/// Cross-tenant reads. Built on a pool that connects as the operator role, which may read every
/// tenant's events and write none; never hand it to code that acts for a tenant.
#[derive(Clone, Debug)]
pub struct GlobalLog {
    pool: PgPool,
    upcasters: Arc<Upcasters>,
    /// Whether reads reveal personal values and upcast (everyone's view), or give events as
    /// stored (the relay's: what it publishes stays sealed).
    as_stored: bool,
}

impl GlobalLog {
    pub fn new(operator_pool: PgPool) -> Self {
        Self {
            pool: operator_pool,
            upcasters: Arc::new(Upcasters::new()),
            as_stored: false,
        }
    }

    /// Events exactly as stored: personal values sealed, payloads in their stored schema. The
    /// relay reads so, and JetStream never holds a personal value in the clear.
    pub fn as_stored(mut self) -> Self {
        self.as_stored = true;
        self
    }

    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Up to `limit` events of every tenant after `after`, in commit order, never skipping an
    /// event that commits late. Checkpoint with the last event's position.
    pub async fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let rows = read::read_in_commit_order(&mut conn, RowFilter::All, after, limit).await?;
        self.open(&mut conn, rows).await
    }

    /// One tenant's events in commit order (operator audit of a given tenant).
    pub async fn read_tenant(
        &self,
        tenant_id: TenantId,
        after: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let rows =
            read::read_in_commit_order(&mut conn, RowFilter::Tenant(tenant_id), after, limit)
                .await?;
        self.open(&mut conn, rows).await
    }

    /// The position of the last event that no transaction still running can precede: every
    /// event at or before it is committed and visible now, so a read made after this call,
    /// of the whole log or of one tenant's events, finds all of them. `START` for an empty log.
    pub async fn head(&self) -> Result<Position, sqlx::Error> {
        let head = sqlx::query!(
            r#"select transaction_id::text::bigint as "tx_id!", global_position
                 from events
                where transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                order by transaction_id desc, global_position desc
                limit 1"#
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(head.map_or(Position::START, |row| Position {
            transaction_id: row.tx_id as u64,
            global_position: row.global_position as u64,
        }))
    }

    /// Every tenant with an event in the log.
    pub async fn tenants(&self) -> Result<Vec<TenantId>, sqlx::Error> {
        sqlx::query_scalar!("select distinct tenant_id from events order by 1")
            .fetch_all(&self.pool)
            .await
    }

    async fn open(
        &self,
        conn: &mut sqlx::PgConnection,
        rows: Vec<read::EventRow>,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        if self.as_stored {
            return Ok(rows.into_iter().map(read::EventRow::into_event).collect());
        }
        read::open_in(conn, rows, &self.upcasters).await
    }
}
