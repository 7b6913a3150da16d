//! API keys: shown once at creation, stored as SHA-256, scoped, optionally expiring, revocable.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::access::{AccessError, ApiKey, ApiKeyCommand, ApiKeyEvent, Permission};
use domain::ids::{ApiKeyId, UserId};
use eventstore::ExpectedVersion;
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{API_KEY_PREFIX, Caller};
use crate::exec::{append_in, execute, stream};
use crate::secrets::sha256;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    pub name: String,
    #[schema(value_type = Vec<String>, example = json!(["read_bookings"]))]
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

fn problem_of(err: AccessError) -> Problem {
    match err {
        AccessError::NoScopes => Problem::invalid("scopes", "at least one scope"),
        AccessError::ExpiryInThePast => Problem::invalid("expires_at", "must be in the future"),
        AccessError::NotFound => Problem::not_found("API key"),
        other => Problem::conflict(format!("the API key {other}")),
    }
}

fn scope_name(p: &Permission) -> String {
    serde_json::to_value(p)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// `POST /v1/api-keys`. A key cannot grant more than its creator may do.
#[utoipa::path(
    post,
    path = "/v1/api-keys",
    tag = "api keys",
    summary = "Create a scoped, optionally expiring API key (shown once)",
    request_body = CreateRequest,
    responses(
        (status = 201, description = "Create a scoped, optionally expiring API key (shown once)", body = Created),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageApiKeys)?;
    let name = request.name.trim().to_owned();
    if !(1..=60).contains(&name.chars().count()) {
        return Err(Problem::invalid("name", "1 to 60 characters"));
    }
    for scope in &request.scopes {
        caller
            .require(*scope)
            .map_err(|_| Problem::forbidden(format!("you may not grant {scope:?}")))?;
    }
    let Some(issued_by) = caller.user_id() else {
        return Err(Problem::forbidden(
            "API keys are created by people, not by other keys",
        ));
    };
    let ctx = caller.context();
    let key_id = Uuid::new_v4();
    let secret: [u8; 32] = rand::random();
    let key = format!("{API_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(secret));
    let prefix: String = key.chars().take(API_KEY_PREFIX.len() + 4).collect();
    let events = ApiKey::decide(
        &Default::default(),
        ApiKeyCommand::Issue {
            key_id: ApiKeyId::from_uuid(key_id),
            name: name.clone(),
            prefix: prefix.clone(),
            scopes: request.scopes.clone(),
            expires_at: request.expires_at,
            issued_by: UserId::from_uuid(issued_by),
            now: Utc::now(),
        },
    )
    .map_err(problem_of)?;
    let ApiKeyEvent::ApiKeyIssued { scopes, .. } = &events[0] else {
        unreachable!("issuing issues")
    };
    let scopes = scopes.clone();
    let key_stream = stream::<ApiKeyEvent>(key_id);
    let mut tx = app.store.begin(ctx.tenant_id).await?;
    sqlx::query("insert into api_key_directory (key_hash, tenant_id, key_id) values ($1, $2, $3)")
        .bind(sha256(&key))
        .bind(ctx.tenant_id)
        .bind(key_id)
        .execute(tx.conn())
        .await?;
    sqlx::query("insert into api_keys (tenant_id, key_id, key_hash, prefix, name, scopes, expires_at) values ($1, $2, $3, $4, $5, $6, $7)")
        .bind(ctx.tenant_id)
        .bind(key_id)
        .bind(sha256(&key))
        .bind(&prefix)
        .bind(&name)
        .bind(scopes.iter().map(scope_name).collect::<Vec<_>>())
        .bind(request.expires_at)
        .execute(tx.conn())
        .await?;
    let outcome = append_in(
        &app.store,
        &mut tx,
        &ctx,
        &key_stream,
        ExpectedVersion::NoStream,
        &events,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            key_id,
            key,
            prefix,
            scopes,
            expires_at: request.expires_at,
            consistency_token: outcome.last_position.to_string(),
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
        (status = 204, description = "Revoke an API key"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)")
    ),
    security(("bearer" = []))
)]
pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageApiKeys)?;
    let key_id: Uuid = id.parse().map_err(|_| Problem::not_found("API key"))?;
    let revoked_by = UserId::from_uuid(caller.user_id().unwrap_or(Uuid::nil()));
    let ctx = caller.context();
    execute::<ApiKey>(
        &app.store,
        &ctx,
        &stream::<ApiKeyEvent>(key_id),
        |state, _| ApiKey::decide(state, ApiKeyCommand::Revoke { revoked_by }).map_err(problem_of),
    )
    .await?;
    let mut tx = app.store.begin(ctx.tenant_id).await?;
    sqlx::query("update api_keys set revoked_at = now() where key_id = $1 and revoked_at is null")
        .bind(key_id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
