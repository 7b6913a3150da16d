//! The catalog read model (`rm_bot_config`, `rm_services`) and the agenda (`rm_agenda`): the
//! bot configuration, the services, and the free slots of a service on a day by the same
//! rules the bot offers them.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use domain::access::Permission;
use domain::agenda::Interval;
use domain::bot_config::{BotSettings, Service};
use domain::ids::ResourceId;
use platform::answers::{ConsistencyToken, Forbidden, NotFound, TenantReader};
use platform::params::{Params, from_text};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::types::Json as Jsonb;
use uuid::Uuid;

use crate::AppState;
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ServicesView {
    #[schema(value_type = Vec<Object>)]
    pub services: Vec<Service>,
}

/// `GET /v1/services`: every service, retired ones with `active: false`, in the order added.
#[utoipa::path(
    get,
    path = "/v1/services",
    tag = "catalog",
    summary = "Every service, retired ones inactive, in the order added",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "The services", body = ServicesView),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn services(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<ServicesView>, Problem> {
    reader.require(Permission::ReadConfig)?;
    let mut tx = reader.begin(&app).await?;
    let services = sqlx::query_scalar!(
        r#"select service as "service: Jsonb<Service>" from rm_services order by position"#
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(ServicesView {
        services: services.into_iter().map(|s| s.0).collect(),
    }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BotConfigView {
    /// The configuration's version: `PUT /v1/bot-config` takes it in `If-Match`.
    pub version: i32,
    /// What `PUT /v1/bot-config` took, as the domain's `BotSettings` serializes it.
    #[schema(value_type = Option<domain::bot_config::BotSettings>)]
    pub settings: Option<Value>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/bot-config`, with the version as its ETag.
#[utoipa::path(
    get,
    path = "/v1/bot-config",
    tag = "catalog",
    summary = "The bot configuration and its version (ETag)",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "The configuration (its version also as ETag)", body = BotConfigView),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn bot_config(State(app): State<AppState>, reader: Reader) -> Result<Response, Problem> {
    reader.require(Permission::ReadConfig)?;
    let mut tx = reader.begin(&app).await?;
    let view = sqlx::query_as!(
        BotConfigView,
        "select version, settings, updated_at from rm_bot_config"
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Problem::not_found("bot configuration"))?;
    let etag = HeaderValue::from_str(&format!("\"{}\"", view.version));
    let mut response = Json(view).into_response();
    if let Ok(etag) = etag {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

/// A service and a local date.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AvailabilityParams {
    /// The service.
    #[serde(deserialize_with = "service_id")]
    pub service_id: Uuid,
    /// YYYY-MM-DD, the business's local date.
    #[serde(deserialize_with = "local_date")]
    #[param(value_type = String, format = Date)]
    pub date: NaiveDate,
    /// Only the times free with this member of the staff.
    #[serde(default, deserialize_with = "resource")]
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,64}$")]
    pub resource: Option<ResourceId>,
}

pub(crate) fn resource<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ResourceId>, D::Error> {
    from_text(d, |s| ResourceId::parse(s).ok(), "is a staff member's id").map(Some)
}

fn service_id<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
    from_text(d, |s| s.parse().ok(), "is a service's id")
}

fn local_date<'de, D: serde::Deserializer<'de>>(d: D) -> Result<NaiveDate, D::Error> {
    from_text(d, platform::params::full_date, "is a date, YYYY-MM-DD")
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AvailabilityView {
    pub service_id: Uuid,
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub time_zone: String,
    pub slots: Vec<SlotView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start on the business's wall clock.
    #[schema(value_type = String, example = "2026-12-01T10:00:00")]
    pub local_start: chrono::NaiveDateTime,
    /// Who is free then (`main` for a business without staff), in the staff's order.
    #[schema(value_type = Vec<String>)]
    pub resources: Vec<ResourceId>,
}

/// `GET /v1/availability?service_id=…&date=YYYY-MM-DD`: the free slots of a service on a
/// local date, by the same rules the bot offers them.
#[utoipa::path(
    get,
    path = "/v1/availability",
    tag = "catalog",
    summary = "Free slots of a service on a local date",
    params(ConsistencyToken, AvailabilityParams),
    responses(
        (status = 200, description = "The free slots", body = AvailabilityView),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn availability(
    State(app): State<AppState>,
    reader: Reader,
    Params(params): Params<AvailabilityParams>,
) -> Result<Json<AvailabilityView>, Problem> {
    reader.require(Permission::ReadBookings)?;
    let mut tx = reader.begin(&app).await?;
    let settings = sqlx::query_scalar!(
        r#"select settings as "settings: Jsonb<BotSettings>" from rm_bot_config"#
    )
    .fetch_optional(&mut *tx)
    .await?
    .flatten()
    .ok_or_else(|| Problem::not_found("bot configuration"))?
    .0;
    let service = sqlx::query_scalar!(
        r#"select service as "service: Jsonb<Service>" from rm_services
            where service_id = $1 and active"#,
        params.service_id
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| Problem::not_found("service"))?
    .0;
    let now = Utc::now();
    let mut slots: Vec<SlotView> = Vec::new();
    for member in settings.staff_for(&service) {
        let resource = domain::bot_config::resource_of(member);
        if params.resource.as_ref().is_some_and(|r| *r != resource) {
            continue;
        }
        let holds: Vec<Interval> = sqlx::query!(
            "select starts_at, ends_at from rm_agenda
              where resource = $1 and day = $2 and (held_until is null or held_until > $3)",
            resource.as_str(),
            params.date,
            now
        )
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .filter_map(|h| Interval::new(h.starts_at, h.ends_at))
        .collect();
        let free = domain::availability::free_slots_with(
            &settings,
            &service,
            member,
            params.date,
            &holds,
            now,
        );
        for slot in free {
            match slots.iter_mut().find(|s| s.start == slot.appointment.start) {
                Some(known) => known.resources.push(resource.clone()),
                None => slots.push(SlotView {
                    start: slot.appointment.start,
                    end: slot.appointment.end,
                    local_start: slot.local_start,
                    resources: vec![resource.clone()],
                }),
            }
        }
    }
    slots.sort_by_key(|s| s.start);
    Ok(Json(AvailabilityView {
        service_id: params.service_id,
        date: params.date,
        time_zone: settings.time_zone.as_str().to_owned(),
        slots,
    }))
}
