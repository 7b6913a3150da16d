//! The bot configuration and the services it offers, over HTTP. Versioned: `PUT
//! /v1/bot-config` needs `If-Match` with the version it edits and answers 412 when someone
//! changed it meanwhile; every answer carries the new version as `ETag`. The use cases are
//! `app::catalog`.

use app::Committed;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::access::Permission;
use domain::bot_config::{BotSettings, Service};
use domain::ids::ServiceId;
use domain::values::{Money, ServiceDuration};
use platform::answers::{
    Busy, Conflict, Forbidden, Invalid, InvalidOrKeyReused, JsonBody, KeyedConflict, NotFound,
    PreconditionFailed, TenantCaller,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;

/// `If-Match: "7"` (or `7`): the version the client read.
fn if_match(headers: &HeaderMap) -> Result<Option<u32>, Problem> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| Problem::invalid("If-Match", "a configuration version, e.g. \"3\""))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Versioned {
    pub version: u32,
    pub consistency_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Uuid>,
}

/// The new version, as the body and as `ETag`.
fn versioned(status: StatusCode, done: Committed<u32>, service_id: Option<Uuid>) -> Response {
    let body = Versioned {
        version: done.value,
        consistency_token: done.consistency_token(),
        service_id,
    };
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", body.version)).expect("digits are a valid header");
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    response
}

#[derive(utoipa::IntoResponses)]
#[response(status = 428, description = "If-Match is required")]
pub struct IfMatchRequired;

/// `PUT /v1/bot-config`
#[utoipa::path(
    put,
    path = "/v1/bot-config",
    tag = "configuration",
    summary = "Replace the bot configuration (hours, closures, rules, payments, keyword replies, texts)",
    request_body = BotSettings,
    params(
        ("If-Match" = String, Header, description = "The version being replaced, e.g. \"3\" (0 for the first)")
    ),
    responses(
        (status = 200, description = "The new version (also as ETag)", body = Versioned),
        JsonBody, TenantCaller, Forbidden, PreconditionFailed, Invalid, IfMatchRequired, Busy
    ),
    security(("bearer" = []))
)]
pub async fn put_bot_config(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(settings): ApiJson<BotSettings>,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?.ok_or_else(|| {
        Problem::new(StatusCode::PRECONDITION_REQUIRED, "if-match-required", "Send If-Match with the version you edit")
            .detail("GET the configuration, then PUT it back with If-Match: \"<version>\" (\"0\" for the first one)")
    })?;
    let done = app::catalog::configure(&state.app, &caller.context(), expected, settings).await?;
    Ok(versioned(StatusCode::OK, done, None))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    /// As customers see it in the bot's list (24 characters at most: a WhatsApp list row).
    #[schema(
        format = "visible-text",
        min_length = 1,
        max_length = 24,
        example = "Haircut"
    )]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 72)]
    pub description: Option<String>,
    #[schema(schema_with = platform::schemas::money)]
    pub price: Money,
    #[schema(value_type = u32, minimum = 5, maximum = 720, example = 45)]
    pub duration_minutes: ServiceDuration,
    /// Minutes kept free after each appointment.
    #[serde(default)]
    #[schema(maximum = 240)]
    pub buffer_minutes: u32,
    /// Appointments at the same time (a class, a room with several chairs).
    #[serde(default = "one")]
    #[schema(minimum = 1, maximum = 100)]
    pub capacity: u32,
    #[serde(default)]
    #[schema(format = "visible-text", min_length = 1, max_length = 40)]
    pub category: Option<String>,
    /// Staff ids who can do it; empty: anyone on the staff.
    #[serde(default, deserialize_with = "resource_ids")]
    #[schema(schema_with = platform::schemas::resource_ids)]
    pub staff: Vec<domain::ids::ResourceId>,
}

fn one() -> u32 {
    1
}

/// Staff members' ids as the document gives them (`ResourceId::parse`), refused at the door
/// rather than found missing from the staff later.
fn resource_ids<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<domain::ids::ResourceId>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|raw| domain::ids::ResourceId::parse(raw).map_err(serde::de::Error::custom))
        .collect()
}

/// A staff member's id, when one is given.
pub(crate) fn resource_id<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<domain::ids::ResourceId>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|raw| domain::ids::ResourceId::parse(&raw).map_err(serde::de::Error::custom))
        .transpose()
}

impl ServiceRequest {
    fn into_service(self, id: ServiceId) -> Service {
        Service {
            id,
            name: self.name.trim().to_owned(),
            description: self.description,
            price: self.price,
            duration: self.duration_minutes,
            buffer_minutes: self.buffer_minutes,
            capacity: self.capacity,
            category: self.category,
            active: true,
            staff: self.staff,
        }
    }
}

/// `POST /v1/services`. With an `Idempotency-Key`, a retry adds the service once, with the
/// same id.
#[utoipa::path(
    post,
    path = "/v1/services",
    tag = "configuration",
    summary = "Add a service",
    request_body = ServiceRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused"),
        ("If-Match" = Option<String>, Header, description = "The configuration version this change expects")
    ),
    responses(
        (status = 201, description = "The service's id and the new version (also as ETag)", body = Versioned),
        JsonBody, TenantCaller, Forbidden, PreconditionFailed, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn add_service(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ServiceRequest>,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?;
    let ctx = caller.context();
    let id = ctx.derived_id("service");
    let service = request.into_service(ServiceId::from_uuid(id));
    let done = app::catalog::add_service(&state.app, &ctx, expected, service).await?;
    Ok(versioned(StatusCode::CREATED, done, Some(id)))
}

fn service_id(raw: &str) -> Result<ServiceId, Problem> {
    raw.parse().map_err(|_| Problem::not_found("service"))
}

/// `PUT /v1/services/{id}`: replaces a service's details.
#[utoipa::path(
    put,
    path = "/v1/services/{id}",
    tag = "configuration",
    summary = "Change a service",
    request_body = ServiceRequest,
    params(
        ("id" = Uuid, Path, description = "The service"),
        ("If-Match" = Option<String>, Header, description = "The configuration version this change expects")
    ),
    responses(
        (status = 200, description = "The new version (also as ETag)", body = Versioned),
        JsonBody, TenantCaller, Forbidden, NotFound, Conflict, PreconditionFailed, Invalid, Busy
    ),
    security(("bearer" = []))
)]
pub async fn update_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ServiceRequest>,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?;
    let service = request.into_service(service_id(&id)?);
    let id = service.id.uuid();
    let done =
        app::catalog::update_service(&state.app, &caller.context(), expected, service).await?;
    Ok(versioned(StatusCode::OK, done, Some(id)))
}

/// `DELETE /v1/services/{id}`: retires a service (bookings keep their history).
#[utoipa::path(
    delete,
    path = "/v1/services/{id}",
    tag = "configuration",
    summary = "Retire a service (no longer offered)",
    params(
        ("id" = Uuid, Path, description = "The service"),
        ("If-Match" = Option<String>, Header, description = "The configuration version this change expects")
    ),
    responses(
        (status = 200, description = "The new version (also as ETag)", body = Versioned),
        TenantCaller, Forbidden, NotFound, Conflict, PreconditionFailed, Invalid, Busy
    ),
    security(("bearer" = []))
)]
pub async fn retire_service(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?;
    let service_id = service_id(&id)?;
    let done =
        app::catalog::retire_service(&state.app, &caller.context(), expected, service_id).await?;
    Ok(versioned(StatusCode::OK, done, Some(service_id.uuid())))
}
