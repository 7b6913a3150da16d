//! The unit of work of every service: one transaction scoped to one tenant.

use sqlx::{PgConnection, PgPool, Postgres, Transaction};

use crate::types::TenantId;
use crate::wake::Wakeups;

/// A database transaction that row-level security confines to one tenant.
///
/// It starts with `set_config('app.tenant_id', $1, true)`: transaction-local, so the setting
/// dies with the transaction and never leaks to the pooled connection's next user (a
/// session-level `SET` would). Every query through [`TenantTx::conn`] sees only this
/// tenant's rows and can only write this tenant's rows.
///
/// Committing a transaction that appended events wakes the log's readers.
pub struct TenantTx {
    tx: Transaction<'static, Postgres>,
    tenant_id: TenantId,
    wakeups: Option<Wakeups>,
    pub(crate) appended: bool,
}

impl TenantTx {
    pub(crate) async fn begin(
        pool: &PgPool,
        tenant_id: TenantId,
        wakeups: Option<Wakeups>,
    ) -> Result<Self, sqlx::Error> {
        let mut tx = pool.begin().await?;
        sqlx::query!(
            r#"select set_config('app.tenant_id', $1, true) as "tenant""#,
            tenant_id.to_string()
        )
        .fetch_one(&mut *tx)
        .await?;
        Ok(Self {
            tx,
            tenant_id,
            wakeups,
            appended: false,
        })
    }

    pub fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }

    /// The connection, for the service's own statements in this unit of work.
    pub fn conn(&mut self) -> &mut PgConnection {
        &mut self.tx
    }

    pub(crate) fn transaction(&mut self) -> &mut Transaction<'static, Postgres> {
        &mut self.tx
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await?;
        if self.appended
            && let Some(wakeups) = &self.wakeups
        {
            wakeups.announce();
        }
        Ok(())
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}
