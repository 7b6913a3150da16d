//! Connecting a tenant's WhatsApp number: checked against the Cloud API with the token given,
//! then `app::whatsapp::connect` seals the secrets, routes the number to the tenant and
//! records that a number was connected.

use axum::Json;
use axum::extract::State;
use domain::access::Permission;
use platform::answers::{ForbiddenOrUnverified, Invalid, JsonBody, Taken, TenantCaller};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use whatsapp::CloudApiError;

use crate::AppState;
use crate::caller::Caller;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// Meta's id of the number (WhatsApp Manager, API setup).
    #[schema(pattern = "^[0-9]{1,20}$", example = "106540352242922")]
    pub phone_number_id: String,
    /// A system user's permanent token with whatsapp_business_messaging.
    #[schema(max_length = 4096, pattern = "^[!-~]+$")]
    pub access_token: String,
    /// The Meta app's secret: webhooks are checked with it.
    #[schema(min_length = 16, max_length = 256)]
    pub app_secret: String,
    /// What Meta echoes when it verifies the webhook URL.
    #[schema(min_length = 16, max_length = 256)]
    pub verify_token: String,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectRequest")
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Connected {
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub verified_name: String,
    pub consistency_token: String,
}

#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "The WhatsApp Cloud API did not answer (Retry-After), or too many concurrent changes"
)]
pub struct CloudApiDown;

/// `PUT /v1/whatsapp`
#[utoipa::path(
    put,
    path = "/v1/whatsapp",
    tag = "whatsapp",
    summary = "Connect a WhatsApp number, checked with the Cloud API; secrets stored encrypted",
    request_body = ConnectRequest,
    responses(
        (status = 200, description = "The number, as Meta knows it", body = Connected),
        JsonBody, TenantCaller, ForbiddenOrUnverified, Taken, Invalid, CloudApiDown
    ),
    security(("bearer" = []))
)]
pub async fn connect(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ConnectRequest>,
) -> Result<Json<Connected>, Problem> {
    caller.require(Permission::ManageWhatsApp)?;
    // Before Meta is asked anything: a business whose email is not verified connects nothing.
    app::email_verification::require_verified(&state.app, caller.tenant_id).await?;
    let id = &request.phone_number_id;
    if !(1..=20).contains(&id.len()) || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Problem::invalid(
            "phone_number_id",
            "Meta's id of the number: 1 to 20 digits",
        ));
    }
    // Meta's tokens are printable ASCII: anything else could not even be sent to Meta.
    let token = &request.access_token;
    if token.is_empty() || token.len() > 4096 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Problem::invalid(
            "access_token",
            "Meta's access token: 1 to 4096 printable ASCII characters",
        ));
    }
    for (field, value, min, max) in [
        ("app_secret", &request.app_secret, 16, 256),
        ("verify_token", &request.verify_token, 16, 256),
    ] {
        let len = value.trim().chars().count();
        if !(min..=max).contains(&len) {
            return Err(Problem::invalid(
                field,
                format!("{min} to {max} characters"),
            ));
        }
    }
    let info = state
        .cloud_api
        .phone_number(&request.phone_number_id, &request.access_token)
        .await
        .map_err(|err| match err {
            CloudApiError::Meta {
                code: 190, message, ..
            } => Problem::invalid("access_token", format!("Meta refused the token: {message}")),
            CloudApiError::Meta { message, .. } => {
                Problem::invalid("phone_number_id", format!("Meta refused: {message}"))
            }
            CloudApiError::Unreachable(reason) => {
                // The reason names our own addresses: the log's, not the client's.
                tracing::warn!(%reason, "the WhatsApp Cloud API did not answer a number check");
                Problem::unavailable("the WhatsApp Cloud API did not answer", 30)
            }
        })?;
    let connection = app::whatsapp::Connection {
        phone_number_id: request.phone_number_id,
        display_phone_number: info.display_phone_number,
        access_token: request.access_token,
        app_secret: request.app_secret,
        verify_token: request.verify_token,
    };
    let done = app::whatsapp::connect(&state.app, &caller.context(), connection.clone()).await?;
    // Webhooks for the old number stop routing here; the new one routes here.
    let mut changed = vec![connection.phone_number_id.as_str()];
    changed.extend(done.value.as_deref());
    state.routes.forget(&changed).await;
    state.secrets.forget(caller.tenant_id);
    Ok(Json(Connected {
        consistency_token: done.consistency_token(),
        phone_number_id: connection.phone_number_id,
        display_phone_number: connection.display_phone_number,
        verified_name: info.verified_name,
    }))
}
