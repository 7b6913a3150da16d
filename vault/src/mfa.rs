//! TOTP secrets, sealed, per member. `last_step` is the last 30-second step a code was
//! accepted for, so that a code is good once. Tenant table: run inside the tenant's
//! transaction.

use uuid::Uuid;

use crate::Conn;

/// A member's second factor, locked for the rest of the transaction.
#[derive(Debug, Clone)]
pub struct StoredSecondFactor {
    pub secret_enc: Vec<u8>,
    pub enabled: bool,
    pub last_step: i64,
}

pub async fn lock(
    conn: &mut Conn,
    user_id: Uuid,
) -> Result<Option<StoredSecondFactor>, sqlx::Error> {
    sqlx::query_as!(
        StoredSecondFactor,
        "select secret_enc, enabled, last_step from mfa_secrets where user_id = $1 for update",
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// A new secret, off until [`enable`]d; replaces one still pending.
pub async fn enroll(
    conn: &mut Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    secret_enc: &[u8],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into mfa_secrets (tenant_id, user_id, secret_enc) values ($1, $2, $3)
         on conflict (tenant_id, user_id)
         do update set secret_enc = excluded.secret_enc, last_step = 0",
        tenant_id,
        user_id,
        secret_enc
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn enable(conn: &mut Conn, user_id: Uuid, step: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update mfa_secrets set enabled = true, last_step = $1 where user_id = $2",
        step,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Records the step of an accepted code.
pub async fn accept_step(conn: &mut Conn, user_id: Uuid, step: i64) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update mfa_secrets set last_step = $1 where user_id = $2",
        step,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
