//! Team members: invitations (a one-time token, shown once), accepting one, role changes,
//! deactivation. Events carry metadata only; tokens and hashes stay in their tables.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use domain::Decider as _;
use domain::access::{AccessError, Permission, Role, User, UserCommand, UserEvent};
use domain::ids::UserId;
use domain::values::Email;
use eventstore::ExpectedVersion;
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::auth::{TokenPair, issue_tokens};
use crate::caller::Caller;
use crate::exec::{append_in, execute, stream};
use crate::secrets::{hash_password, new_refresh_token, sha256, tenant_of_refresh_token};

pub const INVITATION_DAYS: i64 = 7;

fn problem_of(err: AccessError) -> Problem {
    match err {
        AccessError::NotFound => Problem::not_found("user"),
        other => Problem::conflict(format!("the user {other}")),
    }
}

/// Only an owner may make (or unmake) an owner.
fn may_grant(caller: &Caller, role: Role) -> Result<(), Problem> {
    if role == Role::Owner && caller.role() != Some(Role::Owner) {
        return Err(Problem::forbidden(
            "only an owner may grant or change the owner role",
        ));
    }
    Ok(())
}

fn role_name(role: Role) -> String {
    serde_json::to_value(role)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(value_type = String, format = "email")]
    pub email: Email,
    #[schema(value_type = String, example = "staff")]
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
        (status = 201, description = "Invite a person with a role", body = Invited),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn invite(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<InviteRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageUsers)?;
    may_grant(&caller, request.role)?;
    let ctx = caller.context();
    let user_id = Uuid::new_v4();
    let token = new_refresh_token(ctx.tenant_id);
    let expires_at = Utc::now() + Duration::days(INVITATION_DAYS);
    let events = User::decide(
        &Default::default(),
        UserCommand::Invite {
            user_id: UserId::from_uuid(user_id),
            email: request.email.clone(),
            role: request.role,
            invited_by: caller.user_id().map(UserId::from_uuid),
        },
    )
    .map_err(problem_of)?;
    let user_stream = stream::<UserEvent>(user_id);
    let mut tx = app.store.begin(ctx.tenant_id).await?;
    // No password until the invitation is accepted: the empty hash never verifies.
    let inserted = sqlx::query("insert into user_credentials (tenant_id, user_id, email, password_hash, role) values ($1, $2, $3, '', $4)")
        .bind(ctx.tenant_id)
        .bind(user_id)
        .bind(request.email.as_str())
        .bind(role_name(request.role))
        .execute(tx.conn())
        .await;
    match inserted {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(
                Problem::conflict("someone with this email is already on the team")
                    .field("email", "already a member"),
            );
        }
        other => other?,
    };
    sqlx::query("insert into invitations (tenant_id, token_hash, user_id, expires_at) values ($1, $2, $3, $4)")
        .bind(ctx.tenant_id)
        .bind(sha256(&token))
        .bind(user_id)
        .bind(expires_at)
        .execute(tx.conn())
        .await?;
    let outcome = append_in(
        &app.store,
        &mut tx,
        &ctx,
        &user_stream,
        ExpectedVersion::NoStream,
        &events,
    )
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Invited {
            user_id,
            invitation_token: token,
            expires_at,
            consistency_token: outcome.last_position.to_string(),
        }),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptRequest {
    pub invitation_token: String,
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
        (status = 200, description = "Accept an invitation: set a password, get tokens", body = TokenPair),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 423, description = "The tenant is suspended (with the reason)")
    )
)]
pub async fn accept(
    State(app): State<AppState>,
    ApiJson(request): ApiJson<AcceptRequest>,
) -> Result<Json<TokenPair>, Problem> {
    if !(10..=128).contains(&request.password.chars().count()) {
        return Err(Problem::invalid(
            "password",
            "a password is 10 to 128 characters",
        ));
    }
    let tenant_id =
        tenant_of_refresh_token(&request.invitation_token).ok_or_else(Problem::unauthorized)?;
    let hash = hash_password(request.password).await?;
    let mut tx = app.store.begin(tenant_id).await?;
    let user_id: Option<Uuid> = sqlx::query_scalar(
        "update invitations set used_at = now()
          where token_hash = $1 and used_at is null and expires_at > now()
         returning user_id",
    )
    .bind(sha256(&request.invitation_token))
    .fetch_optional(tx.conn())
    .await?;
    let user_id = user_id.ok_or_else(Problem::unauthorized)?;
    let role: Option<String> = sqlx::query_scalar("update user_credentials set password_hash = $1 where user_id = $2 and active returning role")
        .bind(&hash)
        .bind(user_id)
        .fetch_optional(tx.conn())
        .await?;
    let role: Role = role
        .and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok())
        .ok_or_else(Problem::unauthorized)?;
    let tokens = issue_tokens(&app, &mut tx, tenant_id, user_id, role, None).await?;
    tx.commit().await?;
    Ok(Json(tokens))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[schema(value_type = String, example = "staff")]
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
        (status = 200, description = "Change a user's role", body = Changed),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn change_role(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RoleRequest>,
) -> Result<Json<Changed>, Problem> {
    caller.require(Permission::ManageUsers)?;
    may_grant(&caller, request.role)?;
    let id = user_id(&id)?;
    if caller.user_id() == Some(id) {
        return Err(Problem::forbidden("you cannot change your own role"));
    }
    let ctx = caller.context();
    let done = execute::<User>(&app.store, &ctx, &stream::<UserEvent>(id), |state, _| {
        if state.user.as_ref().is_some_and(|u| u.2 == Role::Owner) {
            may_grant(&caller, Role::Owner)?;
        }
        User::decide(state, UserCommand::ChangeRole { role: request.role }).map_err(problem_of)
    })
    .await?;
    let mut tx = app.store.begin(ctx.tenant_id).await?;
    sqlx::query("update user_credentials set role = $1 where user_id = $2")
        .bind(role_name(request.role))
        .bind(id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    Ok(Json(Changed {
        user_id: id,
        consistency_token: done.consistency_token,
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
        (status = 200, description = "Deactivate a user (their sessions end)", body = Changed),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)")
    ),
    security(("bearer" = []))
)]
pub async fn deactivate(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Changed>, Problem> {
    caller.require(Permission::ManageUsers)?;
    let id = user_id(&id)?;
    if caller.user_id() == Some(id) {
        return Err(Problem::forbidden("you cannot deactivate yourself"));
    }
    let ctx = caller.context();
    let done = execute::<User>(&app.store, &ctx, &stream::<UserEvent>(id), |state, _| {
        if state.user.as_ref().is_some_and(|u| u.2 == Role::Owner) {
            may_grant(&caller, Role::Owner)?;
        }
        User::decide(state, UserCommand::Deactivate).map_err(problem_of)
    })
    .await?;
    let mut tx = app.store.begin(ctx.tenant_id).await?;
    sqlx::query("update user_credentials set active = false where user_id = $1")
        .bind(id)
        .execute(tx.conn())
        .await?;
    sqlx::query(
        "update refresh_tokens set revoked_at = now() where user_id = $1 and revoked_at is null",
    )
    .bind(id)
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Json(Changed {
        user_id: id,
        consistency_token: done.consistency_token,
    }))
}
