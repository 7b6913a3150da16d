//! The TOTP second factor over HTTP: enrolling returns the secret once (as an `otpauth://`
//! URL for authenticator apps); it switches on with a first valid code. The use cases are
//! `app::sessions`.

use axum::Json;
use axum::extract::State;
use platform::answers::{Conflict, Invalid, JsonBody, Suspended, Unauthenticated};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::caller::SignedIn;

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
        (status = 200, description = "The secret, shown once", body = Enrollment),
        Unauthenticated, Conflict, Suspended
    ),
    security(("bearer" = []))
)]
pub async fn enroll(
    State(state): State<AppState>,
    principal: SignedIn,
) -> Result<Json<Enrollment>, Problem> {
    let enrollment =
        app::sessions::enroll_second_factor(&state.app, principal.tenant_id, principal.user_id)
            .await?;
    Ok(Json(Enrollment {
        secret: enrollment.secret,
        otpauth_url: enrollment.otpauth_url,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The six digits the authenticator app shows now.
    #[schema(pattern = "^[0-9]{6}$", example = "123456")]
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
        (status = 200, description = "The second factor is on", body = Verified),
        JsonBody, Unauthenticated, Conflict, Invalid, Suspended
    ),
    security(("bearer" = []))
)]
pub async fn verify(
    State(state): State<AppState>,
    principal: SignedIn,
    ApiJson(request): ApiJson<VerifyRequest>,
) -> Result<Json<Verified>, Problem> {
    app::sessions::enable_second_factor(
        &state.app,
        principal.tenant_id,
        principal.user_id,
        &request.code,
    )
    .await?;
    Ok(Json(Verified { enabled: true }))
}
