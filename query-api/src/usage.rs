//! The usage read model (`rm_usage`): messages and bookings per month.

use axum::Json;
use axum::extract::State;
use chrono::Utc;
use domain::access::Permission;
use platform::answers::{ConsistencyToken, Forbidden, TenantReader};
use platform::params::{Params, from_text};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::reader::Reader;

/// A month, `YYYY-MM`.
#[derive(Debug, Clone)]
pub struct Period(pub String);

impl<'de> Deserialize<'de> for Period {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(
            d,
            |s| platform::params::full_month(s).map(|_| Period(s.to_owned())),
            "is a month, YYYY-MM",
        )
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// YYYY-MM, this month (UTC) by default.
    #[param(value_type = Option<String>, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$")]
    pub period: Option<Period>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageView {
    pub period: String,
    pub messages_in: i64,
    pub messages_out: i64,
    pub bookings_created: i64,
    pub bookings_cancelled: i64,
}

/// `GET /v1/usage?period=YYYY-MM` (this month by default, UTC).
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    summary = "Messages and bookings of a month",
    params(ConsistencyToken, UsageParams),
    responses(
        (status = 200, description = "The month's counts", body = UsageView),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn usage(
    State(app): State<AppState>,
    reader: Reader,
    Params(params): Params<UsageParams>,
) -> Result<Json<UsageView>, Problem> {
    reader.require(Permission::ReadUsage)?;
    let period = params
        .period
        .map(|p| p.0)
        .unwrap_or_else(|| Utc::now().format("%Y-%m").to_string());
    let mut tx = reader.begin(&app).await?;
    let row = sqlx::query_as!(
        UsageView,
        "select period, messages_in, messages_out, bookings_created, bookings_cancelled
           from rm_usage where period = $1",
        &period
    )
    .fetch_optional(&mut *tx)
    .await?;
    Ok(Json(row.unwrap_or(UsageView {
        period,
        messages_in: 0,
        messages_out: 0,
        bookings_created: 0,
        bookings_cancelled: 0,
    })))
}
