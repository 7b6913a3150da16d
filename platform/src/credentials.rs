//! Who a tenant request comes from: a user's access token or an API key. Both services
//! authenticate the same way; the tenant always comes from the credential.

use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use domain::access::{Permission, Role};
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::auth::JwtKeys;
use crate::problem::Problem;

/// API keys are recognisable by this prefix (and so never mistaken for a JWT).
pub const API_KEY_PREFIX: &str = "bk_live_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { id: Uuid, role: Role },
    ApiKey { id: Uuid, scopes: Vec<Permission> },
}

impl Actor {
    /// Whether the user's role, or the key's scopes, allow `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        match self {
            Actor::User { role, .. } => role.can(permission),
            Actor::ApiKey { scopes, .. } => scopes.contains(&permission),
        }
    }

    /// 403 unless allowed.
    pub fn require(&self, permission: Permission) -> Result<(), Problem> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this credential may not {permission:?}"
            )))
        }
    }

    /// As recorded in event metadata: `user:<id>` or `api_key:<id>`.
    pub fn label(&self) -> String {
        match self {
            Actor::User { id, .. } => format!("user:{id}"),
            Actor::ApiKey { id, .. } => format!("api_key:{id}"),
        }
    }

    /// The rate-limit subject of this credential.
    pub fn limit_subject(&self) -> String {
        match self {
            Actor::User { id, .. } => format!("cred:user:{id}"),
            Actor::ApiKey { id, .. } => format!("cred:key:{id}"),
        }
    }
}

/// SHA-256 of a token: how API keys and refresh tokens are stored.
pub fn sha256(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The bearer token of a request.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// The tenant and actor of a bearer token: a valid access token, or a live API key. 401
/// otherwise.
pub async fn authenticate(
    pool: &PgPool,
    keys: &JwtKeys,
    bearer: &str,
) -> Result<(Uuid, Actor), Problem> {
    if bearer.starts_with(API_KEY_PREFIX) {
        api_key(pool, bearer).await
    } else {
        let claims = keys.verify(bearer).ok_or_else(Problem::unauthorized)?;
        Ok((
            claims.tid,
            Actor::User {
                id: claims.sub,
                role: claims.role,
            },
        ))
    }
}

/// The tenant and scopes of a live API key; its last use is recorded.
async fn api_key(pool: &PgPool, key: &str) -> Result<(Uuid, Actor), Problem> {
    let hash = sha256(key);
    let found: Option<(Uuid, Uuid)> =
        sqlx::query_as("select tenant_id, key_id from api_key_directory where key_hash = $1")
            .bind(&hash)
            .fetch_optional(pool)
            .await?;
    let (tenant_id, key_id) = found.ok_or_else(Problem::unauthorized)?;
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
    let row: Option<(Vec<String>, Option<DateTime<Utc>>, bool)> = sqlx::query_as(
        "select scopes, expires_at, revoked_at is not null from api_keys
         where key_id = $1 and key_hash = $2",
    )
    .bind(key_id)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((scopes, expires_at, revoked)) = row else {
        return Err(Problem::unauthorized());
    };
    if revoked || expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Problem::unauthorized());
    }
    sqlx::query("update api_keys set last_used_at = now() where key_id = $1")
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let scopes = scopes
        .iter()
        .filter_map(|s| serde_json::from_value(serde_json::Value::String(s.clone())).ok())
        .collect();
    Ok((tenant_id, Actor::ApiKey { id: key_id, scopes }))
}
