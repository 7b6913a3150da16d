//! The bot configuration and the services it offers. Versioned: `PUT /v1/bot-config` needs
//! `If-Match` with the version it edits and answers 412 when someone changed it meanwhile;
//! every answer carries the new version as `ETag`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Decider as _;
use domain::access::Permission;
use domain::bot_config::{
    BotConfig, BotConfigCommand, BotConfigError, BotConfigEvent, BotConfigState, BotSettings,
    Service,
};
use domain::ids::ServiceId;
use domain::values::{Money, ServiceDuration};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::exec::{execute, stream};

/// The bot configuration's stream: one per tenant.
pub fn config_stream() -> eventstore::StreamRef {
    stream::<BotConfigEvent>("main")
}

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

pub fn problem_of(err: BotConfigError) -> Problem {
    match err {
        BotConfigError::VersionMismatch { expected, actual } => Problem::precondition_failed(
            format!("you edited version {expected}; the configuration is at version {actual}"),
        ),
        BotConfigError::Invalid(problems) => problems.into_iter().fold(
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "The configuration is not valid",
            ),
            |p, c| p.field(c.field, c.message),
        ),
        BotConfigError::ServiceExists => Problem::conflict("a service with this id exists"),
        BotConfigError::UnknownService => Problem::not_found("service"),
        BotConfigError::AlreadyRetired => Problem::conflict("the service is already retired"),
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Versioned {
    pub version: u32,
    pub consistency_token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_id: Option<Uuid>,
}

fn versioned(status: StatusCode, body: Versioned) -> Response {
    let etag =
        HeaderValue::from_str(&format!("\"{}\"", body.version)).expect("digits are a valid header");
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::ETAG, etag);
    response
}

/// Runs a bot-configuration command at the version the client names, or (without `If-Match`,
/// allowed for service edits only) at whatever version is current.
async fn run(
    app: &AppState,
    caller: &Caller,
    expected: Option<u32>,
    command: impl Fn(u32) -> BotConfigCommand,
) -> Result<crate::exec::Executed<BotConfigState>, Problem> {
    execute::<BotConfig>(
        &app.store,
        &caller.context(),
        &config_stream(),
        |state, version| {
            BotConfig::decide(state, command(expected.unwrap_or(version))).map_err(problem_of)
        },
    )
    .await
}

/// `PUT /v1/bot-config`
#[utoipa::path(
    put,
    path = "/v1/bot-config",
    tag = "configuration",
    summary = "Replace the bot configuration (hours, closures, rules, payments, keyword replies, texts)",
    request_body = Object,
    params(
        ("If-Match" = String, Header, description = "The version being replaced, e.g. \"3\" (0 for the first)")
    ),
    responses(
        (status = 200, description = "Replace the bot configuration (hours, closures, rules, payments, keyword replies, texts)", body = Versioned),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 412, description = "If-Match does not match the current version"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 428, description = "If-Match is required")
    ),
    security(("bearer" = []))
)]
pub async fn put_bot_config(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(settings): ApiJson<BotSettings>,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?.ok_or_else(|| {
        Problem::new(StatusCode::PRECONDITION_REQUIRED, "if-match-required", "Send If-Match with the version you edit")
            .detail("GET the configuration, then PUT it back with If-Match: \"<version>\" (\"0\" for the first one)")
    })?;
    let settings = Box::new(settings);
    let done = run(&app, &caller, Some(expected), |v| {
        BotConfigCommand::Configure {
            expected_version: v,
            settings: settings.clone(),
        }
    })
    .await?;
    Ok(versioned(
        StatusCode::OK,
        Versioned {
            version: done.version,
            consistency_token: done.consistency_token,
            service_id: None,
        },
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[schema(value_type = Object, example = json!({"minor": 2500, "currency": "EUR"}))]
    pub price: Money,
    #[schema(value_type = u32, example = 45)]
    pub duration_minutes: ServiceDuration,
    #[serde(default)]
    pub buffer_minutes: u32,
    #[serde(default = "one")]
    pub capacity: u32,
    #[serde(default)]
    pub category: Option<String>,
}

fn one() -> u32 {
    1
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
        (status = 201, description = "Add a service", body = Versioned),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 412, description = "If-Match does not match the current version"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn add_service(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ServiceRequest>,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?;
    let id = match caller.idempotency_key() {
        Some(key) => {
            eventstore::event_id_from_key(caller.tenant_id(), &format!("service|{key}"), 0)
        }
        None => Uuid::new_v4(),
    };
    let service = request.into_service(ServiceId::from_uuid(id));
    let done = run(&app, &caller, expected, |v| BotConfigCommand::AddService {
        expected_version: v,
        service: service.clone(),
    })
    .await;
    let done = match done {
        // The same key again: the service exists because this very request added it.
        Err(p) if p.status == StatusCode::CONFLICT && caller.idempotency_key().is_some() => {
            let (state, version) =
                crate::exec::load::<BotConfig>(&app.store, caller.tenant_id(), &config_stream())
                    .await?;
            if state.services.get(&service.id) != Some(&service) {
                return Err(Problem::invalid(
                    "Idempotency-Key",
                    "this key was already used for a different request",
                ));
            }
            crate::exec::Executed {
                version,
                consistency_token: String::new(),
                state,
            }
        }
        other => other?,
    };
    Ok(versioned(
        StatusCode::CREATED,
        Versioned {
            version: done.version,
            consistency_token: done.consistency_token,
            service_id: Some(id),
        },
    ))
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
        (status = 200, description = "Change a service", body = Versioned),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 412, description = "If-Match does not match the current version"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn update_service(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<ServiceRequest>,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?;
    let service = request.into_service(service_id(&id)?);
    let done = run(&app, &caller, expected, |v| {
        BotConfigCommand::UpdateService {
            expected_version: v,
            service: service.clone(),
        }
    })
    .await?;
    Ok(versioned(
        StatusCode::OK,
        Versioned {
            version: done.version,
            consistency_token: done.consistency_token,
            service_id: Some(service.id.uuid()),
        },
    ))
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
        (status = 200, description = "Retire a service (no longer offered)", body = Versioned),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 412, description = "If-Match does not match the current version")
    ),
    security(("bearer" = []))
)]
pub async fn retire_service(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    caller.require(Permission::WriteConfig)?;
    let expected = if_match(&headers)?;
    let service_id = service_id(&id)?;
    let done = run(&app, &caller, expected, |v| {
        BotConfigCommand::RetireService {
            expected_version: v,
            service_id,
        }
    })
    .await?;
    Ok(versioned(
        StatusCode::OK,
        Versioned {
            version: done.version,
            consistency_token: done.consistency_token,
            service_id: Some(service_id.uuid()),
        },
    ))
}
