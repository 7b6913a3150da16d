//! The log itself, for audit: a tenant's own events in commit order, and any tenant's for the
//! platform operator (through the operator role).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use eventstore::{Position, RecordedEvent};
use platform::answers::{
    BadParameter, ConsistencyToken, Forbidden, NotFound, TenantReader, Unauthenticated,
};
use platform::auth::Operator;
use platform::params::{Limit, Params, from_text};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Pass as `after` to read on from here.
    pub position: String,
    pub stream: String,
    pub version: u32,
    pub event_id: Uuid,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub actor: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// The position of the last entry: pass it as `after`.
    pub next_after: Option<String>,
}

impl From<RecordedEvent> for AuditEntry {
    fn from(e: RecordedEvent) -> Self {
        AuditEntry {
            position: e.position.to_string(),
            stream: e.stream.to_string(),
            version: e.version,
            event_id: e.event_id,
            event_type: e.event_type,
            payload: e.payload,
            actor: e.metadata.actor,
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
            recorded_at: e.recorded_at,
        }
    }
}

impl From<Vec<RecordedEvent>> for AuditPage {
    fn from(events: Vec<RecordedEvent>) -> Self {
        let items: Vec<AuditEntry> = events.into_iter().map(AuditEntry::from).collect();
        AuditPage {
            next_after: items.last().map(|e| e.position.clone()),
            items,
        }
    }
}

/// `after` and `limit`: where in the log a page starts, and how long it is.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogPage {
    /// `next_after` of the previous page.
    #[serde(default, deserialize_with = "position")]
    #[param(value_type = Option<String>, pattern = r"^[0-9]{1,19}\.[0-9]{1,19}$")]
    pub after: Option<Position>,
    /// 1 to 200, 50 by default.
    #[serde(default)]
    #[param(value_type = Option<i64>)]
    pub limit: Limit,
}

fn position<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Position>, D::Error> {
    from_text(
        d,
        |s| s.parse().ok().map(Some),
        "is the next_after of a previous page",
    )
}

/// `GET /v1/audit?after=&limit=`: the tenant's own events in commit order, with who caused
/// them (admins and owners).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    summary = "The tenant's own events in commit order, with actor and correlation",
    params(ConsistencyToken, LogPage),
    responses(
        (status = 200, description = "A page of the tenant's events", body = AuditPage),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn audit(
    State(app): State<AppState>,
    reader: Reader,
    Params(page): Params<LogPage>,
) -> Result<Json<AuditPage>, Problem> {
    reader.require(Permission::ReadAudit)?;
    let events = app
        .store
        .read_tenant(
            reader.tenant_id,
            page.after.unwrap_or(Position::START),
            page.limit.0 as usize,
        )
        .await?;
    Ok(Json(events.into()))
}

/// `GET /v1/operator/tenants/{id}/audit?after=&limit=`: any tenant's events, for the platform
/// operator only, through the operator role.
#[utoipa::path(
    get,
    path = "/v1/operator/tenants/{id}/audit",
    tag = "operator",
    summary = "Any tenant's events, for the platform operator",
    params(
        ("id" = Uuid, Path, description = "The tenant"),
        LogPage
    ),
    responses(
        (status = 200, description = "A page of the tenant's events", body = AuditPage),
        Unauthenticated, NotFound, BadParameter
    ),
    security(("bearer" = []))
)]
pub async fn operator_audit(
    State(app): State<AppState>,
    operator: Operator,
    Path(tenant): Path<String>,
    Params(page): Params<LogPage>,
    headers: HeaderMap,
) -> Result<Json<AuditPage>, Problem> {
    let tenant: Uuid = tenant.parse().map_err(|_| Problem::not_found("tenant"))?;
    // The business sees that the platform's operators read its log.
    app.security.record(platform::security::SecurityEvent {
        kind: "operator_read_audit",
        tenant_id: Some(tenant),
        actor: Some(format!("operator:{}", operator.id)),
        source: None,
        detail: serde_json::json!({
            "request_id": headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        }),
    });
    let events = app
        .log
        .read_tenant(
            tenant,
            page.after.unwrap_or(Position::START),
            page.limit.0 as usize,
        )
        .await?;
    Ok(Json(events.into()))
}
