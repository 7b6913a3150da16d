//! A customer's WhatsApp conversation: taking a turn for each inbound message, recording the
//! delivery statuses Meta reports, and recording what the sender did with each reply.
//!
//! A turn reads the conversation, the tenant and the bot configuration in one query, and
//! the agenda days the bot may offer in another; the bot engine decides the replies and the
//! actions; `CustomerCalendar::carry_out` (domain) turns the actions into booking and agenda
//! events; the conversation, the bookings and the agendas are committed in one unit of work.
//! Event ids derive from the message id, so a redelivered message appends nothing; a turn
//! that lost a race (another message of this customer, another booking on the agenda) is
//! decided again on the new state.

use std::future::Future;
use std::sync::OnceLock;

use chrono::{Duration, Utc};
use domain::Decider as _;
use domain::agenda::{Agenda, agenda_stream_id};
use domain::billing::{Billing, UsageMonth};
use domain::booking::{BookingAggregate, BookingEvent};
use domain::bot::calendar::CustomerCalendar;
use domain::bot::engine::{BotAction, BotContext, Input, Turn, agenda_day, step};
use domain::bot::message::{Reply, render};
use domain::bot_config::{BotConfig, BotConfigState};
use domain::conversation::{
    Conversation, ConversationCommand, ConversationEvent, DeliveryStatus, InboundMessage,
};
use domain::ids::{BookingId, ResourceId};
use domain::tenant::{Tenant, TenantStatus};
use domain::values::PhoneNumber;
use eventstore::{RecordedEvent, StreamRef};
use uuid::Uuid;

use crate::billing::billing_stream;
use crate::bookings::{agenda_ref, stage_scheduled};
use crate::catalog::config_stream;
use crate::events::stream;
use crate::tenants::tenant_stream;
use crate::{App, AppError, CommandContext, Committed, UnitOfWork, execute};

/// A customer's conversation stream: one per phone number.
pub fn conversation_stream(customer: &PhoneNumber) -> StreamRef {
    stream::<ConversationEvent>(customer.as_str())
}

/// Whether the bot may answer a customer now. A customer flooding the bot is recorded, not
/// answered. Asked at most once per message, however often its turn is decided.
pub trait AnswerPolicy: Sync {
    fn may_answer(
        &self,
        tenant_id: Uuid,
        customer: &PhoneNumber,
    ) -> impl Future<Output = bool> + Send;
}

/// How a message's turn went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turned {
    /// Decided and recorded now.
    Taken,
    /// This message was taken before (a redelivery): nothing changed.
    AlreadyTaken,
}

/// Takes the turn of an inbound message. The bot answers when the business is open and
/// configured and the customer is within the message limit; a suspended business's customer
/// hears how to reach it instead; otherwise the message is recorded and nobody answers.
pub async fn take_turn(
    app: &App,
    tenant_id: Uuid,
    message: InboundMessage,
    answering: &impl AnswerPolicy,
) -> Result<Committed<Turned>, AppError> {
    let ctx = CommandContext {
        request_id: Some(message.wamid.clone()),
        ..CommandContext::new(
            tenant_id,
            format!("whatsapp:{}", message.from.wa_id()),
            message.wamid.clone(),
        )
    };
    let answer = OnceLock::new();
    let (message, answer) = (&message, &answer);
    let conversation_ref = conversation_stream(&message.from);
    let conversation_ref = &conversation_ref;
    execute(&app.store, &ctx, |uow| {
        Box::pin(async move {
            let tenant_ref = tenant_stream(tenant_id);
            let billing_ref = billing_stream(tenant_id);
            let mut reads = uow
                .read_many(&[
                    conversation_ref.clone(),
                    tenant_ref.clone(),
                    config_stream(),
                    billing_ref.clone(),
                ])
                .await?;
            let conversation = uow.fold_in::<Conversation>(conversation_ref, &mut reads)?;
            if conversation.seen.contains(&message.wamid) {
                return Ok(Turned::AlreadyTaken);
            }
            let tenant = uow.fold_in::<Tenant>(&tenant_ref, &mut reads)?;
            let config = uow.fold_in::<BotConfig>(&config_stream(), &mut reads)?;
            let billing = uow.fold_in::<Billing>(&billing_ref, &mut reads)?;
            let mut calendar = load_calendar(uow, &config, &conversation.bookings).await?;
            let now = message.received_at;

            let allowed = match answer.get() {
                Some(allowed) => *allowed,
                None => {
                    let allowed = answering.may_answer(tenant_id, &message.from).await;
                    *answer.get_or_init(|| allowed)
                }
            };
            let turn = match (&config.settings, &tenant.onboarded) {
                (Some(settings), Some(t)) if t.status == TenantStatus::Active && allowed => {
                    let services: Vec<_> = config.active_services().cloned().collect();
                    let mut context = BotContext {
                        business_name: t.business_name.as_str(),
                        contact: t.contact_email.as_str(),
                        settings,
                        services: &services,
                        bookings_open: billing.bookings_stopped(UsageMonth::of(now)).is_none(),
                    };
                    let input = Input {
                        inbound: &message.content,
                        profile_name: message.profile_name.as_deref(),
                        now,
                        new_booking_id: BookingId::from_uuid(uow.context().derived_id("booking")),
                    };
                    let turn = step(&context, &calendar, &conversation.bot, input);
                    let books = turn
                        .actions
                        .iter()
                        .any(|a| matches!(a, BotAction::RequestBooking { .. }));
                    // The meter's count lags the log: a booking is checked against the log.
                    if books
                        && crate::billing::booking_stop(uow, &billing, now)
                            .await?
                            .is_some()
                    {
                        context.bookings_open = false;
                        step(&context, &calendar, &conversation.bot, input)
                    } else {
                        turn
                    }
                }
                // Suspended: the customer hears how to reach the business, never silence.
                (settings, Some(t)) if t.status == TenantStatus::Suspended && allowed => {
                    let texts = settings
                        .as_ref()
                        .map(|s| s.flow.texts.clone())
                        .unwrap_or_default();
                    let notice = render(
                        &texts.unavailable,
                        &[
                            ("business_name", t.business_name.as_str()),
                            ("contact", t.contact_email.as_str()),
                        ],
                    );
                    Turn {
                        state: conversation.bot.clone(),
                        replies: vec![Reply::text(notice)],
                        actions: vec![],
                        expired: false,
                    }
                }
                // Not configured, closed, or a flood: record the message, say nothing.
                _ => Turn {
                    state: conversation.bot.clone(),
                    replies: vec![],
                    actions: vec![],
                    expired: false,
                },
            };
            let changes = calendar
                .carry_out(&config, &turn.actions, &message.from, now)
                .map_err(|e| {
                    AppError::internal(format!("the bot's actions do not fit the calendar: {e}"))
                })?;
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::RecordTurn {
                    message: message.clone(),
                    turn: Box::new(turn),
                },
            )?;
            uow.stage(conversation_ref, &events);
            for change in &changes {
                stage_scheduled(uow, change.booking_id, &change.scheduled);
            }
            Ok(Turned::Taken)
        })
    })
    .await
}

/// The agenda days a turn may offer (today to the end of the booking horizon) and any day
/// one of the customer's bookings is on, and the customer's bookings.
async fn load_calendar(
    uow: &mut UnitOfWork<'_>,
    config: &BotConfigState,
    booking_ids: &[BookingId],
) -> Result<CustomerCalendar, AppError> {
    let booking_refs: Vec<StreamRef> = booking_ids.iter().map(stream::<BookingEvent>).collect();
    let mut reads = uow.read_many(&booking_refs).await?;
    let mut bookings = Vec::with_capacity(booking_refs.len());
    for booking_ref in &booking_refs {
        bookings.push(uow.fold_in::<BookingAggregate>(booking_ref, &mut reads)?);
    }
    let Some(settings) = &config.settings else {
        return Ok(CustomerCalendar::new(config, [], bookings));
    };
    let resource = ResourceId::default_resource();
    let today = Utc::now()
        .with_timezone(&settings.time_zone.tz())
        .date_naive();
    let last = today + Duration::days(i64::from(settings.rules.horizon_days) + 1);
    let mut agendas = uow
        .load_between::<Agenda>(
            &agenda_stream_id(&resource, today),
            &agenda_stream_id(&resource, last),
        )
        .await?;
    // A booking's own day may lie outside the window (the horizon shrank since).
    for booking in bookings.iter().filter_map(|b| b.booking.as_ref()) {
        let day = agenda_day(settings, booking.appointment.start);
        if (day < today || day > last) && booking.resource == resource {
            let agenda = uow.load::<Agenda>(&agenda_ref(&resource, day)).await?;
            if agenda.key.is_some() {
                agendas.push(agenda);
            }
        }
    }
    Ok(CustomerCalendar::new(config, agendas, bookings))
}

/// Records a delivery status Meta reported for a reply. Statuses only move forward, and one
/// that arrives before the sender recorded the send is kept until it does (the domain
/// decides). A status for a message this conversation never sent is the domain's rejection.
pub async fn record_status(
    app: &App,
    tenant_id: Uuid,
    customer: &PhoneNumber,
    wamid: &str,
    status: DeliveryStatus,
) -> Result<Committed<()>, AppError> {
    let ctx = CommandContext::new(
        tenant_id,
        "whatsapp:status",
        format!("status|{wamid}|{}", status.as_str()),
    );
    let conversation_ref = conversation_stream(customer);
    let conversation_ref = &conversation_ref;
    execute(&app.store, &ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(conversation_ref).await?;
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::RecordStatus {
                    wamid: wamid.to_owned(),
                    status,
                },
            )?;
            uow.stage(conversation_ref, &events);
            Ok(())
        })
    })
    .await
}

/// What the sender did with a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Meta accepted it and gave it this message id.
    Sent { wamid: String },
    /// It was not delivered: Meta's error code (0 when Meta never answered) and reason.
    Failed { code: i64, reason: String },
}

/// Records on the conversation what became of the reply `replied` (a `BotReplied` event),
/// as the domain decides: the same outcome twice is recorded once.
pub async fn record_send_outcome(
    app: &App,
    replied: &RecordedEvent,
    reply_id: &str,
    outcome: SendOutcome,
) -> Result<Committed<()>, AppError> {
    let ctx = CommandContext::new(
        replied.tenant_id,
        "system:whatsapp-sender",
        format!("send-outcome:{}", replied.event_id),
    )
    .caused_by(replied);
    let command = match outcome {
        SendOutcome::Sent { wamid } => ConversationCommand::RecordSent {
            reply_id: reply_id.to_owned(),
            wamid,
        },
        SendOutcome::Failed { code, reason } => ConversationCommand::RecordSendFailed {
            reply_id: reply_id.to_owned(),
            code,
            reason,
        },
    };
    let command = &command;
    execute(&app.store, &ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(&replied.stream).await?;
            let events = Conversation::decide(&conversation, command.clone())?;
            uow.stage(&replied.stream, &events);
            Ok(())
        })
    })
    .await
}
