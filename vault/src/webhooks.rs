//! Webhook endpoints' signing secrets, sealed. The secret is shown to the business once, when
//! its endpoint is registered; the deliverer opens it to sign each delivery. Tenant table: run
//! inside the tenant's transaction.

use uuid::Uuid;

use crate::Conn;

pub async fn store(
    conn: &mut Conn,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    secret_enc: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into webhook_secrets (tenant_id, endpoint_id, secret_enc) values ($1, $2, $3)",
        tenant_id,
        endpoint_id,
        secret_enc
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The sealed secret of an endpoint of the transaction's tenant.
pub async fn sealed(conn: &mut Conn, endpoint_id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
    sqlx::query_scalar!(
        "select secret_enc from webhook_secrets where endpoint_id = $1",
        endpoint_id
    )
    .fetch_optional(conn)
    .await
}

/// Forgets an endpoint's secret (the endpoint was deleted).
pub async fn forget(conn: &mut Conn, endpoint_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "delete from webhook_secrets where endpoint_id = $1",
        endpoint_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
