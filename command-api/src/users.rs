//! Team members over HTTP: invitations, accepting one, role changes, deactivation. The use
//! cases are `app::team`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;
use domain::access::{Permission, Role};
use domain::values::Email;
use platform::answers::{
    Busy, Conflict, Forbidden, Invalid, InvalidOrKeyReused, JsonBody, KeyedConflict, NotFound,
    PaymentRequired, TenantCaller, Unauthenticated,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{TokenPair, tokens};
use crate::caller::Caller;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(value_type = String, format = "email")]
    pub email: Email,
    #[schema(schema_with = platform::schemas::role)]
    pub role: Role,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invited {
    pub user_id: Uuid,
    /// Shown once: the invitee sets a password with it (`POST /v1/auth/accept-invitation`).
    pub invitation_token: String,
    pub expires_at: chrono::DateTime<Utc>,
    pub consistency_token: String,
}

/// `POST /v1/users`
#[utoipa::path(
    post,
    path = "/v1/users",
    tag = "users",
    summary = "Invite a person with a role",
    request_body = InviteRequest,
    responses(
        (status = 201, description = "The invitation, with its token (shown once)", body = Invited),
        JsonBody, TenantCaller, Forbidden, KeyedConflict, InvalidOrKeyReused, PaymentRequired, Busy
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<InviteRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageUsers)?;
    let done = app::team::invite(
        &state.app,
        &caller.context(),
        &caller.actor,
        request.email,
        request.role,
    )
    .await?;
    let consistency_token = done.consistency_token();
    let invited = done.value;
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            user_id: invited.user_id,
            invitation_token: invited.invitation_token,
            expires_at: invited.expires_at,
            consistency_token,
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub invitation_token: String,
    #[schema(schema_with = platform::schemas::password)]
    pub password: String,
}

/// `POST /v1/auth/accept-invitation`: sets the password and signs the new member in. Once.
#[utoipa::path(
    post,
    path = "/v1/auth/accept-invitation",
    tag = "users",
    summary = "Accept an invitation: set a password, get tokens",
    request_body = AcceptRequest,
    responses(
        (status = 200, description = "The new member's tokens", body = TokenPair),
        JsonBody, Unauthenticated, Invalid
    )
)]
pub async fn accept(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<AcceptRequest>,
) -> Result<Json<TokenPair>, Problem> {
    let session =
        app::team::accept_invitation(&state.app, &request.invitation_token, request.password)
            .await?;
    Ok(Json(tokens(&state, &session)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[schema(schema_with = platform::schemas::role)]
    pub role: Role,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UserChanged)]
pub struct Changed {
    pub user_id: Uuid,
    pub consistency_token: String,
}

fn user_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse().map_err(|_| Problem::not_found("user"))
}

/// `PUT /v1/users/{id}/role`
#[utoipa::path(
    put,
    path = "/v1/users/{id}/role",
    tag = "users",
    summary = "Change a user's role",
    request_body = RoleRequest,
    params(
        ("id" = Uuid, Path, description = "The user")
    ),
    responses(
        (status = 200, description = "The role is changed", body = Changed),
        JsonBody, TenantCaller, Forbidden, NotFound, Conflict, Invalid, Busy
    ),
    security(("bearer" = []))
)]
pub async fn change_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RoleRequest>,
) -> Result<Json<Changed>, Problem> {
    caller.require(Permission::ManageUsers)?;
    let id = user_id(&id)?;
    let done = app::team::change_role(
        &state.app,
        &caller.context(),
        &caller.actor,
        id,
        request.role,
    )
    .await?;
    Ok(Json(Changed {
        user_id: id,
        consistency_token: done.consistency_token(),
    }))
}

/// `POST /v1/users/{id}/deactivate`: no more sign-ins, every session of the user ends.
#[utoipa::path(
    post,
    path = "/v1/users/{id}/deactivate",
    tag = "users",
    summary = "Deactivate a user (their sessions end)",
    params(
        ("id" = Uuid, Path, description = "The user")
    ),
    responses(
        (status = 200, description = "The user is deactivated", body = Changed),
        TenantCaller, Forbidden, NotFound, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Changed>, Problem> {
    caller.require(Permission::ManageUsers)?;
    let id = user_id(&id)?;
    let done = app::team::deactivate(&state.app, &caller.context(), &caller.actor, id).await?;
    Ok(Json(Changed {
        user_id: id,
        consistency_token: done.consistency_token(),
    }))
}
