//! TOTP second factor (RFC 6238: SHA-1, 6 digits, 30-second steps, one step of clock skew).
//! Enrolling returns the secret once (as an `otpauth://` URL for authenticator apps); it is
//! stored sealed and only switches on after a first valid code. A code is accepted once: the
//! step it belongs to must be later than the last accepted one.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::caller::SignedIn;
use axum::Json;
use axum::extract::State;
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use totp_rs::{Algorithm, TOTP};
use uuid::Uuid;

use crate::AppState;
use crate::exec::{CommandContext, append_in, expect, load, stream};
use domain::access::{User, UserCommand, UserEvent};
use domain::decider::Decider as _;

const STEP: u64 = 30;

fn totp(secret: Vec<u8>, account: &str) -> Result<TOTP, Problem> {
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        STEP,
        secret,
        Some("Booking".into()),
        account.to_owned(),
    )
    .map_err(|e| Problem::internal(format!("TOTP: {e:?}")))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The step `code` is valid for (now, or one step either side), if it is valid.
fn matching_step(totp: &TOTP, code: &str, at: u64) -> Option<i64> {
    let code = code.trim();
    [at.saturating_sub(STEP), at, at + STEP]
        .into_iter()
        .find_map(|t| {
            let expected = totp.generate(t);
            // Constant-time comparison of equal-length digit strings.
            let same = expected.len() == code.len()
                && subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into();
            same.then_some((t / STEP) as i64)
        })
}

/// Checks a code for a user inside the caller's tenant transaction and records its step.
/// `Ok(None)` when the user has no second factor switched on.
pub async fn check_code(
    app: &AppState,
    tx: &mut eventstore::TenantTx,
    user_id: Uuid,
    code: Option<&str>,
) -> Result<Option<()>, Problem> {
    let row: Option<(Vec<u8>, i64)> = sqlx::query_as(
        "select secret_enc, last_step from mfa_secrets where user_id = $1 and enabled for update",
    )
    .bind(user_id)
    .fetch_optional(tx.conn())
    .await?;
    let Some((sealed, last_step)) = row else {
        return Ok(None);
    };
    let code = code.ok_or_else(|| {
        Problem::new(
            axum::http::StatusCode::UNAUTHORIZED,
            "mfa-required",
            "A one-time code is required",
        )
        .detail("send `totp` with the code from your authenticator app")
    })?;
    let secret = app
        .sealer
        .open(&sealed)
        .ok_or_else(|| Problem::internal("unreadable TOTP secret"))?;
    let step = matching_step(&totp(secret, "user")?, code, now())
        .filter(|s| *s > last_step)
        .ok_or_else(Problem::unauthorized)?;
    sqlx::query("update mfa_secrets set last_step = $1 where user_id = $2")
        .bind(step)
        .bind(user_id)
        .execute(tx.conn())
        .await?;
    Ok(Some(()))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Enrollment {
    /// Base32, for typing into an authenticator app. Shown once.
    pub secret: String,
    pub otpauth_url: String,
}

/// `POST /v1/auth/mfa/enroll`: a new secret, off until verified (replaces a pending one).
#[utoipa::path(
    post,
    path = "/v1/auth/mfa/enroll",
    tag = "auth",
    summary = "Start TOTP enrolment: a secret and an otpauth URL",
    responses(
        (status = 200, description = "Start TOTP enrolment: a secret and an otpauth URL", body = Enrollment),
        (status = 401, description = "No valid credential"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 423, description = "The tenant is suspended (with the reason)")
    ),
    security(("bearer" = []))
)]
pub async fn enroll(
    State(app): State<AppState>,
    principal: SignedIn,
) -> Result<Json<Enrollment>, Problem> {
    let secret: [u8; 20] = rand::random();
    let totp = totp(secret.to_vec(), &principal.user_id.to_string())?;
    let mut tx = app.store.begin(principal.tenant_id).await?;
    let enabled: Option<bool> =
        sqlx::query_scalar("select enabled from mfa_secrets where user_id = $1")
            .bind(principal.user_id)
            .fetch_optional(tx.conn())
            .await?;
    if enabled == Some(true) {
        return Err(Problem::conflict("a second factor is already on"));
    }
    sqlx::query(
        "insert into mfa_secrets (tenant_id, user_id, secret_enc) values ($1, $2, $3)
         on conflict (tenant_id, user_id) do update set secret_enc = excluded.secret_enc, last_step = 0",
    )
    .bind(principal.tenant_id)
    .bind(principal.user_id)
    .bind(app.sealer.seal(&secret))
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(Json(Enrollment {
        secret: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    pub code: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Verified {
    pub enabled: bool,
}

/// `POST /v1/auth/mfa/verify`: the first valid code switches the second factor on.
#[utoipa::path(
    post,
    path = "/v1/auth/mfa/verify",
    tag = "auth",
    summary = "Switch TOTP on with a first code",
    request_body = VerifyRequest,
    responses(
        (status = 200, description = "Switch TOTP on with a first code", body = Verified),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 423, description = "The tenant is suspended (with the reason)")
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(app): State<AppState>,
    principal: SignedIn,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<Verified>, Problem> {
    let mut tx = app.store.begin(principal.tenant_id).await?;
    let row: Option<(Vec<u8>, bool)> =
        sqlx::query_as("select secret_enc, enabled from mfa_secrets where user_id = $1 for update")
            .bind(principal.user_id)
            .fetch_optional(tx.conn())
            .await?;
    let Some((sealed, enabled)) = row else {
        return Err(Problem::conflict("enroll first (POST /v1/auth/mfa/enroll)"));
    };
    if enabled {
        return Err(Problem::conflict("a second factor is already on"));
    }
    let secret = app
        .sealer
        .open(&sealed)
        .ok_or_else(|| Problem::internal("unreadable TOTP secret"))?;
    let step = matching_step(&totp(secret, "user")?, &request.code, now())
        .ok_or_else(|| Problem::invalid("code", "not the current code"))?;
    sqlx::query("update mfa_secrets set enabled = true, last_step = $1 where user_id = $2")
        .bind(step)
        .bind(principal.user_id)
        .execute(tx.conn())
        .await?;
    // The switch is also an event on the user's stream, in the same unit of work.
    let user_stream = stream::<UserEvent>(principal.user_id);
    let (user, version) = load::<User>(&app.store, principal.tenant_id, &user_stream).await?;
    let events = User::decide(&user, UserCommand::EnableSecondFactor)
        .map_err(|e| Problem::conflict(format!("this user {e}")))?;
    let ctx = CommandContext {
        tenant_id: principal.tenant_id,
        actor: format!("user:{}", principal.user_id),
        request_id: None,
        idempotency_key: format!("second-factor-on:{}", principal.user_id),
    };
    append_in(
        &app.store,
        &mut tx,
        &ctx,
        &user_stream,
        expect(version),
        &events,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(tenant = %principal.tenant_id, user = %principal.user_id, "security: second factor switched on");
    Ok(Json(Verified { enabled: true }))
}
