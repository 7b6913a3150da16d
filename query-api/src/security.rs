//! A business's own security events (`platform::security`), latest first: requests its
//! credentials made that were refused, failed and throttled sign-ins on its accounts, its
//! customers' data exported or erased, and the platform's operators reading its log. Owners
//! and admins (`read_audit`); another business's never (row-level security).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use platform::answers::{Forbidden, TenantReader};
use platform::params::Params;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::paging::{Cursor, Page, PageParams, fetch_size};
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecurityEventRow {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    /// `refused`, `login_failed`, `login_throttled`, `customer_exported`, `customer_erased`,
    /// `operator_read_audit`.
    pub kind: String,
    /// The credential that asked, when it was genuine: `user:<id>`, `api_key:<id>`,
    /// `operator:<id>`.
    pub actor: Option<String>,
    /// The client's address, when known.
    pub source: Option<String>,
    /// What was asked (a refusal's method, route template, status and request id; a sign-in's
    /// account).
    #[schema(value_type = Object)]
    pub detail: Value,
}

/// `GET /v1/security-events?limit=&cursor=`: the business's security events, latest first.
#[utoipa::path(
    get,
    path = "/v1/security-events",
    tag = "audit",
    summary = "The business's security events, latest first",
    description = "Requests the business's credentials made that were refused (401, 403, 404, 423), failed and throttled sign-ins on its accounts, its customers' data exported or erased, and the platform's operators reading its log. Kept 180 days. Owners and admins (`read_audit`).",
    params(PageParams),
    responses(
        (status = 200, description = "A page of security events", body = Page<SecurityEventRow>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn security_events(
    State(app): State<AppState>,
    reader: Reader,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<SecurityEventRow>>, Problem> {
    reader.require(Permission::ReadAudit)?;
    let mut tx = reader.begin(&app).await?;
    let after = page
        .cursor
        .as_ref()
        .map(|c| (c.at, c.key.parse::<Uuid>().unwrap_or(Uuid::max())));
    let rows = sqlx::query_as!(
        SecurityEventRow,
        "select id, at, kind, actor, source, detail from security_events
          where ($1::timestamptz is null or (at, id) < ($1, $2))
          order by at desc, id desc
          limit $3",
        after.map(|(at, _)| at),
        after.map(|(_, id)| id),
        fetch_size(page.limit)
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(Page::of(rows, page.limit, |r| {
        Cursor::new(r.at, r.id)
    })))
}
