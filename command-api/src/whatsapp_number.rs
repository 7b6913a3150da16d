//! Connecting a tenant's WhatsApp number: checked against the Cloud API with the token given,
//! secrets stored encrypted, the number routed to the tenant, and an event that says only that
//! a number was connected.

use axum::Json;
use axum::extract::State;
use domain::Decider as _;
use domain::access::Permission;
use domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent, WhatsAppNumber};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use whatsapp::CloudApiError;

use crate::AppState;
use crate::caller::Caller;
use crate::exec::{append_in, expect, load, stream};
use crate::secrets::sha256;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    pub phone_number_id: String,
    pub access_token: String,
    pub app_secret: String,
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

/// `PUT /v1/whatsapp`
#[utoipa::path(
    put,
    path = "/v1/whatsapp",
    tag = "whatsapp",
    summary = "Connect a WhatsApp number, checked with the Cloud API; secrets stored encrypted",
    request_body = ConnectRequest,
    responses(
        (status = 200, description = "Connect a WhatsApp number, checked with the Cloud API; secrets stored encrypted", body = Connected),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 503, description = "A dependency is down, or too busy (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn connect(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ConnectRequest>,
) -> Result<Json<Connected>, Problem> {
    caller.require(Permission::ManageWhatsApp)?;
    for (field, value, min) in [
        ("app_secret", &request.app_secret, 16),
        ("verify_token", &request.verify_token, 16),
        ("access_token", &request.access_token, 1),
    ] {
        if value.trim().chars().count() < min {
            return Err(Problem::invalid(
                field,
                format!("at least {min} characters"),
            ));
        }
    }
    let info = app
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
            CloudApiError::Unreachable(reason) => Problem::unavailable(
                format!("the WhatsApp Cloud API did not answer: {reason}"),
                30,
            ),
        })?;

    let ctx = caller.context();
    let tenant_id = ctx.tenant_id;
    let tenant_stream = stream::<TenantEvent>(tenant_id);
    let (state, version) = load::<Tenant>(&app.store, tenant_id, &tenant_stream).await?;
    let events = Tenant::decide(
        &state,
        TenantCommand::ConnectWhatsApp(WhatsAppNumber {
            phone_number_id: request.phone_number_id.clone(),
            display_phone_number: info.display_phone_number.clone(),
        }),
    )
    .map_err(|e: TenantError| Problem::conflict(e.to_string()))?;

    let mut tx = app.store.begin(tenant_id).await?;
    let routed = sqlx::query(
        "insert into whatsapp_routes (phone_number_id, tenant_id, verify_token_hash) values ($1, $2, $3)
         on conflict (tenant_id) do update
           set phone_number_id = excluded.phone_number_id, verify_token_hash = excluded.verify_token_hash, updated_at = now()",
    )
    .bind(&request.phone_number_id)
    .bind(tenant_id)
    .bind(sha256(&request.verify_token))
    .execute(tx.conn())
    .await;
    match routed {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(
                Problem::conflict("this number is connected to another account")
                    .field("phone_number_id", "already connected"),
            );
        }
        other => other?,
    };
    sqlx::query(
        "insert into whatsapp_credentials (tenant_id, phone_number_id, display_phone_number, access_token_enc, app_secret_enc)
         values ($1, $2, $3, $4, $5)
         on conflict (tenant_id) do update
           set phone_number_id = excluded.phone_number_id, display_phone_number = excluded.display_phone_number,
               access_token_enc = excluded.access_token_enc, app_secret_enc = excluded.app_secret_enc, updated_at = now()",
    )
    .bind(tenant_id)
    .bind(&request.phone_number_id)
    .bind(&info.display_phone_number)
    .bind(app.sealer.seal(request.access_token.as_bytes()))
    .bind(app.sealer.seal(request.app_secret.as_bytes()))
    .execute(tx.conn())
    .await?;
    let outcome = append_in(
        &app.store,
        &mut tx,
        &ctx,
        &tenant_stream,
        expect(version),
        &events,
    )
    .await?;
    tx.commit().await?;
    // Webhooks for the old number stop routing here; the new one routes here.
    let previous = state
        .onboarded
        .as_ref()
        .and_then(|t| t.whatsapp.as_ref())
        .map(|w| w.phone_number_id.clone());
    let mut changed = vec![request.phone_number_id.as_str()];
    changed.extend(previous.as_deref());
    app.routes.forget(&changed).await;
    Ok(Json(Connected {
        phone_number_id: request.phone_number_id,
        display_phone_number: info.display_phone_number,
        verified_name: info.verified_name,
        consistency_token: outcome.last_position.to_string(),
    }))
}
