//! Webhook endpoints over HTTP: registered (the signing secret shown once), disabled, enabled,
//! asked to deliver an event again, deleted. The use cases are `app::webhooks`; the query API
//! lists the endpoints and their delivery log.

use app::webhooks::NewEndpoint;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use domain::access::Permission;
use domain::webhook::{DisableReason, WebhookCommand};
use platform::answers::{
    Busy, Conflict, Forbidden, InvalidOrKeyReused, JsonBody, KeyedConflict, NotFound, TenantCaller,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// Where to post: `https://` (plain `http://` only where the platform allows it).
    #[schema(schema_with = platform::schemas::webhook_url)]
    pub url: String,
    /// The topics to receive (`booking.created`, ...; see `/asyncapi.json` of the query API).
    /// Empty or absent: every topic, also those added later.
    #[serde(default)]
    #[schema(schema_with = platform::schemas::topics)]
    pub topics: Vec<String>,
    #[serde(default)]
    #[schema(max_length = 200, example = "Our CRM")]
    pub description: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    pub endpoint_id: Uuid,
    pub url: String,
    pub topics: Vec<String>,
    pub description: String,
    /// Shown once: the HMAC-SHA256 key of the `Booking-Signature` header
    /// (`t=<unix seconds>,v1=<hex of HMAC(secret, "<t>.<raw body>")>`).
    pub secret: String,
    pub consistency_token: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    pub consistency_token: String,
}

/// `POST /v1/webhook-endpoints`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints",
    tag = "webhooks",
    summary = "Register a URL for the business's public events (its signing secret shown once)",
    description = "From now on, each public event of the business (of the topics chosen) is posted to `url` as JSON, in the order the events happened, signed in the `Booking-Signature` header. A delivery counts when the receiver answers 2xx within 10 s; otherwise it is retried with exponential backoff (30 s doubling, at most 6 h apart) for up to 3 days, after which the endpoint is disabled and the owners and admins are emailed. Later events wait for the one being retried. Owners, admins and API keys with `manage_webhooks`.",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown once)", body = Registered),
        JsonBody, TenantCaller, Forbidden, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ManageWebhooks)?;
    let done = app::webhooks::register(
        &state.app,
        &caller.context(),
        NewEndpoint {
            url: request.url,
            topics: request.topics,
            description: request.description,
        },
    )
    .await?;
    let consistency_token = done.consistency_token();
    let endpoint = done.value;
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            endpoint_id: endpoint.endpoint_id,
            url: endpoint.url,
            topics: endpoint.topics,
            description: endpoint.description,
            secret: endpoint.secret,
            consistency_token,
        }),
    ))
}

async fn run(
    state: &AppState,
    caller: &Caller,
    id: &str,
    command: WebhookCommand,
) -> Result<Changed, Problem> {
    caller.require(Permission::ManageWebhooks)?;
    let endpoint_id: Uuid = id
        .parse()
        .map_err(|_| Problem::not_found("webhook endpoint"))?;
    let done = app::webhooks::command(&state.app, &caller.context(), endpoint_id, command).await?;
    Ok(Changed {
        consistency_token: done.consistency_token(),
    })
}

/// `POST /v1/webhook-endpoints/{id}/disable`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/disable",
    tag = "webhooks",
    summary = "Stop delivering to an endpoint (events wait; enabling resumes where it stopped)",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "Disabled", body = Changed),
        TenantCaller, Forbidden, NotFound, Conflict, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Changed>, Problem> {
    let reason = DisableReason::Manual;
    Ok(Json(
        run(&state, &caller, &id, WebhookCommand::Disable { reason }).await?,
    ))
}

/// `POST /v1/webhook-endpoints/{id}/enable`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/enable",
    tag = "webhooks",
    summary = "Deliver to an endpoint again, from the event where it stopped",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 200, description = "Enabled", body = Changed),
        TenantCaller, Forbidden, NotFound, Conflict, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Changed>, Problem> {
    Ok(Json(
        run(&state, &caller, &id, WebhookCommand::Enable).await?,
    ))
}

/// `POST /v1/webhook-endpoints/{id}/deliveries/{seq}/retry`.
#[utoipa::path(
    post,
    path = "/v1/webhook-endpoints/{id}/deliveries/{seq}/retry",
    tag = "webhooks",
    summary = "Deliver one public event to an endpoint again (now, out of turn)",
    description = "`seq` is the event's number in the business's feed (the delivery log's `seq`, the `Booking-Event-Seq` header, the stream's SSE id). The event is posted once more soon after; the delivery log shows how it went. An event that was never delivered to this endpoint (from before it was registered, or of a topic it does not receive) may be asked for too.",
    params(
        ("id" = Uuid, Path, description = "The endpoint"),
        ("seq" = i64, Path, description = "The event's number in the business's feed")
    ),
    responses(
        (status = 202, description = "It will be posted again", body = Changed),
        TenantCaller, Forbidden, NotFound, Conflict, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, seq)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let seq: i64 = seq.parse().map_err(|_| Problem::not_found("event"))?;
    let changed = run(&state, &caller, &id, WebhookCommand::Redeliver { seq }).await?;
    Ok((StatusCode::ACCEPTED, Json(changed)))
}

/// `DELETE /v1/webhook-endpoints/{id}`.
#[utoipa::path(
    delete,
    path = "/v1/webhook-endpoints/{id}",
    tag = "webhooks",
    summary = "Delete an endpoint: nothing more is posted to it, and its secret is forgotten",
    params(("id" = Uuid, Path, description = "The endpoint")),
    responses(
        (status = 204, description = "Deleted"),
        TenantCaller, Forbidden, NotFound, Busy
    ),
    security(("bearer" = []))
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    run(&state, &caller, &id, WebhookCommand::Delete).await?;
    Ok(StatusCode::NO_CONTENT)
}
