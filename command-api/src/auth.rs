//! Sessions: login, refresh (rotating, with reuse detection), logout, and who-am-I.

use axum::Json;
use std::net::SocketAddr;

use crate::caller::SignedIn;
use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use domain::access::Role;
use eventstore::TenantTx;
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::cache::Gate;
use crate::secrets::{new_refresh_token, sha256, tenant_of_refresh_token, verify_password};

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// A new access token and a new refresh token in `family` (a new family for a new login).
pub async fn issue_tokens(
    app: &AppState,
    tx: &mut TenantTx,
    tenant_id: Uuid,
    user_id: Uuid,
    role: Role,
    family: Option<Uuid>,
) -> Result<TokenPair, Problem> {
    let refresh_token = new_refresh_token(tenant_id);
    sqlx::query(
        "insert into refresh_tokens (tenant_id, token_hash, family_id, user_id, expires_at)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(sha256(&refresh_token))
    .bind(family.unwrap_or_else(Uuid::new_v4))
    .bind(user_id)
    .bind(Utc::now() + Duration::days(i64::from(app.refresh_ttl_days)))
    .execute(tx.conn())
    .await?;
    Ok(TokenPair {
        access_token: app.keys.issue(tenant_id, user_id, role)?,
        refresh_token,
        token_type: "Bearer".into(),
        expires_in: app.keys.access_ttl().as_secs(),
    })
}

/// 423 for a suspended tenant, 401 for a closed or unknown one.
async fn ensure_tenant_open(app: &AppState, tenant_id: Uuid) -> Result<(), Problem> {
    match app.tenant_status.gate(&app.store, tenant_id).await? {
        Gate::Open => Ok(()),
        Gate::Suspended { reason } => Err(Problem::locked(reason)),
        Gate::Gone => Err(Problem::unauthorized()),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub slug: String,
    pub email: String,
    pub password: String,
    /// The authenticator's code, for users with a second factor.
    #[serde(default)]
    pub totp: Option<String>,
}

/// `POST /v1/auth/login`. Every failure is the same 401, after the same work.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    summary = "Log in with slug, email, password (and TOTP code when enrolled)",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Log in with slug, email, password (and TOTP code when enrolled)", body = TokenPair),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)")
    )
)]
pub async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, Problem> {
    app.limit(
        &format!("login-ip:{}", peer.ip()),
        crate::limits::LOGIN_PER_IP,
    )
    .await?;
    let tenant_id: Option<Uuid> =
        sqlx::query_scalar("select tenant_id from tenant_directory where slug = $1")
            .bind(request.slug.trim().to_ascii_lowercase())
            .fetch_optional(app.store.pool())
            .await?;
    let account = format!(
        "login:{}:{}",
        tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        request.email.trim().to_lowercase()
    );
    app.limit(&account, crate::limits::LOGIN_PER_ACCOUNT)
        .await?;
    let Some(tenant_id) = tenant_id else {
        verify_password(request.password, None).await;
        return Err(Problem::unauthorized());
    };
    let mut tx = app.store.begin(tenant_id).await?;
    let user: Option<(Uuid, String, String, bool)> = sqlx::query_as(
        "select user_id, password_hash, role, active from user_credentials where email = $1",
    )
    .bind(
        domain::values::Email::parse(&request.email)
            .map(|e| e.to_string())
            .unwrap_or_default(),
    )
    .fetch_optional(tx.conn())
    .await?;
    let verified = verify_password(request.password, user.as_ref().map(|u| u.1.clone())).await;
    let Some((user_id, _, role, true)) = user.filter(|_| verified) else {
        tracing::info!(%tenant_id, "failed login");
        return Err(Problem::unauthorized());
    };
    crate::mfa::check_code(&app, &mut tx, user_id, request.totp.as_deref()).await?;
    ensure_tenant_open(&app, tenant_id).await?;
    let role = parse_role(&role)?;
    let tokens = issue_tokens(&app, &mut tx, tenant_id, user_id, role, None).await?;
    tx.commit().await?;
    Ok(Json(tokens))
}

fn parse_role(role: &str) -> Result<Role, Problem> {
    serde_json::from_value(serde_json::Value::String(role.to_owned()))
        .map_err(|_| Problem::internal(format!("stored role {role:?} is unknown")))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `POST /v1/auth/refresh`: trades a refresh token for a new pair. A token can be used once;
/// using it again revokes every token of its family, stolen copy and legitimate one alike.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    summary = "Rotate a refresh token; a reused one revokes its family",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "Rotate a refresh token; a reused one revokes its family", body = TokenPair),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 423, description = "The tenant is suspended (with the reason)")
    )
)]
pub async fn refresh(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, Problem> {
    let tenant_id =
        tenant_of_refresh_token(&request.refresh_token).ok_or_else(Problem::unauthorized)?;
    let mut tx = app.store.begin(tenant_id).await?;
    let row: Option<(Uuid, Uuid, chrono::DateTime<Utc>, bool, bool)> = sqlx::query_as(
        "select family_id, user_id, expires_at, used_at is not null, revoked_at is not null
           from refresh_tokens where token_hash = $1 for update",
    )
    .bind(sha256(&request.refresh_token))
    .fetch_optional(tx.conn())
    .await?;
    let Some((family, user_id, expires_at, used, revoked)) = row else {
        return Err(Problem::unauthorized());
    };
    if revoked || expires_at <= Utc::now() {
        return Err(Problem::unauthorized());
    }
    if used {
        revoke_family(&mut tx, family).await?;
        tx.commit().await?;
        tracing::warn!(%tenant_id, %user_id, %family, "security: a rotated refresh token was reused; its family is revoked");
        return Err(Problem::unauthorized());
    }
    sqlx::query("update refresh_tokens set used_at = now() where token_hash = $1")
        .bind(sha256(&request.refresh_token))
        .execute(tx.conn())
        .await?;
    let user: Option<(String, bool)> =
        sqlx::query_as("select role, active from user_credentials where user_id = $1")
            .bind(user_id)
            .fetch_optional(tx.conn())
            .await?;
    let Some((role, true)) = user else {
        revoke_family(&mut tx, family).await?;
        tx.commit().await?;
        return Err(Problem::unauthorized());
    };
    ensure_tenant_open(&app, tenant_id).await?;
    let tokens = issue_tokens(
        &app,
        &mut tx,
        tenant_id,
        user_id,
        parse_role(&role)?,
        Some(family),
    )
    .await?;
    tx.commit().await?;
    Ok(Json(tokens))
}

async fn revoke_family(tx: &mut TenantTx, family: Uuid) -> Result<(), Problem> {
    sqlx::query(
        "update refresh_tokens set revoked_at = now() where family_id = $1 and revoked_at is null",
    )
    .bind(family)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// `POST /v1/auth/logout`: ends the session (its whole token family). Idempotent.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    summary = "Revoke a refresh token (and its family)",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Revoke a refresh token (and its family)"),
        (status = 400, description = "The body is not valid JSON"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    )
)]
pub async fn logout(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<impl IntoResponse, Problem> {
    if let Some(tenant_id) = tenant_of_refresh_token(&request.refresh_token) {
        let mut tx = app.store.begin(tenant_id).await?;
        let family: Option<Uuid> =
            sqlx::query_scalar("select family_id from refresh_tokens where token_hash = $1")
                .bind(sha256(&request.refresh_token))
                .fetch_optional(tx.conn())
                .await?;
        if let Some(family) = family {
            revoke_family(&mut tx, family).await?;
        }
        tx.commit().await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    #[schema(value_type = String, example = "owner")]
    pub role: Role,
}

/// `GET /v1/me`: who the credential says the caller is.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "auth",
    summary = "Who the credential says the caller is",
    responses(
        (status = 200, description = "Who the credential says the caller is", body = Me),
        (status = 401, description = "No valid credential"),
        (status = 423, description = "The tenant is suspended (with the reason)")
    ),
    security(("bearer" = []))
)]
pub async fn me(principal: SignedIn) -> Json<Me> {
    Json(Me {
        tenant_id: principal.tenant_id,
        user_id: principal.user_id,
        role: principal.role,
    })
}
