//! Refresh tokens, stored as SHA-256 and rotated on every use. A family is one sign-in and
//! every token rotated from it; reusing a rotated token revokes the family. Tenant table: run
//! inside the tenant's transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Conn;

/// A stored refresh token, locked for the rest of the transaction.
#[derive(Debug, Clone)]
pub struct StoredRefresh {
    pub family_id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub revoked: bool,
}

/// Whether an access token of `user_id` at `epoch` in the session `family` still speaks for
/// them: the member is active at that epoch and the session is not revoked.
pub async fn is_live(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
    user_id: Uuid,
    epoch: i64,
    family: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select session_is_live($1, $2, $3, $4) as "live!""#,
        tenant_id,
        user_id,
        epoch,
        family
    )
    .fetch_one(pool)
    .await
}

pub async fn insert(
    conn: &mut Conn,
    tenant_id: Uuid,
    token_hash: &[u8],
    family_id: Uuid,
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into refresh_tokens (tenant_id, token_hash, family_id, user_id, expires_at)
         values ($1, $2, $3, $4, $5)",
        tenant_id,
        token_hash,
        family_id,
        user_id,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The token, locked so that two refreshes with it cannot both rotate it.
pub async fn lock(
    conn: &mut Conn,
    token_hash: &[u8],
) -> Result<Option<StoredRefresh>, sqlx::Error> {
    sqlx::query_as!(
        StoredRefresh,
        r#"select family_id, user_id, expires_at,
                  used_at is not null as "used!", revoked_at is not null as "revoked!"
             from refresh_tokens where token_hash = $1 for update"#,
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn mark_used(conn: &mut Conn, token_hash: &[u8]) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update refresh_tokens set used_at = now() where token_hash = $1",
        token_hash
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn family_of(conn: &mut Conn, token_hash: &[u8]) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "select family_id from refresh_tokens where token_hash = $1",
        token_hash
    )
    .fetch_optional(conn)
    .await
}

pub async fn revoke_family(conn: &mut Conn, family_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update refresh_tokens set revoked_at = now()
         where family_id = $1 and revoked_at is null",
        family_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends every session of a member.
pub async fn revoke_user(conn: &mut Conn, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update refresh_tokens set revoked_at = now() where user_id = $1 and revoked_at is null",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}
