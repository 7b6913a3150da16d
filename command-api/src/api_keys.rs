//! API keys over HTTP: created (shown once), revoked. The use cases are `app::api_keys`.

use app::api_keys::NewApiKey;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use platform::answers::{
    Busy, Conflict, Forbidden, InvalidOrKeyReused, JsonBody, KeyedConflict, NotFound, TenantCaller,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// What the key is for, as the business's people will recognise it.
    #[schema(min_length = 1, max_length = 60, pattern = r"\S", example = "Our CRM")]
    pub name: String,
    #[schema(schema_with = platform::schemas::scopes)]
    pub scopes: Vec<Permission>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Created {
    pub key_id: Uuid,
    /// Shown once. Only its hash is kept.
    pub key: String,
    pub prefix: String,
    #[schema(value_type = Vec<String>, example = json!(["read_bookings"]))]
    pub scopes: Vec<Permission>,
    pub expires_at: Option<DateTime<Utc>>,
    pub consistency_token: String,
}

/// `POST /v1/api-keys`. A key cannot grant more than its creator may do.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api keys",
    summary = "Create a scoped, optionally expiring API key (shown once)",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "The key, shown once", body = Created),
        JsonBody, TenantCaller, Forbidden, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageApiKeys)?;
    let done = app::api_keys::create(
        &state.app,
        &caller.context(),
        &caller.actor,
        NewApiKey {
            name: request.name,
            scopes: request.scopes,
            expires_at: request.expires_at,
        },
    )
    .await?;
    let consistency_token = done.consistency_token();
    let key = done.value;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            key_id: key.key_id,
            key: key.key,
            prefix: key.prefix,
            scopes: key.scopes,
            expires_at: key.expires_at,
            consistency_token,
        }),
    ))
}

/// `DELETE /v1/api-keys/{id}`: the key stops working at once.
#[utoipa::path(
    delete,
    path = "/v1/api-keys/{id}",
    tag = "api keys",
    summary = "Revoke an API key",
    params(
        ("id" = Uuid, Path, description = "The API key")
    ),
    responses(
        (status = 204, description = "The key no longer works"),
        TenantCaller, Forbidden, NotFound, Conflict, Busy
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageApiKeys)?;
    let key_id: Uuid = id.parse().map_err(|_| Problem::not_found("API key"))?;
    app::api_keys::revoke(&state.app, &caller.context(), &caller.actor, key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
