//! Sessions over HTTP: login, refresh (rotating, with reuse detection), logout, who-am-I. The
//! use cases are `app::sessions`; this mints the access token of each session.

use app::AppError;
use app::sessions::{Login, Session};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use domain::access::{Permission, Role};
use platform::answers::{Invalid, JsonBody, RateLimited, Suspended, Unauthenticated};
use platform::problem::{ApiJson, Problem};
use platform::security::SecurityEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::{Actor, Caller};
use crate::client::ClientIp;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: u64,
}

/// A session's tokens: its refresh token and a new access token.
pub fn tokens(state: &AppState, session: &Session) -> Result<TokenPair, Problem> {
    Ok(TokenPair {
        access_token: state.keys.issue(
            session.tenant_id,
            session.user_id,
            session.role,
            platform::auth::SessionRef {
                id: session.session_id,
                epoch: session.epoch,
            },
        )?,
        refresh_token: session.refresh_token.clone(),
        token_type: "Bearer".into(),
        expires_in: state.keys.access_ttl().as_secs(),
    })
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

/// An account as the limits name it: the business the slug names (if any) and the email,
/// normalised. The business too.
async fn account_of(
    state: &AppState,
    slug: &str,
    email: &str,
) -> Result<(Option<Uuid>, String), Problem> {
    let tenant_id = app::sessions::tenant_of_slug(&state.app, slug).await?;
    let account = format!(
        "{}:{}",
        tenant_id.map(|t| t.to_string()).unwrap_or_default(),
        email.trim().to_lowercase()
    );
    Ok((tenant_id, account))
}

/// `POST /v1/auth/login`. Every failure is the same 401, after the same work.
///
/// Guessing is throttled where it comes from, never where it aims: an address may try so many
/// logins a minute, whatever the account; an address that got an account's password wrong five
/// times waits before it may try that account again (and longer as it goes on), right password
/// or not; and while an account draws many failures from everywhere, each further failure is
/// answered late (up to 5 s, growing with them). The member with the right password, from an
/// address that has not been guessing, is signed in at once. Each failure is a security event
/// naming the account and the address.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    summary = "Log in with slug, email, password (and TOTP code when enrolled)",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "The session's tokens", body = TokenPair),
        JsonBody, Unauthenticated, Invalid, Suspended, RateLimited
    )
)]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<TokenPair>, Problem> {
    use crate::limits::{
        AUTH_PER_IP, LOGIN_FAILURES_PER_ACCOUNT, LOGIN_FAILURES_PER_SOURCE,
        LOGIN_FAILURES_PER_SOURCE_HOURLY,
    };
    state
        .limit(&format!("login-ip:{client}"), AUTH_PER_IP)
        .await?;
    let (tenant_id, account) = account_of(&state, &request.slug, &request.email).await?;
    let email = request.email.trim().to_lowercase();
    // This address's failures on this account: checked first, counted only when wrong.
    let failures = [
        (
            format!("login-failed:{account}:{client}"),
            LOGIN_FAILURES_PER_SOURCE,
        ),
        (
            format!("login-failed-hour:{account}:{client}"),
            LOGIN_FAILURES_PER_SOURCE_HOURLY,
        ),
    ];
    for (subject, quota) in &failures {
        if let Err(limited) = state.limiter.peek(subject, *quota).await {
            state.security.record(SecurityEvent {
                kind: "login_throttled",
                tenant_id,
                actor: None,
                source: Some(client.to_string()),
                detail: serde_json::json!({ "account": email }),
            });
            return Err(Problem::too_many_requests(
                limited.retry_after.as_secs().max(1),
            ));
        }
    }
    let signed_in = app::sessions::login(
        &state.app,
        Login {
            tenant_id,
            email: request.email,
            password: request.password,
            totp: request.totp,
        },
    )
    .await;
    match signed_in {
        Ok(session) => Ok(Json(tokens(&state, &session)?)),
        Err(AppError::Unauthenticated) => {
            state.security.record(SecurityEvent {
                kind: "login_failed",
                tenant_id,
                actor: None,
                source: Some(client.to_string()),
                detail: serde_json::json!({ "account": email }),
            });
            for (subject, quota) in &failures {
                let _ = state.limiter.check(subject, *quota).await;
            }
            let account_key = format!("login-failed:{account}");
            if let Err(limited) = state
                .limiter
                .check(&account_key, LOGIN_FAILURES_PER_ACCOUNT)
                .await
            {
                // Many failures on this account from everywhere: each further one waits.
                tokio::time::sleep(limited.retry_after.min(std::time::Duration::from_secs(5)))
                    .await;
            }
            Err(AppError::Unauthenticated.into())
        }
        Err(other) => Err(other.into()),
    }
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
        (status = 200, description = "The rotated session's tokens", body = TokenPair),
        JsonBody, Unauthenticated, Invalid, Suspended
    )
)]
pub async fn refresh(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Json<TokenPair>, Problem> {
    let session = app::sessions::refresh(&state.app, &request.refresh_token).await?;
    Ok(Json(tokens(&state, &session)?))
}

/// `POST /v1/auth/logout`: ends the session (its whole token family). Idempotent.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "auth",
    summary = "Revoke a refresh token (and its family)",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "The session is over (also for a token that was not one)"),
        JsonBody, Invalid
    )
)]
pub async fn logout(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<impl IntoResponse, Problem> {
    app::sessions::logout(&state.app, &request.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who a credential is: a member (`user_id`, `role`) or an API key (`api_key_id`, `scopes`).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Me {
    pub tenant_id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "owner")]
    pub role: Option<Role>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_id: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>, example = json!(["read_bookings"]))]
    pub scopes: Option<Vec<Permission>>,
}

/// `GET /v1/me`: who the credential says the caller is.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "auth",
    summary = "Who the credential (an access token or an API key) says the caller is",
    responses(
        (status = 200, description = "The member, or the API key", body = Me),
        Unauthenticated, RateLimited, Suspended
    ),
    security(("bearer" = []))
)]
pub async fn me(caller: Caller) -> Json<Me> {
    let tenant_id = caller.tenant_id;
    Json(match caller.actor {
        Actor::User { id, role } => Me {
            tenant_id,
            user_id: Some(id),
            role: Some(role),
            api_key_id: None,
            scopes: None,
        },
        Actor::ApiKey { id, scopes } => Me {
            tenant_id,
            user_id: None,
            role: None,
            api_key_id: Some(id),
            scopes: Some(scopes),
        },
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    pub slug: String,
    pub email: String,
}

/// `POST /v1/auth/password-reset`: emails a reset link to the member, if there is one. The
/// answer is the same either way.
#[utoipa::path(
    post,
    path = "/v1/auth/password-reset",
    tag = "auth",
    summary = "Ask for a password-reset link by email (the same 202 whether or not the member exists)",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "If the member exists, a link is on its way"),
        JsonBody, Invalid, RateLimited
    )
)]
pub async fn request_password_reset(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(request): ApiJson<PasswordResetRequest>,
) -> Result<StatusCode, Problem> {
    state
        .limit(&format!("reset-ip:{client}"), crate::limits::AUTH_PER_IP)
        .await?;
    let (tenant_id, account) = account_of(&state, &request.slug, &request.email).await?;
    state
        .limit(
            &format!("reset:{account}"),
            crate::limits::RESETS_PER_ACCOUNT,
        )
        .await?;
    app::sessions::request_password_reset(&state.app, tenant_id, &request.email).await?;
    Ok(StatusCode::ACCEPTED)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token of the emailed link.
    pub token: String,
    #[schema(schema_with = platform::schemas::password)]
    pub password: String,
}

impl std::fmt::Debug for PasswordResetConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordResetConfirm")
            .finish_non_exhaustive()
    }
}

/// `POST /v1/auth/password-reset/confirm`: the new password; every session of the member ends.
#[utoipa::path(
    post,
    path = "/v1/auth/password-reset/confirm",
    tag = "auth",
    summary = "Choose a new password with the emailed token (once, within the hour); every session ends",
    request_body = PasswordResetConfirm,
    responses(
        (status = 204, description = "The password is changed: log in with it"),
        JsonBody, Invalid, RateLimited
    )
)]
pub async fn confirm_password_reset(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(request): ApiJson<PasswordResetConfirm>,
) -> Result<StatusCode, Problem> {
    state
        .limit(&format!("reset-ip:{client}"), crate::limits::AUTH_PER_IP)
        .await?;
    app::sessions::reset_password(&state.app, &request.token, request.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
