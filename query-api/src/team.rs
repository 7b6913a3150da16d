//! The business's team and its API keys: the members (`rm_users`: email, role, whether active
//! and with a second factor) and the keys' metadata as the key store keeps it (`api_keys`:
//! name, prefix, scopes, expiry, revocation, last use; never the key or its hash).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use platform::answers::{ConsistencyToken, Forbidden, TenantReader};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub email: String,
    /// owner, admin, staff or viewer.
    pub role: String,
    /// Deactivated members cannot sign in.
    pub active: bool,
    /// Signing in asks for a one-time code too.
    pub second_factor: bool,
    pub invited_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/users`.
#[utoipa::path(
    get,
    path = "/v1/users",
    tag = "users",
    summary = "The business's members: active ones first, then by email",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "Every member", body = Vec<MemberView>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn members(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<Vec<MemberView>>, Problem> {
    reader.require(Permission::ManageUsers)?;
    let mut tx = reader.begin(&app).await?;
    let rows = sqlx::query_as!(
        MemberView,
        "select user_id, email, role, active, second_factor, invited_at, updated_at
           from rm_users
          order by active desc, email, user_id"
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(rows))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    pub key_id: Uuid,
    pub name: String,
    /// The key's first characters, to tell keys apart (the key itself was shown once).
    pub prefix: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// `GET /v1/api-keys`.
#[utoipa::path(
    get,
    path = "/v1/api-keys",
    tag = "api-keys",
    summary = "The business's API keys (never the keys themselves), newest first",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "Every key, revoked ones too", body = Vec<ApiKeyView>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn api_keys(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<Vec<ApiKeyView>>, Problem> {
    reader.require(Permission::ManageApiKeys)?;
    let mut tx = reader.begin(&app).await?;
    let rows = sqlx::query_as!(
        ApiKeyView,
        "select key_id, name, prefix, scopes, expires_at, revoked_at, last_used_at, created_at
           from api_keys
          order by created_at desc, key_id"
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(rows))
}
