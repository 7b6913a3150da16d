//! Platform operator routes: suspending and reinstating a tenant. The tenant comes from the
//! path here, under an operator credential that no tenant holds.

use axum::Json;
use axum::extract::{Path, State};
use domain::Decider as _;
use domain::tenant::{Tenant, TenantCommand, TenantError, TenantEvent};
use domain::values::Reason;
use platform::auth::Operator;
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::exec::{CommandContext, execute, stream};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    #[schema(value_type = String)]
    pub reason: Reason,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = TenantStatusChanged)]
pub struct Changed {
    pub tenant_id: Uuid,
    pub status: &'static str,
    pub consistency_token: String,
}

fn problem_of(err: TenantError) -> Problem {
    match err {
        TenantError::NotOnboarded => Problem::not_found("tenant"),
        other => Problem::conflict(other.to_string()),
    }
}

async fn run(
    app: &AppState,
    operator: &Operator,
    tenant: &str,
    command: TenantCommand,
) -> Result<String, Problem> {
    let tenant_id: Uuid = tenant.parse().map_err(|_| Problem::not_found("tenant"))?;
    let ctx = CommandContext {
        tenant_id,
        actor: format!("operator:{}", operator.id),
        request_id: None,
        idempotency_key: Uuid::new_v4().to_string(),
    };
    let done = execute::<Tenant>(
        &app.store,
        &ctx,
        &stream::<TenantEvent>(tenant_id),
        |state, _| Tenant::decide(state, command.clone()).map_err(problem_of),
    )
    .await?;
    app.tenant_status.forget(tenant_id).await;
    tracing::info!(operator = %operator.id, %tenant_id, ?command, "operator changed a tenant");
    Ok(done.consistency_token)
}

/// `POST /v1/operator/tenants/{id}/suspend`
#[utoipa::path(
    post,
    path = "/v1/operator/tenants/{id}/suspend",
    tag = "operator",
    summary = "Suspend a tenant (platform operator only)",
    request_body = SuspendRequest,
    params(
        ("id" = Uuid, Path, description = "The tenant")
    ),
    responses(
        (status = 200, description = "Suspend a tenant (platform operator only)", body = Changed),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn suspend(
    State(app): State<AppState>,
    operator: Operator,
    Path(tenant): Path<String>,
    ApiJson(request): ApiJson<SuspendRequest>,
) -> Result<Json<Changed>, Problem> {
    let token = run(
        &app,
        &operator,
        &tenant,
        TenantCommand::Suspend {
            reason: request.reason,
        },
    )
    .await?;
    Ok(Json(Changed {
        tenant_id: tenant.parse().expect("checked"),
        status: "suspended",
        consistency_token: token,
    }))
}

/// `POST /v1/operator/tenants/{id}/reinstate`
#[utoipa::path(
    post,
    path = "/v1/operator/tenants/{id}/reinstate",
    tag = "operator",
    summary = "Reinstate a suspended tenant (platform operator only)",
    params(
        ("id" = Uuid, Path, description = "The tenant")
    ),
    responses(
        (status = 200, description = "Reinstate a suspended tenant (platform operator only)", body = Changed),
        (status = 401, description = "No valid credential"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)")
    ),
    security(("bearer" = []))
)]
pub async fn reinstate(
    State(app): State<AppState>,
    operator: Operator,
    Path(tenant): Path<String>,
) -> Result<Json<Changed>, Problem> {
    let token = run(&app, &operator, &tenant, TenantCommand::Reinstate).await?;
    Ok(Json(Changed {
        tenant_id: tenant.parse().expect("checked"),
        status: "active",
        consistency_token: token,
    }))
}
