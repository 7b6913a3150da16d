//! Bookings from the dashboard or the API. A booking and the agenda it occupies are decided
//! together (`domain::scheduling`) and appended in one transaction, each stream at the version
//! it was read; when another booking got onto the agenda first, everything is decided again
//! on the fresh agenda, where the slot is now taken (409, with the times still free).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::access::Permission;
use domain::agenda::{AgendaError, AgendaEvent, AgendaState, agenda_stream_id};
use domain::availability::free_slots;
use domain::booking::{
    BookingAggregate, BookingCommand, BookingError, BookingEvent, BookingState, Channel, Customer,
    Party, booking_reference,
};
use domain::bot::engine::agenda_day;
use domain::bot_config::{BotConfig, BotSettings, Service};
use domain::ids::{BookingId, ResourceId, ServiceId};
use domain::scheduling::{self, Scheduled, SchedulingError, appointment_at};
use domain::values::{PhoneNumber, Reason};
use eventstore::{AppendError, StreamAppend, StreamRef};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::caller::Caller;
use crate::config::config_stream;
use crate::exec::{ATTEMPTS, CommandContext, execute, expect, load, new_events, stream};

pub fn problem_of(err: SchedulingError) -> Problem {
    match err {
        SchedulingError::Booking(e) => booking_problem(e),
        SchedulingError::Agenda(AgendaError::SlotTaken) => Problem::new(
            StatusCode::CONFLICT,
            "slot-taken",
            "That time is no longer free",
        ),
        SchedulingError::Agenda(e) => Problem::internal(e),
    }
}

fn booking_problem(err: BookingError) -> Problem {
    match err {
        BookingError::NotFound => Problem::not_found("booking"),
        BookingError::InThePast => Problem::invalid("start", "the time is in the past"),
        BookingError::SameTime => Problem::invalid("start", "that is the time it already has"),
        other => Problem::conflict(other.to_string()),
    }
}

fn agenda_ref(resource: &ResourceId, day: chrono::NaiveDate) -> StreamRef {
    stream::<AgendaEvent>(agenda_stream_id(resource, day))
}

/// An agenda's state (keyed even when empty) and version.
async fn load_agenda(
    app: &AppState,
    tenant: Uuid,
    resource: &ResourceId,
    day: chrono::NaiveDate,
) -> Result<(AgendaState, u32), Problem> {
    let (state, version) =
        load::<domain::agenda::Agenda>(&app.store, tenant, &agenda_ref(resource, day)).await?;
    let state = if state.key.is_none() {
        AgendaState::new(resource.clone(), day)
    } else {
        state
    };
    Ok((state, version))
}

/// The configuration bookings need: the settings (time zone, hours, rules) and a service.
async fn settings_and_service(
    app: &AppState,
    tenant: Uuid,
    service_id: ServiceId,
) -> Result<(BotSettings, Service), Problem> {
    let (config, _) = load::<BotConfig>(&app.store, tenant, &config_stream()).await?;
    let settings = config
        .settings
        .clone()
        .ok_or_else(|| Problem::conflict("configure opening hours first (PUT /v1/bot-config)"))?;
    let service = config
        .services
        .get(&service_id)
        .filter(|s| s.active)
        .cloned()
        .ok_or_else(|| Problem::not_found("service"))?;
    Ok((settings, service))
}

/// Appends the booking stream and every agenda a decision touched, atomically.
async fn append_scheduled(
    app: &AppState,
    ctx: &CommandContext,
    booking_id: BookingId,
    booking_version: u32,
    scheduled: &Scheduled,
    agenda_versions: &HashMap<String, u32>,
) -> Result<eventstore::AppendOutcome, AppendError> {
    let metadata = ctx.metadata();
    let booking_stream = stream::<BookingEvent>(booking_id);
    let mut appends = vec![StreamAppend {
        stream: booking_stream.clone(),
        expected: expect(booking_version),
        events: new_events(
            ctx.tenant_id,
            &ctx.idempotency_key,
            &booking_stream,
            &scheduled.booking,
            &metadata,
        ),
    }];
    for change in &scheduled.agendas {
        let (resource, day) = change
            .agenda
            .key
            .clone()
            .expect("scheduling keys its agendas");
        let agenda_stream = agenda_ref(&resource, day);
        let version = agenda_versions
            .get(&agenda_stream.stream_id)
            .copied()
            .unwrap_or(0);
        appends.push(StreamAppend {
            stream: agenda_stream.clone(),
            expected: expect(version),
            events: new_events(
                ctx.tenant_id,
                &ctx.idempotency_key,
                &agenda_stream,
                &change.events,
                &metadata,
            ),
        });
    }
    app.store.append(ctx.tenant_id, appends).await
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerRequest {
    #[schema(value_type = String, example = "+34600000001")]
    pub phone: PhoneNumber,
    #[serde(default)]
    pub name: Option<String>,
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
    pub consistency_token: String,
}

fn view(booking: &domain::booking::Booking, consistency_token: String) -> BookingView {
    BookingView {
        booking_id: booking.booking_id.uuid(),
        reference: booking.reference.clone(),
        status: booking.status,
        service_id: booking.service_id.uuid(),
        start: booking.appointment.start,
        end: booking.appointment.end,
        consistency_token,
    }
}

/// 409 for a time that is not free, listing up to ten free times that day.
fn slot_taken(
    settings: &BotSettings,
    service: &Service,
    agenda: &AgendaState,
    day: chrono::NaiveDate,
) -> Problem {
    let holds: Vec<_> = agenda.intervals().copied().collect();
    let free: Vec<String> = free_slots(settings, service, day, &holds, Utc::now())
        .iter()
        .take(10)
        .map(|s| s.appointment.start.to_rfc3339())
        .collect();
    Problem::new(StatusCode::CONFLICT, "slot-taken", "That time is not free")
        .detail(if free.is_empty() {
            "nothing is free that day".to_owned()
        } else {
            format!("free that day: {}", free.join(", "))
        })
        .field("start", "not a free time for this service")
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
        (status = 201, description = "Book a service at a time for a customer", body = BookingView),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn book(
    State(app): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<BookRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::WriteBookings)?;
    let ctx = caller.context();
    let tenant = ctx.tenant_id;
    let booking_id = BookingId::from_uuid(match caller.idempotency_key() {
        Some(key) => eventstore::event_id_from_key(tenant, &format!("booking|{key}"), 0),
        None => Uuid::new_v4(),
    });
    let resource = ResourceId::default_resource();
    for _ in 0..ATTEMPTS {
        let (settings, service) = settings_and_service(&app, tenant, request.service_id).await?;
        let (booking, booking_version) =
            load::<BookingAggregate>(&app.store, tenant, &stream::<BookingEvent>(booking_id))
                .await?;
        if let Some(existing) = &booking.booking {
            // This key already booked: the same request gets the same answer.
            let same = existing.service_id == request.service_id
                && existing.appointment.start == request.start
                && existing.customer.phone == request.customer.phone;
            if !same {
                return Err(Problem::invalid(
                    "Idempotency-Key",
                    "this key was already used for a different request",
                ));
            }
            return Ok((StatusCode::CREATED, Json(view(existing, String::new()))));
        }
        let day = agenda_day(&settings, request.start);
        let (agenda, agenda_version) = load_agenda(&app, tenant, &resource, day).await?;
        let holds: Vec<_> = agenda.intervals().copied().collect();
        let now = Utc::now();
        if !free_slots(&settings, &service, day, &holds, now)
            .iter()
            .any(|s| s.appointment.start == request.start)
        {
            return Err(slot_taken(&settings, &service, &agenda, day));
        }
        let command = BookingCommand::Request {
            booking_id,
            reference: booking_reference(booking_id),
            service_id: service.id,
            service_name: service.name.clone(),
            price: service.price,
            resource: resource.clone(),
            appointment: appointment_at(request.start, service.duration),
            customer: Customer {
                phone: request.customer.phone.clone(),
                name: request.customer.name.clone(),
            },
            channel: Channel::Dashboard,
            confirm: request.confirm,
            now,
        };
        let scheduled = scheduling::request(
            &booking,
            &agenda,
            command,
            service.buffer_minutes,
            service.capacity,
        )
        .map_err(problem_of)?;
        let versions = HashMap::from([(agenda_stream_id(&resource, day), agenda_version)]);
        match append_scheduled(
            &app,
            &ctx,
            booking_id,
            booking_version,
            &scheduled,
            &versions,
        )
        .await
        {
            Ok(outcome) => {
                let state = BookingAggregate::fold(&scheduled.booking);
                let booking = state.booking.as_ref().expect("a requested booking");
                return Ok((
                    StatusCode::CREATED,
                    Json(view(booking, outcome.last_position.to_string())),
                ));
            }
            Err(AppendError::Conflict { .. }) => continue, // the agenda moved: decide again
            Err(AppendError::IdempotencyMismatch { .. }) => {
                return Err(Problem::invalid(
                    "Idempotency-Key",
                    "this key was already used for a different request",
                ));
            }
            Err(err) => return Err(Problem::internal(err)),
        }
    }
    Err(Problem::conflict("too many concurrent bookings; try again").retry_after(1))
}

fn booking_id(raw: &str) -> Result<BookingId, Problem> {
    raw.parse().map_err(|_| Problem::not_found("booking"))
}

/// A booking that exists in this tenant (another tenant's id reads as nothing: 404).
async fn existing(
    app: &AppState,
    tenant: Uuid,
    id: BookingId,
) -> Result<(BookingState, u32), Problem> {
    let loaded = load::<BookingAggregate>(&app.store, tenant, &stream::<BookingEvent>(id)).await?;
    if loaded.0.booking.is_none() {
        tracing::info!(%tenant, booking = %id, "security: unknown booking id (possibly another tenant's)");
        return Err(Problem::not_found("booking"));
    }
    Ok(loaded)
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
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
        (status = 200, description = "Cancel a booking (frees its slot)", body = BookingView),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let ctx = caller.context();
    let id = booking_id(&id)?;
    let reason = platform::problem::parse_optional_json::<CancelRequest>(&body)?.reason;
    for _ in 0..ATTEMPTS {
        let (booking, version) = existing(&app, ctx.tenant_id, id).await?;
        let current = booking.booking.as_ref().expect("exists");
        let (config, _) = load::<BotConfig>(&app.store, ctx.tenant_id, &config_stream()).await?;
        let settings = config
            .settings
            .ok_or_else(|| Problem::internal("a booking without configuration"))?;
        let day = agenda_day(&settings, current.appointment.start);
        let (agenda, agenda_version) =
            load_agenda(&app, ctx.tenant_id, &current.resource, day).await?;
        let scheduled = scheduling::cancel(
            &booking,
            &agenda,
            Party::Business,
            reason.clone(),
            Utc::now(),
        )
        .map_err(problem_of)?;
        let versions = HashMap::from([(agenda_stream_id(&current.resource, day), agenda_version)]);
        if let Some(changed) =
            commit(&app, &ctx, id, (booking, version), &scheduled, &versions).await?
        {
            return Ok(changed);
        }
    }
    Err(Problem::conflict("too many concurrent changes; try again").retry_after(1))
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
        (status = 200, description = "Move a booking to another free time", body = BookingView),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body")
    ),
    security(("bearer" = []))
)]
pub async fn reschedule(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    ApiJson(request): ApiJson<RescheduleRequest>,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let ctx = caller.context();
    let id = booking_id(&id)?;
    for _ in 0..ATTEMPTS {
        let (booking, version) = existing(&app, ctx.tenant_id, id).await?;
        let current = booking.booking.clone().expect("exists");
        let (settings, service) =
            settings_and_service(&app, ctx.tenant_id, current.service_id).await?;
        let old_day = agenda_day(&settings, current.appointment.start);
        let new_day = agenda_day(&settings, request.start);
        let (old_agenda, old_version) =
            load_agenda(&app, ctx.tenant_id, &current.resource, old_day).await?;
        let (new_agenda, new_version) = if new_day == old_day {
            (old_agenda.clone(), old_version)
        } else {
            load_agenda(&app, ctx.tenant_id, &current.resource, new_day).await?
        };
        // Free at the new time, not counting this booking's own hold.
        let holds: Vec<_> = new_agenda
            .holds
            .iter()
            .filter(|(b, _)| *b != id)
            .map(|(_, i)| *i)
            .collect();
        if !free_slots(&settings, &service, new_day, &holds, Utc::now())
            .iter()
            .any(|s| s.appointment.start == request.start)
        {
            return Err(slot_taken(&settings, &service, &new_agenda, new_day));
        }
        let scheduled = scheduling::reschedule(
            &booking,
            &old_agenda,
            &new_agenda,
            appointment_at(request.start, service.duration),
            current.resource.clone(),
            service.buffer_minutes,
            service.capacity,
            Party::Business,
            Utc::now(),
        )
        .map_err(problem_of)?;
        let versions = HashMap::from([
            (agenda_stream_id(&current.resource, old_day), old_version),
            (agenda_stream_id(&current.resource, new_day), new_version),
        ]);
        if let Some(changed) =
            commit(&app, &ctx, id, (booking, version), &scheduled, &versions).await?
        {
            return Ok(changed);
        }
    }
    Err(Problem::conflict("too many concurrent changes; try again").retry_after(1))
}

/// Appends a change to an existing booking and its agendas: the booking as it now is, or
/// `None` when a stream moved meanwhile (the caller decides again).
async fn commit(
    app: &AppState,
    ctx: &CommandContext,
    id: BookingId,
    (booking, version): (BookingState, u32),
    scheduled: &Scheduled,
    versions: &HashMap<String, u32>,
) -> Result<Option<Json<BookingView>>, Problem> {
    match append_scheduled(app, ctx, id, version, scheduled, versions).await {
        Ok(outcome) => {
            let state = scheduled
                .booking
                .iter()
                .fold(booking, BookingAggregate::evolve);
            let booking = state.booking.as_ref().expect("an existing booking");
            Ok(Some(Json(view(booking, outcome.last_position.to_string()))))
        }
        Err(AppendError::Conflict { .. }) => Ok(None),
        Err(err) => Err(Problem::internal(err)),
    }
}

/// Confirm, complete, mark as no-show: changes to the booking alone.
async fn transition(
    app: &AppState,
    caller: &Caller,
    id: &str,
    command: impl Fn() -> BookingCommand,
) -> Result<Json<BookingView>, Problem> {
    caller.require(Permission::WriteBookings)?;
    let ctx = caller.context();
    let id = booking_id(id)?;
    let done = execute::<BookingAggregate>(&app.store, &ctx, &stream::<BookingEvent>(id), |state, _| {
        if state.booking.is_none() {
            tracing::info!(tenant = %ctx.tenant_id, booking = %id, "security: unknown booking id (possibly another tenant's)");
        }
        BookingAggregate::decide(state, command()).map_err(booking_problem)
    })
    .await?;
    Ok(Json(view(
        done.state
            .booking
            .as_ref()
            .expect("a decided booking exists"),
        done.consistency_token,
    )))
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
        (status = 200, description = "Confirm a booking", body = BookingView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)")
    ),
    security(("bearer" = []))
)]
pub async fn confirm(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    transition(&app, &caller, &id, || BookingCommand::Confirm {
        now: Utc::now(),
    })
    .await
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
        (status = 200, description = "Mark a booking completed", body = BookingView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)")
    ),
    security(("bearer" = []))
)]
pub async fn complete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    transition(&app, &caller, &id, || BookingCommand::Complete {
        now: Utc::now(),
    })
    .await
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
        (status = 200, description = "Mark a customer as not having come", body = BookingView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended (with the reason)"),
        (status = 429, description = "Over a rate limit (Retry-After)"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)")
    ),
    security(("bearer" = []))
)]
pub async fn no_show(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<BookingView>, Problem> {
    transition(&app, &caller, &id, || BookingCommand::MarkNoShow {
        now: Utc::now(),
    })
    .await
}
