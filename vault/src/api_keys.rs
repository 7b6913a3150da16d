//! API keys: the hash, prefix, name, scopes and expiry of each. The key itself is shown once
//! and never stored. Tenant table: run inside the tenant's transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Conn;

/// What a new key is.
#[derive(Debug, Clone)]
pub struct NewKey<'a> {
    pub key_id: Uuid,
    pub key_hash: &'a [u8],
    pub prefix: &'a str,
    pub name: &'a str,
    pub scopes: &'a [String],
    pub expires_at: Option<DateTime<Utc>>,
}

pub async fn insert(conn: &mut Conn, tenant_id: Uuid, key: NewKey<'_>) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into api_keys (tenant_id, key_id, key_hash, prefix, name, scopes, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7)",
        tenant_id,
        key.key_id,
        key.key_hash,
        key.prefix,
        key.name,
        key.scopes,
        key.expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn revoke(conn: &mut Conn, key_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update api_keys set revoked_at = now() where key_id = $1 and revoked_at is null",
        key_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The scopes of a live key (neither revoked nor expired) with this id and hash, which is
/// marked as used now; `None` for anything else.
pub async fn use_live_key(
    conn: &mut Conn,
    key_id: Uuid,
    key_hash: &[u8],
) -> Result<Option<Vec<String>>, sqlx::Error> {
    sqlx::query_scalar!(
        "update api_keys set last_used_at = now()
          where key_id = $1 and key_hash = $2
            and revoked_at is null and (expires_at is null or expires_at > now())
         returning scopes",
        key_id,
        key_hash
    )
    .fetch_optional(conn)
    .await
}
