//! Platform operator routes: suspending and reinstating a tenant. The tenant comes from the
//! path here, under an operator credential that no tenant holds.

use app::CommandContext;
use axum::Json;
use axum::extract::{Path, State};
use domain::values::Reason;
use platform::answers::{
    Busy, Conflict, IdempotencyKey, InvalidOrKeyReused, JsonBody, NotFound, Unauthenticated,
};
use platform::auth::Operator;
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    #[schema(value_type = String, format = "visible-text", min_length = 1, max_length = 500)]
    pub reason: Reason,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TenantStatusChanged)]
pub struct Changed {
    pub tenant_id: Uuid,
    pub status: &'static str,
    pub consistency_token: String,
}

/// The tenant of the path, in the operator's name.
fn operating(operator: &Operator, tenant: &str) -> Result<CommandContext, Problem> {
    let tenant_id: Uuid = tenant.parse().map_err(|_| Problem::not_found("tenant"))?;
    Ok(CommandContext::fresh(
        tenant_id,
        format!("operator:{}", operator.id),
    ))
}

/// `POST /v1/operator/tenants/{id}/suspend`
#[utoipa::path(
    post,
    path = "/v1/operator/tenants/{id}/suspend",
    tag = "operator",
    summary = "Suspend a tenant (platform operator only)",
    request_body = SuspendRequest,
    params(
        ("id" = Uuid, Path, description = "The tenant"),
        IdempotencyKey
    ),
    responses(
        (status = 200, description = "The tenant is suspended", body = Changed),
        JsonBody, Unauthenticated, NotFound, Conflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn suspend(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant): Path<String>,
    ApiJson(request): ApiJson<SuspendRequest>,
) -> Result<Json<Changed>, Problem> {
    let ctx = operating(&operator, &tenant)?;
    let done = app::tenants::suspend(&state.app, &ctx, request.reason.clone()).await?;
    state.tenant_status.forget(ctx.tenant_id).await;
    tracing::info!(operator = %operator.id, tenant_id = %ctx.tenant_id, reason = %request.reason, "operator suspended a tenant");
    Ok(Json(Changed {
        tenant_id: ctx.tenant_id,
        status: "suspended",
        consistency_token: done.consistency_token(),
    }))
}

/// `POST /v1/operator/tenants/{id}/reinstate`
#[utoipa::path(
    post,
    path = "/v1/operator/tenants/{id}/reinstate",
    tag = "operator",
    summary = "Reinstate a suspended tenant (platform operator only)",
    params(
        ("id" = Uuid, Path, description = "The tenant"),
        IdempotencyKey
    ),
    responses(
        (status = 200, description = "The tenant is active again", body = Changed),
        Unauthenticated, NotFound, Conflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn reinstate(
    State(state): State<AppState>,
    operator: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<Changed>, Problem> {
    let ctx = operating(&operator, &tenant)?;
    let done = app::tenants::reinstate(&state.app, &ctx).await?;
    state.tenant_status.forget(ctx.tenant_id).await;
    tracing::info!(operator = %operator.id, tenant_id = %ctx.tenant_id, "operator reinstated a tenant");
    Ok(Json(Changed {
        tenant_id: ctx.tenant_id,
        status: "active",
        consistency_token: done.consistency_token(),
    }))
}
