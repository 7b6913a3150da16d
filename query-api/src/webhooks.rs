//! A business's webhook endpoints (`rm_webhook_endpoints`) and each one's delivery log
//! (`webhook_deliveries`, the deliverer's). The secret is never shown again.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use domain::access::Permission;
use platform::answers::{ConsistencyToken, Forbidden, NotFound, TenantReader};
use platform::params::{Params, from_text};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::paging::{Cursor, Page, PageParams, fetch_size};
use crate::reader::Reader;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EndpointView {
    pub endpoint_id: Uuid,
    pub url: String,
    /// Empty: every topic.
    pub topics: Vec<String>,
    pub description: String,
    /// `enabled` or `disabled`.
    pub status: String,
    /// Why it is disabled: `{"kind": "manual"}`, or `{"kind": "failing", "failing_since",
    /// "last_error"}` when the platform gave up after days of failed deliveries.
    #[schema(value_type = Option<Object>)]
    pub disabled_reason: Option<Value>,
    /// The next event to deliver (its `seq`), and how its attempts go, once delivering began.
    pub next_seq: Option<i64>,
    pub failing_since: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/webhook-endpoints`.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints",
    tag = "webhooks",
    summary = "The business's webhook endpoints, newest first",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "Every endpoint", body = Vec<EndpointView>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn endpoints(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<Vec<EndpointView>>, Problem> {
    reader.require(Permission::ManageWebhooks)?;
    let mut tx = reader.begin(&app).await?;
    let rows = sqlx::query_as!(
        EndpointView,
        r#"select e.endpoint_id, e.url, e.topics, e.description, e.status, e.disabled_reason,
                  c.next_seq as "next_seq?", c.failing_since,
                  case when c.next_attempt_at = '-infinity' then null
                       else c.next_attempt_at end as next_attempt_at,
                  e.created_at, e.updated_at
             from rm_webhook_endpoints e
             left join webhook_cursors c on c.endpoint_id = e.endpoint_id
            order by e.created_at desc, e.endpoint_id"#
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(rows))
}

/// `GET /v1/webhook-endpoints/{id}`.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    summary = "One webhook endpoint",
    params(ConsistencyToken, ("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "The endpoint", body = EndpointView),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn endpoint(
    State(app): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
) -> Result<Json<EndpointView>, Problem> {
    reader.require(Permission::ManageWebhooks)?;
    let endpoint_id: Uuid = id
        .parse()
        .map_err(|_| Problem::not_found("webhook endpoint"))?;
    let mut tx = reader.begin(&app).await?;
    let row = sqlx::query_as!(
        EndpointView,
        r#"select e.endpoint_id, e.url, e.topics, e.description, e.status, e.disabled_reason,
                  c.next_seq as "next_seq?", c.failing_since,
                  case when c.next_attempt_at = '-infinity' then null
                       else c.next_attempt_at end as next_attempt_at,
                  e.created_at, e.updated_at
             from rm_webhook_endpoints e
             left join webhook_cursors c on c.endpoint_id = e.endpoint_id
            where e.endpoint_id = $1"#,
        endpoint_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    row.map(Json)
        .ok_or_else(|| Problem::not_found("webhook endpoint"))
}

/// A delivery's state.
#[derive(Debug, Clone, Copy)]
pub struct DeliveryStatus(&'static str);

impl<'de> Deserialize<'de> for DeliveryStatus {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(
            d,
            |s| {
                ["delivered", "retrying", "failed"]
                    .into_iter()
                    .find(|k| *k == s)
                    .map(DeliveryStatus)
            },
            "is delivered, retrying or failed",
        )
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// `delivered`, `retrying` (failed so far, to be tried again) or `failed` (given up, or a
    /// redelivery that failed).
    #[param(value_type = Option<String>, pattern = "^(delivered|retrying|failed)$")]
    pub status: Option<DeliveryStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryRow {
    /// The event's number in the business's feed.
    pub seq: i64,
    pub event_id: Uuid,
    pub topic: String,
    pub status: String,
    pub attempts: i32,
    pub last_attempt_at: DateTime<Utc>,
    /// The receiver's HTTP status at the last attempt, if it answered.
    pub response_status: Option<i32>,
    /// Why the last attempt failed without an answer (timed out, could not connect, ...).
    pub error: Option<String>,
    pub duration_ms: i32,
    pub delivered_at: Option<DateTime<Utc>>,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// `GET /v1/webhook-endpoints/{id}/deliveries?status=&limit=&cursor=`.
#[utoipa::path(
    get,
    path = "/v1/webhook-endpoints/{id}/deliveries",
    tag = "webhooks",
    summary = "An endpoint's delivery log, newest event first",
    params(
        ConsistencyToken,
        ("id" = Uuid, Path, description = "The endpoint"),
        DeliveryFilter,
        PageParams
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = Page<DeliveryRow>),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn deliveries(
    State(app): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
    Params(filter): Params<DeliveryFilter>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<DeliveryRow>>, Problem> {
    reader.require(Permission::ManageWebhooks)?;
    let endpoint_id: Uuid = id
        .parse()
        .map_err(|_| Problem::not_found("webhook endpoint"))?;
    let before = page
        .cursor
        .map(|c| {
            c.key
                .parse::<i64>()
                .map_err(|_| Problem::invalid("cursor", "is the next_cursor of a previous page"))
        })
        .transpose()?;
    let mut tx = reader.begin(&app).await?;
    let known = sqlx::query_scalar!(
        "select exists (select 1 from rm_webhook_endpoints where endpoint_id = $1)
             or exists (select 1 from webhook_deliveries where endpoint_id = $1)",
        endpoint_id
    )
    .fetch_one(&mut *tx)
    .await?;
    if known != Some(true) {
        return Err(Problem::not_found("webhook endpoint"));
    }
    let rows = sqlx::query_as!(
        DeliveryRow,
        "select seq, event_id, topic, status, attempts, last_attempt_at, response_status, error,
                duration_ms, delivered_at, next_attempt_at
           from webhook_deliveries
          where endpoint_id = $1
            and ($2::text is null or status = $2)
            and ($3::bigint is null or seq < $3)
          order by seq desc
          limit $4",
        endpoint_id,
        filter.status.map(|s| s.0),
        before,
        fetch_size(page.limit)
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(Page::of(rows, page.limit, |r| {
        Cursor::new(r.last_attempt_at, r.seq)
    })))
}
