//! The WhatsApp webhook. `GET` answers Meta's verification; `POST` takes messages and statuses.
//!
//! A POST is trusted only after its signature checks out, over the raw bytes, with the app
//! secret of every tenant it concerns (found by `phone_number_id`); otherwise 401 and nothing
//! changes. Each message is one turn of its conversation: the bot engine decides, and the
//! conversation, any booking and the agendas it touches are appended in one transaction, with
//! event ids derived from the message id, so a redelivered message changes nothing. 200 is
//! answered only once every turn is durable (Meta redelivers anything else).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{Duration, Utc};
use domain::agenda::{Agenda, AgendaEvent, AgendaState, agenda_stream_id};
use domain::booking::{
    BookingAggregate, BookingCommand, BookingEvent, BookingState, Channel, Customer, Party,
};
use domain::bot::engine::{
    BookingView, BotAction, BotContext, Calendar, Input, Turn, agenda_day, step,
};
use domain::bot_config::{BotConfig, BotConfigState};
use domain::conversation::{
    Conversation, ConversationCommand, ConversationEvent, DeliveryStatus, InboundMessage,
};
use domain::ids::{BookingId, ResourceId};
use domain::scheduling::{self, Scheduled, appointment_at};
use domain::tenant::{Tenant, TenantEvent, TenantStatus};
use domain::values::{LocalDate, PhoneNumber};
use domain::{Decider as _, DomainEvent as _};
use eventstore::{AppendError, StreamAppend};
use platform::problem::Problem;
use uuid::Uuid;
use whatsapp::webhook::{ChangeValue, Message, Notification, Status};

use crate::AppState;
use crate::config::config_stream;
use crate::exec::{ATTEMPTS, CommandContext, expect, fold, load, new_events, stream};
use crate::secrets::sha256;

/// `GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
#[utoipa::path(
    get,
    path = "/webhooks/whatsapp",
    tag = "whatsapp",
    summary = "Meta's webhook verification: echoes hub.challenge for the right verify token",
    params(
        ("hub.mode" = String, Query, description = "subscribe"),
        ("hub.verify_token" = String, Query, description = "The tenant's verify token"),
        ("hub.challenge" = String, Query, description = "Echoed back")
    ),
    responses(
        (status = 200, description = "Meta's webhook verification: echoes hub.challenge for the right verify token"),
        (status = 403, description = "The credential's role or scopes do not allow it")
    )
)]
pub async fn verify(
    State(app): State<AppState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, Problem> {
    let (Some(mode), Some(token), Some(challenge)) = (
        params.get("hub.mode"),
        params.get("hub.verify_token"),
        params.get("hub.challenge"),
    ) else {
        return Ok(StatusCode::FORBIDDEN.into_response());
    };
    let known: bool = sqlx::query_scalar(
        "select exists (select from whatsapp_routes where verify_token_hash = $1)",
    )
    .bind(sha256(token))
    .fetch_one(app.store.pool())
    .await?;
    if mode == "subscribe" && known {
        Ok((
            StatusCode::OK,
            [("content-type", "text/plain")],
            challenge.clone(),
        )
            .into_response())
    } else {
        Ok(StatusCode::FORBIDDEN.into_response())
    }
}

/// `POST /webhooks/whatsapp`
#[utoipa::path(
    post,
    path = "/webhooks/whatsapp",
    tag = "whatsapp",
    summary = "Meta's notifications (messages, statuses), signed; 200 once durable",
    request_body = Object,
    params(
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<HMAC of the raw body with the app secret>")
    ),
    responses(
        (status = 200, description = "Meta's notifications (messages, statuses), signed; 200 once durable"),
        (status = 400, description = "The body is not valid JSON"),
        (status = 401, description = "No valid credential"),
        (status = 413, description = "The body is too large"),
        (status = 503, description = "A dependency is down, or too busy (Retry-After)")
    )
)]
pub async fn receive(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, Problem> {
    let body = body.map_err(|rejection| {
        Problem::new(
            rejection.status(),
            "unreadable-body",
            "The body cannot be read",
        )
        .detail(rejection.body_text())
    })?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(Problem::unauthorized)?
        .to_owned();
    let notification: Notification = serde_json::from_slice(&body)
        .map_err(|e| Problem::bad_request(format!("not a webhook notification: {e}")))?;

    let ids = notification.phone_number_ids();
    let routes: HashMap<String, Uuid> = app.routes.tenants_of(app.store.pool(), &ids).await?;
    if routes.len() < ids.len() {
        tracing::warn!(unknown = ?ids.iter().filter(|i| !routes.contains_key(*i)).collect::<Vec<_>>(), "webhook for numbers no tenant has connected");
    }

    // Every tenant concerned must have signed this exact body.
    let mut tenants: Vec<Uuid> = routes.values().copied().collect();
    tenants.sort();
    tenants.dedup();
    for tenant_id in &tenants {
        let mut tx = app.store.begin(*tenant_id).await?;
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("select app_secret_enc from whatsapp_credentials")
                .fetch_optional(tx.conn())
                .await?;
        tx.rollback().await?;
        let secret = sealed
            .and_then(|s| app.sealer.open(&s))
            .ok_or_else(|| Problem::internal("unreadable WhatsApp credentials"))?;
        if !whatsapp::verify_signature(&secret, &body, &signature) {
            tracing::warn!(tenant = %tenant_id, "security: webhook with a bad signature");
            return Err(Problem::unauthorized());
        }
    }

    for change in notification.changes() {
        let Some(tenant_id) = routes.get(&change.metadata.phone_number_id).copied() else {
            continue;
        };
        for message in &change.messages {
            handle_message(&app, tenant_id, change, message).await?;
        }
        for status in &change.statuses {
            handle_status(&app, tenant_id, status).await?;
        }
    }
    Ok(StatusCode::OK)
}

/// What a turn may look at: the agenda days it can offer, and the customer's bookings.
struct Loaded {
    agendas: HashMap<LocalDate, (AgendaState, u32)>,
    bookings: Vec<(BookingState, u32)>,
    buffers: HashMap<domain::ids::ServiceId, u32>,
}

impl Calendar for Loaded {
    fn holds(&self, date: LocalDate) -> Vec<(BookingId, domain::agenda::Interval)> {
        self.agendas
            .get(&date)
            .map(|(a, _)| a.holds.clone())
            .unwrap_or_default()
    }

    fn bookings(&self) -> Vec<BookingView> {
        self.bookings
            .iter()
            .filter_map(|(s, _)| s.booking.as_ref())
            .map(|b| BookingView {
                booking_id: b.booking_id,
                service_id: b.service_id,
                service_name: b.service_name.clone(),
                appointment: b.appointment,
                buffer_minutes: self.buffers.get(&b.service_id).copied().unwrap_or(0),
                status: b.status,
            })
            .collect()
    }
}

async fn load_calendar(
    app: &AppState,
    tenant_id: Uuid,
    config: &BotConfigState,
    booking_ids: &[BookingId],
) -> Result<Loaded, Problem> {
    let resource = ResourceId::default_resource();
    let mut agendas = HashMap::new();
    if let Some(settings) = &config.settings {
        let today = Utc::now()
            .with_timezone(&settings.time_zone.tz())
            .date_naive();
        let last = today + Duration::days(i64::from(settings.rules.horizon_days) + 1);
        let events = app
            .store
            .read_streams_between(
                tenant_id,
                AgendaEvent::STREAM_TYPE,
                &agenda_stream_id(&resource, today),
                &agenda_stream_id(&resource, last),
            )
            .await?;
        let mut by_stream: HashMap<String, Vec<eventstore::RecordedEvent>> = HashMap::new();
        for e in events {
            by_stream
                .entry(e.stream.stream_id.clone())
                .or_default()
                .push(e);
        }
        for (stream_id, recorded) in by_stream {
            let (state, version) = fold::<Agenda>(&stream::<AgendaEvent>(stream_id), recorded)?;
            if let Some((_, day)) = state.key.clone() {
                agendas.insert(day, (state, version));
            }
        }
    }
    let mut bookings = Vec::new();
    for id in booking_ids {
        bookings.push(
            load::<BookingAggregate>(&app.store, tenant_id, &stream::<BookingEvent>(id)).await?,
        );
    }
    let buffers = config
        .services
        .values()
        .map(|s| (s.id, s.buffer_minutes))
        .collect();
    Ok(Loaded {
        agendas,
        bookings,
        buffers,
    })
}

async fn handle_message(
    app: &AppState,
    tenant_id: Uuid,
    change: &ChangeValue,
    message: &Message,
) -> Result<(), Problem> {
    let Ok(from) = PhoneNumber::from_wa_id(&message.from) else {
        tracing::warn!(%tenant_id, from = %message.from, "message from an unusable number; ignored");
        return Ok(());
    };
    let ctx = CommandContext {
        tenant_id,
        actor: format!("whatsapp:{}", from.wa_id()),
        request_id: Some(message.id.clone()),
        idempotency_key: message.id.clone(),
    };
    let conversation_stream = stream::<ConversationEvent>(from.as_str());
    let _turn = app
        .conversations
        .lock(format!("{tenant_id}/{}", from.as_str()))
        .await;
    let now = Utc::now();
    let inbound = InboundMessage {
        wamid: message.id.clone(),
        from: from.clone(),
        profile_name: change.profile_name(&message.from),
        content: message.content(),
        received_at: now,
    };
    let mut answer: Option<bool> = None;
    for _ in 0..ATTEMPTS {
        // The three aggregates a turn reads, in one query.
        let tenant_stream = stream::<TenantEvent>(tenant_id);
        let mut read = app
            .store
            .read_streams(
                tenant_id,
                &[
                    conversation_stream.clone(),
                    tenant_stream.clone(),
                    config_stream(),
                ],
            )
            .await?;
        let mut take = |s: &eventstore::StreamRef| read.remove(s).unwrap_or_default();
        let (conversation, conversation_version) =
            fold::<Conversation>(&conversation_stream, take(&conversation_stream))?;
        if conversation.seen.contains(&message.id) {
            return Ok(()); // delivered before: this turn is already durable
        }
        let (tenant, _) = fold::<Tenant>(&tenant_stream, take(&tenant_stream))?;
        let (config, _) = fold::<BotConfig>(&config_stream(), take(&config_stream()))?;
        let open = tenant
            .onboarded
            .as_ref()
            .is_some_and(|t| t.status == TenantStatus::Active);
        let calendar = load_calendar(app, tenant_id, &config, &conversation.bookings).await?;

        // A customer flooding the bot is recorded, not answered (counted once per message,
        // however often the turn is retried).
        let answer = match answer {
            Some(answer) => answer,
            None => {
                let subject = format!("wa:{tenant_id}:{}", from.wa_id());
                let within = app
                    .limiter
                    .check(&subject, app.webhook_phone_quota)
                    .await
                    .is_ok();
                if !within {
                    tracing::warn!(%tenant_id, "security: a customer is over the message limit; not answering");
                }
                *answer.insert(within)
            }
        };
        let turn = match (&config.settings, &tenant.onboarded) {
            (Some(settings), Some(t)) if open && answer => {
                let services: Vec<_> = config.active_services().cloned().collect();
                let context = BotContext {
                    business_name: t.business_name.as_str(),
                    settings,
                    services: &services,
                };
                let input = Input {
                    inbound: &inbound.content,
                    profile_name: inbound.profile_name.as_deref(),
                    now,
                    new_booking_id: BookingId::from_uuid(eventstore::event_id_from_key(
                        tenant_id,
                        &format!("booking|{}", message.id),
                        0,
                    )),
                };
                step(&context, &calendar, &conversation.bot, input)
            }
            // Suspended, closed or not configured: record the message, say nothing.
            _ => Turn {
                state: conversation.bot.clone(),
                replies: vec![],
                actions: vec![],
                expired: false,
            },
        };
        let scheduled = match schedule(&config, &calendar, &turn, &from, now) {
            Ok(s) => s,
            Err(problem) if problem.status == StatusCode::CONFLICT => continue,
            Err(problem) => return Err(problem),
        };
        let conversation_events = Conversation::decide(
            &conversation,
            ConversationCommand::RecordTurn {
                message: inbound.clone(),
                turn: Box::new(turn),
            },
        )
        .map_err(Problem::internal)?;

        let metadata = ctx.metadata();
        let mut appends = vec![StreamAppend {
            stream: conversation_stream.clone(),
            expected: expect(conversation_version),
            events: new_events(
                tenant_id,
                &ctx.idempotency_key,
                &conversation_stream,
                &conversation_events,
                &metadata,
            ),
        }];
        for (booking_id, booking_version, s) in &scheduled {
            let booking_stream = stream::<BookingEvent>(booking_id);
            appends.push(StreamAppend {
                stream: booking_stream.clone(),
                expected: expect(*booking_version),
                events: new_events(
                    tenant_id,
                    &ctx.idempotency_key,
                    &booking_stream,
                    &s.booking,
                    &metadata,
                ),
            });
            for change in &s.agendas {
                let (resource, day) = change.agenda.key.clone().expect("keyed agenda");
                let agenda_stream = stream::<AgendaEvent>(agenda_stream_id(&resource, day));
                let version = calendar.agendas.get(&day).map_or(0, |(_, v)| *v);
                appends.push(StreamAppend {
                    stream: agenda_stream.clone(),
                    expected: expect(version),
                    events: new_events(
                        tenant_id,
                        &ctx.idempotency_key,
                        &agenda_stream,
                        &change.events,
                        &metadata,
                    ),
                });
            }
        }
        match app.store.append(tenant_id, appends).await {
            Ok(_) => return Ok(()),
            // Another message of this customer, or another booking on the agenda, got there
            // first: take the turn again on the fresh state.
            Err(AppendError::Conflict { .. }) => continue,
            Err(err) => return Err(Problem::internal(err)),
        }
    }
    Err(Problem::unavailable(
        "the conversation is too busy; Meta will redeliver",
        1,
    ))
}

/// The booking and agenda events a turn's actions need (one entry per booking touched).
fn schedule(
    config: &BotConfigState,
    calendar: &Loaded,
    turn: &Turn,
    from: &PhoneNumber,
    now: chrono::DateTime<Utc>,
) -> Result<Vec<(BookingId, u32, Scheduled)>, Problem> {
    let Some(settings) = &config.settings else {
        return Ok(vec![]);
    };
    let resource = ResourceId::default_resource();
    let agenda_of = |day: LocalDate| {
        calendar
            .agendas
            .get(&day)
            .map(|(a, _)| a.clone())
            .unwrap_or_else(|| AgendaState::new(resource.clone(), day))
    };
    let booking_of = |id: BookingId| {
        calendar
            .bookings
            .iter()
            .find(|(s, _)| s.booking.as_ref().is_some_and(|b| b.booking_id == id))
            .cloned()
    };
    let conflict = |e: scheduling::SchedulingError| match e {
        scheduling::SchedulingError::Agenda(domain::agenda::AgendaError::SlotTaken) => {
            Problem::conflict("slot taken meanwhile")
        }
        other => Problem::internal(other),
    };
    let mut out = Vec::new();
    for action in &turn.actions {
        match action {
            BotAction::RequestBooking {
                booking_id,
                reference,
                service_id,
                start,
                customer_name,
                confirm,
                ..
            } => {
                let Some(service) = config.services.get(service_id) else {
                    continue;
                };
                let command = BookingCommand::Request {
                    booking_id: *booking_id,
                    reference: reference.clone(),
                    service_id: *service_id,
                    service_name: service.name.clone(),
                    price: service.price,
                    resource: resource.clone(),
                    appointment: appointment_at(*start, service.duration),
                    customer: Customer {
                        phone: from.clone(),
                        name: customer_name.clone(),
                    },
                    channel: Channel::WhatsApp,
                    confirm: *confirm,
                    now,
                };
                let day = agenda_day(settings, *start);
                let s = scheduling::request(
                    &BookingState::default(),
                    &agenda_of(day),
                    command,
                    service.buffer_minutes,
                    service.capacity,
                )
                .map_err(conflict)?;
                out.push((*booking_id, 0, s));
            }
            BotAction::CancelBooking { booking_id } => {
                let Some((state, version)) = booking_of(*booking_id) else {
                    continue;
                };
                let day = agenda_day(
                    settings,
                    state.booking.as_ref().expect("loaded").appointment.start,
                );
                let s = scheduling::cancel(&state, &agenda_of(day), Party::Customer, None, now)
                    .map_err(conflict)?;
                out.push((*booking_id, version, s));
            }
            BotAction::RescheduleBooking { booking_id, start } => {
                let Some((state, version)) = booking_of(*booking_id) else {
                    continue;
                };
                let booking = state.booking.clone().expect("loaded");
                let Some(service) = config.services.get(&booking.service_id) else {
                    continue;
                };
                let old_day = agenda_day(settings, booking.appointment.start);
                let new_day = agenda_day(settings, *start);
                let s = scheduling::reschedule(
                    &state,
                    &agenda_of(old_day),
                    &agenda_of(new_day),
                    appointment_at(*start, service.duration),
                    resource.clone(),
                    service.buffer_minutes,
                    service.capacity,
                    Party::Customer,
                    now,
                )
                .map_err(conflict)?;
                out.push((*booking_id, version, s));
            }
            BotAction::HandOff => {}
        }
    }
    Ok(out)
}

async fn handle_status(app: &AppState, tenant_id: Uuid, status: &Status) -> Result<(), Problem> {
    let Ok(to) = PhoneNumber::from_wa_id(&status.recipient_id) else {
        return Ok(());
    };
    let status_value = match status.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => return Ok(()),
    };
    let ctx = CommandContext {
        tenant_id,
        actor: "whatsapp:status".into(),
        request_id: None,
        idempotency_key: format!("status|{}|{}", status.id, status.status),
    };
    let conversation_stream = stream::<ConversationEvent>(to.as_str());
    let _turn = app
        .conversations
        .lock(format!("{tenant_id}/{}", to.as_str()))
        .await;
    let result =
        crate::exec::execute::<Conversation>(&app.store, &ctx, &conversation_stream, |state, _| {
            Ok(Conversation::decide(
                state,
                ConversationCommand::RecordStatus {
                    wamid: status.id.clone(),
                    status: status_value,
                },
            )
            .unwrap_or_default())
        })
        .await;
    result.map(|_| ())
}
