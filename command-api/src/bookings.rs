//! Bookings from the dashboard or the API, over HTTP. The use cases are `app::bookings`: a
//! booking and the agenda it occupies are decided together and committed in one unit of work;
//! a slot another booking took first is a 409 that lists the times still free.

use app::Committed;
use app::bookings::NewBooking;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use domain::booking::{Booking, Customer};
use domain::ids::{BookingId, ResourceId, ServiceId};
use domain::values::{PersonName, PhoneNumber, Reason};
use platform::answers::{
    Busy, Forbidden, ForbiddenOrUnverified, InvalidOrKeyReused, JsonBody, NotFound,
    PaymentRequired, SlotTaken, TenantCaller,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    #[schema(value_type = String, example = "+34600000001")]
    pub phone: PhoneNumber,
    /// 1 to 100 characters, something visible.
    #[serde(default)]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    pub name: Option<PersonName>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BookRequest {
    #[schema(value_type = Uuid)]
    pub service_id: ServiceId,
    pub start: DateTime<Utc>,
    pub customer: CustomerRequest,
    /// Confirm at once (default), or leave it requested until confirmed.
    #[serde(default = "yes")]
    pub confirm: bool,
    /// Who it is with (a staff id); absent: whoever does the service and is free then (the
    /// least busy that day).
    #[serde(default, deserialize_with = "crate::config::resource_id")]
    #[schema(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,64}$", example = "ana")]
    pub resource: Option<ResourceId>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BookingView {
    pub booking_id: Uuid,
    pub reference: String,
    #[schema(value_type = String, example = "confirmed")]
    pub status: domain::booking::BookingStatus,
    pub service_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Who it is with (`main` for a business without staff).
    #[schema(value_type = String, example = "ana")]
    pub resource: ResourceId,
    /// When the customer came in, once marked arrived.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arrived_at: Option<DateTime<Utc>>,
    pub consistency_token: String,
}

impl From<Committed<Booking>> for BookingView {
    fn from(done: Committed<Booking>) -> Self {
        let consistency_token = done.consistency_token();
        let booking = done.value;
        BookingView {
            booking_id: booking.booking_id.uuid(),
            reference: booking.reference,
            status: booking.status,
            service_id: booking.service_id.uuid(),
            start: booking.appointment.start,
            end: booking.appointment.end,
            resource: booking.resource,
            arrived_at: booking.arrived_at,
            consistency_token,
        }
    }
}

/// `POST /v1/bookings`
#[utoipa::path(
    post,
    path = "/v1/bookings",
    tag = "bookings",
    summary = "Book a service at a time for a customer",
    request_body = BookRequest,
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 201, description = "The booking", body = BookingView),
        JsonBody, TenantCaller, ForbiddenOrUnverified, NotFound, SlotTaken, InvalidOrKeyReused, PaymentRequired, Busy
    ),
    security(("bearer" = []))
)]
pub async fn book(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<BookRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::WriteBookings)?;
    let booking = NewBooking {
        service_id: request.service_id,
        start: request.start,
        customer: Customer {
            phone: request.customer.phone,
            name: request.customer.name.map(PersonName::into_string),
        },
        confirm: request.confirm,
        resource: request.resource,
    };
    let done = app::bookings::book(&state.app, &caller.context(), booking).await?;
    Ok((StatusCode::CREATED, Json(BookingView::from(done))))
}

fn booking_id(raw: &str) -> Result<BookingId, Problem> {
    raw.parse().map_err(|_| Problem::not_found("booking"))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>, format = "visible-text", min_length = 1, max_length = 500)]
    pub reason: Option<Reason>,
}

/// `POST /v1/bookings/{id}/cancel`: cancels and frees the slot.
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/cancel",
    tag = "bookings",
    summary = "Cancel a booking (frees its slot)",
    request_body = CancelRequest,
    params(
        ("id" = Uuid, Path, description = "The booking"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 200, description = "The cancelled booking", body = BookingView),
        JsonBody, TenantCaller, Forbidden, NotFound, SlotTaken, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let id = booking_id(&id)?;
    let reason = platform::problem::parse_optional_json::<CancelRequest>(&body)?.reason;
    let done = app::bookings::cancel(&state.app, &caller.context(), id, reason).await?;
    Ok(Json(done.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleRequest {
    pub start: DateTime<Utc>,
}

/// `POST /v1/bookings/{id}/reschedule`: moves a booking to another free time.
#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/reschedule",
    tag = "bookings",
    summary = "Move a booking to another free time",
    request_body = RescheduleRequest,
    params(
        ("id" = Uuid, Path, description = "The booking"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 200, description = "The booking at its new time", body = BookingView),
        JsonBody, TenantCaller, Forbidden, NotFound, SlotTaken, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn reschedule(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RescheduleRequest>,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let id = booking_id(&id)?;
    let done = app::bookings::reschedule(&state.app, &caller.context(), id, request.start).await?;
    Ok(Json(done.into()))
}

#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/confirm",
    tag = "bookings",
    summary = "Confirm a booking",
    params(
        ("id" = Uuid, Path, description = "The booking"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 200, description = "The confirmed booking", body = BookingView),
        TenantCaller, Forbidden, NotFound, SlotTaken, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let done = app::bookings::confirm(&state.app, &caller.context(), booking_id(&id)?).await?;
    Ok(Json(done.into()))
}

#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/complete",
    tag = "bookings",
    summary = "Mark a booking completed",
    params(
        ("id" = Uuid, Path, description = "The booking"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 200, description = "The completed booking", body = BookingView),
        TenantCaller, Forbidden, NotFound, SlotTaken, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn complete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let done = app::bookings::complete(&state.app, &caller.context(), booking_id(&id)?).await?;
    Ok(Json(done.into()))
}

#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/arrived",
    tag = "bookings",
    summary = "Mark a customer as arrived (from two hours before the appointment; once)",
    description = "Earlier than two hours before, or on a booking that is no longer active, the answer is 409.",
    params(
        ("id" = Uuid, Path, description = "The booking"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 200, description = "The booking, with `arrived_at`", body = BookingView),
        TenantCaller, Forbidden, NotFound, SlotTaken, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn arrived(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let done = app::bookings::arrived(&state.app, &caller.context(), booking_id(&id)?).await?;
    Ok(Json(done.into()))
}

#[utoipa::path(
    post,
    path = "/v1/bookings/{id}/no-show",
    tag = "bookings",
    summary = "Mark a customer as not having come",
    params(
        ("id" = Uuid, Path, description = "The booking"),
        ("Idempotency-Key" = Option<String>, Header, description = "The same key and body give the same answer; the same key with another body is refused")
    ),
    responses(
        (status = 200, description = "The booking, marked no-show", body = BookingView),
        TenantCaller, Forbidden, NotFound, SlotTaken, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn no_show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let done = app::bookings::no_show(&state.app, &caller.context(), booking_id(&id)?).await?;
    Ok(Json(done.into()))
}
