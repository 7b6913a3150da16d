//! Team members' sign-in credentials (`user_credentials`) and one-time invitations.
//! Tenant tables: run inside the tenant's transaction.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::Conn;

/// The constraint a second member with the same email runs into.
pub const EMAIL_TAKEN: &str = "user_credentials_tenant_id_email_key";

/// A member's stored credential.
#[derive(Debug, Clone)]
pub struct StoredUser {
    pub user_id: Uuid,
    pub password_hash: String,
    pub role: String,
    pub active: bool,
    /// Moves on whenever the member's access tokens must stop speaking for them.
    pub session_epoch: i64,
}

/// A member who can sign in once `password_hash` is set (an invited member has none yet: the
/// empty hash never verifies). Fails on [`EMAIL_TAKEN`].
pub async fn insert(
    conn: &mut Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    email: &str,
    password_hash: &str,
    role: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into user_credentials (tenant_id, user_id, email, password_hash, role)
         values ($1, $2, $3, $4, $5)",
        tenant_id,
        user_id,
        email,
        password_hash,
        role
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn by_email(conn: &mut Conn, email: &str) -> Result<Option<StoredUser>, sqlx::Error> {
    sqlx::query_as!(
        StoredUser,
        "select user_id, password_hash, role, active, session_epoch from user_credentials
          where email = $1",
        email
    )
    .fetch_optional(conn)
    .await
}

pub async fn by_id(conn: &mut Conn, user_id: Uuid) -> Result<Option<StoredUser>, sqlx::Error> {
    sqlx::query_as!(
        StoredUser,
        "select user_id, password_hash, role, active, session_epoch from user_credentials
          where user_id = $1",
        user_id
    )
    .fetch_optional(conn)
    .await
}

/// Sets an active member's password; their role and session epoch, or `None` when there is no
/// such active member.
pub async fn set_password(
    conn: &mut Conn,
    user_id: Uuid,
    password_hash: &str,
) -> Result<Option<(String, i64)>, sqlx::Error> {
    Ok(sqlx::query!(
        "update user_credentials set password_hash = $1 where user_id = $2 and active
         returning role, session_epoch",
        password_hash,
        user_id
    )
    .fetch_optional(conn)
    .await?
    .map(|r| (r.role, r.session_epoch)))
}

/// A new role; the member's access tokens of the old one stop speaking for them.
pub async fn set_role(conn: &mut Conn, user_id: Uuid, role: &str) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update user_credentials set role = $1, session_epoch = session_epoch + 1
         where user_id = $2",
        role,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// How many members can sign in (the seats a plan counts), pending invitations included.
pub async fn active_count(conn: &mut Conn) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"select count(*) as "count!" from user_credentials where active"#)
        .fetch_one(conn)
        .await
}

/// No more sign-ins (sessions are ended with [`crate::sessions::revoke_user`]).
pub async fn deactivate(conn: &mut Conn, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update user_credentials set active = false, session_epoch = session_epoch + 1
         where user_id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn invite(
    conn: &mut Conn,
    tenant_id: Uuid,
    token_hash: &[u8],
    user_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into invitations (tenant_id, token_hash, user_id, expires_at)
         values ($1, $2, $3, $4)",
        tenant_id,
        token_hash,
        user_id,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps an invitation's token, sealed, for the notifier to email.
pub async fn queue_invitation_email(
    conn: &mut Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    token_enc: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into invitation_outbox (tenant_id, user_id, token_enc, expires_at)
         values ($1, $2, $3, $4) on conflict do nothing",
        tenant_id,
        user_id,
        token_enc,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The sealed token of a member's invitation waiting to be emailed, and when it expires.
pub async fn invitation_email(
    conn: &mut Conn,
    user_id: Uuid,
) -> Result<Option<(Vec<u8>, DateTime<Utc>)>, sqlx::Error> {
    let row = sqlx::query!(
        "select token_enc, expires_at from invitation_outbox where user_id = $1",
        user_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.token_enc, r.expires_at)))
}

/// Forgets a member's invitation token once emailed.
pub async fn invitation_emailed(conn: &mut Conn, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!("delete from invitation_outbox where user_id = $1", user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records a password reset: the token's hash to redeem it with, the sealed token to email.
pub async fn insert_password_reset(
    conn: &mut Conn,
    tenant_id: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
    token_enc: &[u8],
    expires_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into password_resets (token_hash, tenant_id, user_id, token_enc, expires_at)
         values ($1, $2, $3, $4, $5)",
        token_hash,
        tenant_id,
        user_id,
        token_enc,
        expires_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The latest sealed reset token of a member still to be emailed, and when it expires.
pub async fn password_reset_email(
    conn: &mut Conn,
    user_id: Uuid,
) -> Result<Option<(Vec<u8>, DateTime<Utc>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"select token_enc as "token_enc!", expires_at from password_resets
            where user_id = $1 and token_enc is not null and used_at is null
            order by created_at desc limit 1"#,
        user_id
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| (r.token_enc, r.expires_at)))
}

/// Forgets a member's sealed reset tokens once emailed (the hashes stay to redeem them).
pub async fn password_reset_emailed(conn: &mut Conn, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "update password_resets set token_enc = null where user_id = $1",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Uses an unexpired, unused reset up (and every other of the member's): the member, or
/// `None`.
pub async fn redeem_password_reset(
    conn: &mut Conn,
    token_hash: &[u8],
) -> Result<Option<Uuid>, sqlx::Error> {
    let user = sqlx::query_scalar!(
        "update password_resets set used_at = now(), token_enc = null
          where token_hash = $1 and used_at is null and expires_at > now()
         returning user_id",
        token_hash
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(user_id) = user {
        sqlx::query!(
            "update password_resets set used_at = now(), token_enc = null
              where user_id = $1 and used_at is null",
            user_id
        )
        .execute(conn)
        .await?;
    }
    Ok(user)
}

/// Uses an unexpired, unused invitation up; the invited member, or `None`.
pub async fn redeem_invitation(
    conn: &mut Conn,
    token_hash: &[u8],
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "update invitations set used_at = now()
          where token_hash = $1 and used_at is null and expires_at > now()
         returning user_id",
        token_hash
    )
    .fetch_optional(conn)
    .await
}
