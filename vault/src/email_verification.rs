//! Links that verify a business's contact email (`email_verifications`): the token's hash to
//! redeem it, the address it was sent to, and the token sealed only until it is emailed.
//! Tenant table: run inside the tenant's transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Conn;

pub async fn insert(
    conn: &mut Conn,
    tenant_id: Uuid,
    email: &str,
    token_hash: &[u8],
    token_enc: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into email_verifications (token_hash, tenant_id, email, token_enc, expires_at)
         values ($1, $2, $3, $4, $5)",
        token_hash,
        tenant_id,
        email,
        token_enc,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest sealed token still to be emailed to `email`, and when it expires.
pub async fn to_email(
    conn: &mut Conn,
    email: &str,
) -> Result<Option<(Vec<u8>, DateTime<Utc>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select token_enc as "token_enc!", expires_at from email_verifications
            where email = $1 and token_enc is not null and used_at is null
            order by created_at desc limit 1"#,
        email
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.token_enc, r.expires_at)))
}

/// Forgets the sealed tokens once emailed (the hashes stay to redeem them).
pub async fn emailed(conn: &mut Conn, email: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update email_verifications set token_enc = null where email = $1",
        email
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses an unexpired, unused link up (and every other of the business's): the address it
/// was sent to, or `None`.
pub async fn redeem(conn: &mut Conn, token_hash: &[u8]) -> Result<Option<String>, sqlx::Error> {
    let redeemed = sqlx::query!(
        "update email_verifications set used_at = now(), token_enc = null
          where token_hash = $1 and used_at is null and expires_at > now()
         returning tenant_id, email",
        token_hash
    )
    .fetch_optional(&mut *conn)
    .await?;
    let Some(redeemed) = redeemed else {
        return Ok(None);
    };
    sqlx::query!(
        "update email_verifications set used_at = now(), token_enc = null
          where tenant_id = $1 and used_at is null",
        redeemed.tenant_id
    )
    .execute(conn)
    .await?;
    Ok(Some(redeemed.email))
}
