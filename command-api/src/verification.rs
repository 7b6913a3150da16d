//! The owner's email, verified: the emailed link's token (`POST /v1/auth/verify-email`, no
//! credential: the link may be opened in another browser) and another link on request
//! (`POST /v1/auth/verify-email/resend`). The use cases are `app::email_verification`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use domain::access::Permission;
use platform::answers::{Busy, Conflict, Forbidden, Invalid, JsonBody, RateLimited, TenantCaller};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::client::ClientIp;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token of the emailed link.
    #[schema(max_length = 200)]
    pub token: String,
}

impl std::fmt::Debug for VerifyEmailRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyEmailRequest").finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EmailVerified {
    pub tenant_id: Uuid,
    /// Pass it to the query API as `X-Consistency-Token` to read the business verified.
    pub consistency_token: String,
}

/// `POST /v1/auth/verify-email`
#[utoipa::path(
    post,
    path = "/v1/auth/verify-email",
    tag = "auth",
    summary = "Verify the business's contact email with the emailed link's token (once, within three days); WhatsApp and bookings open",
    request_body = VerifyEmailRequest,
    responses(
        (status = 200, description = "The email is verified", body = EmailVerified),
        JsonBody, Invalid, RateLimited, Busy
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    ApiJson(request): ApiJson<VerifyEmailRequest>,
) -> Result<Json<EmailVerified>, Problem> {
    state
        .limit(&format!("verify-ip:{client}"), crate::limits::AUTH_PER_IP)
        .await?;
    let done = app::email_verification::verify(&state.app, request.token.trim()).await?;
    Ok(Json(EmailVerified {
        tenant_id: done.value,
        consistency_token: done.consistency_token(),
    }))
}

/// `POST /v1/auth/verify-email/resend`
#[utoipa::path(
    post,
    path = "/v1/auth/verify-email/resend",
    tag = "auth",
    summary = "Email another verification link to the business's contact address",
    responses(
        (status = 202, description = "A new link is on its way (earlier ones still work until they expire)"),
        TenantCaller, Forbidden, Conflict, Busy
    ),
    security(("bearer" = []))
)]
pub async fn resend(State(state): State<AppState>, caller: Caller) -> Result<StatusCode, Problem> {
    caller.require(Permission::ManageWhatsApp)?;
    state
        .limit(
            &format!("verify-resend:{}", caller.tenant_id),
            crate::limits::RESETS_PER_ACCOUNT,
        )
        .await?;
    app::email_verification::resend(&state.app, &caller.context()).await?;
    Ok(StatusCode::ACCEPTED)
}
