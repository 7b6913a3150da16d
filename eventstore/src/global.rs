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
