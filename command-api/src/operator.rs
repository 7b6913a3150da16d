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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuspendRequest {
    pub reason: Reason,
}

#[derive(Debug, Serialize)]
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
