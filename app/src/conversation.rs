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

use chrono::{DateTime, Duration, Utc};
use domain::Decider as _;
use domain::agenda::{Agenda, agenda_stream_id};
use domain::billing::{Billing, BillingState, UsageMonth};
use domain::booking::{BookingAggregate, BookingEvent};
use domain::bot::calendar::CustomerCalendar;
use domain::bot::engine::{BotAction, BotContext, Input, Turn, agenda_day, step};
use domain::bot::message::{Inbound, Reply, render};
use domain::bot_config::{BotConfig, BotConfigState};
use domain::conversation::{
    Conversation, ConversationCommand, ConversationEvent, ConversationState, DeliveryStatus,
    InboundMessage,
};
use domain::ids::{BookingId, ResourceId};
use domain::tenant::{Tenant, TenantState, TenantStatus};
use domain::values::PhoneNumber;
use eventstore::{RecordedEvent, StreamRef};
use uuid::Uuid;

use crate::billing::billing_stream;
use crate::bookings::{agenda_ref, stage_scheduled};
use crate::catalog::config_stream;
use crate::events::stream;
use crate::tenants::tenant_stream;
use crate::{App, AppError, CommandContext, Committed, UnitOfWork, execute};

/// A customer's conversation stream, named by their subject id, made with their key on first
/// contact: never by their phone, since stream ids stay in the log forever and an erased
/// customer must leave nothing there that names them. The key made here commits by itself
/// (for imports and tests that append to the stream themselves); a command names the stream
/// with `UnitOfWork::conversation_of`, whose key commits with its events.
pub async fn conversation_of(
    store: &eventstore::EventStore,
    tenant_id: Uuid,
    customer: &PhoneNumber,
) -> Result<StreamRef, AppError> {
    let mut conn = store.pool().acquire().await?;
    let key = eventstore::personal::subject_key(&mut conn, tenant_id, customer.as_str()).await?;
    Ok(stream::<ConversationEvent>(key.subject))
}

/// The conversation stream of a customer the business has met (`None`: never met, or erased).
pub async fn known_conversation(
    store: &eventstore::EventStore,
    tenant_id: Uuid,
    customer: &PhoneNumber,
) -> Result<Option<StreamRef>, AppError> {
    let mut conn = store.pool().acquire().await?;
    let subject = eventstore::personal::subject_of(&mut conn, tenant_id, customer.as_str()).await?;
    Ok(subject.map(stream::<ConversationEvent>))
}

/// What a command on the conversation of a customer the business never met is told: the
/// domain's own refusal of a conversation without a customer.
fn never_met(command: ConversationCommand) -> AppError {
    match Conversation::decide(&Default::default(), command) {
        Err(refused) => refused.into(),
        Ok(_) => AppError::NotFound("conversation"),
    }
}

/// Whether the bot may answer a customer now. A customer writing faster than the bot may
/// answer is answered later. Asked at most once per message, however often its turn is
/// decided.
pub trait AnswerPolicy: Sync {
    fn may_answer(
        &self,
        tenant_id: Uuid,
        message: &InboundMessage,
    ) -> impl Future<Output = Answer> + Send;
}

/// When the bot answers a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Now,
    /// Over the message limit: the customer is told once that the bot will answer, and the
    /// latest such message is answered at `at`.
    Later {
        at: DateTime<Utc>,
    },
}

/// How a message's turn went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turned {
    /// Decided and recorded now.
    Taken,
    /// Recorded; its answer waits for the message limit (the conversation clock takes it).
    Deferred,
    /// This message was taken before (a redelivery): nothing changed.
    AlreadyTaken,
}

/// What a turn reads besides the conversation: the tenant, its bot and its plan.
struct Business {
    tenant: TenantState,
    config: BotConfigState,
    billing: BillingState,
}

impl Business {
    /// The business is active and its bot configured: the bot answers.
    fn bot_answers(&self) -> bool {
        self.config.settings.is_some()
            && self
                .tenant
                .onboarded
                .as_ref()
                .is_some_and(|t| t.status == TenantStatus::Active)
    }
}

/// Reads the conversation and the business in one query.
async fn read_turn(
    uow: &mut UnitOfWork<'_>,
    conversation_ref: &StreamRef,
) -> Result<(ConversationState, Business), AppError> {
    let tenant_id = uow.tenant_id();
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
    let business = Business {
        tenant: uow.fold_in::<Tenant>(&tenant_ref, &mut reads)?,
        config: uow.fold_in::<BotConfig>(&config_stream(), &mut reads)?,
        billing: uow.fold_in::<Billing>(&billing_ref, &mut reads)?,
    };
    Ok((conversation, business))
}

/// Takes the turn of an inbound message. The bot answers when the business is open and
/// configured; a customer over the message limit hears once that it will answer, and the
/// latest message is answered when the limit allows; a suspended business's customer hears
/// how to reach it instead; otherwise the message is recorded and nobody answers.
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
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            // The customer's key, found (or made) once: it names the stream and seals the turn.
            let conversation_ref = &uow.conversation_of(&message.from).await?;
            let (conversation, business) = read_turn(uow, conversation_ref).await?;
            if conversation.seen.contains(&message.wamid) {
                return Ok(Turned::AlreadyTaken);
            }
            let answer = match answer.get() {
                Some(answer) => *answer,
                None => {
                    let decided = answering.may_answer(tenant_id, message).await;
                    *answer.get_or_init(|| decided)
                }
            };
            if let Answer::Later { at } = answer
                && business.bot_answers()
            {
                let texts = &business
                    .config
                    .settings
                    .as_ref()
                    .expect("answers")
                    .flow
                    .texts;
                let notice = render(&texts.answer_shortly, &[]);
                let events = Conversation::decide(
                    &conversation,
                    ConversationCommand::DeferTurn {
                        message: message.clone(),
                        until: at,
                        notice: Reply::text(notice),
                    },
                )?;
                uow.stage(conversation_ref, &events);
                return Ok(Turned::Deferred);
            }
            let incoming = Incoming {
                content: &message.content,
                profile_name: message.profile_name.as_deref(),
                customer: &message.from,
                now: message.received_at,
            };
            let turn = bot_turn(uow, &business, &conversation, incoming).await?;
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::RecordTurn {
                    message: message.clone(),
                    turn: Box::new(turn),
                },
            )?;
            uow.stage(conversation_ref, &events);
            Ok(Turned::Taken)
        })
    })
    .await
}

/// Answers the message of `customer` that waits for the message limit, if its time has come
/// by `now` (the conversation clock's command). `None` when nothing was due.
pub async fn take_deferred_turn(
    app: &App,
    tenant_id: Uuid,
    customer: &PhoneNumber,
    now: DateTime<Utc>,
) -> Result<Option<Committed<()>>, AppError> {
    let Some(conversation_ref) = known_conversation(&app.store, tenant_id, customer).await? else {
        return Ok(None);
    };
    let recorded = app
        .store
        .read_stream(tenant_id, &conversation_ref, 1)
        .await?;
    let state = crate::events::fold::<Conversation>(&conversation_ref, recorded)?.0;
    let Some((waiting, until)) = state.deferred else {
        return Ok(None);
    };
    if until > now {
        return Ok(None);
    }
    let ctx = CommandContext::new(
        tenant_id,
        "system:conversation-clock",
        format!("deferred|{}", waiting.wamid),
    );
    let (waiting, conversation_ref) = (&waiting, &conversation_ref);
    let committed = execute(app, &ctx, |uow| {
        Box::pin(async move {
            let (conversation, business) = read_turn(uow, conversation_ref).await?;
            if conversation.deferred.as_ref().map(|(r, _)| &r.wamid) != Some(&waiting.wamid) {
                return Ok(()); // answered meanwhile
            }
            let incoming = Incoming {
                content: &waiting.content,
                profile_name: waiting.profile_name.as_deref(),
                customer,
                now,
            };
            let turn = bot_turn(uow, &business, &conversation, incoming).await?;
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::TakeDeferredTurn {
                    wamid: waiting.wamid.clone(),
                    turn: Box::new(turn),
                },
            )?;
            uow.stage(conversation_ref, &events);
            Ok(())
        })
    })
    .await?;
    Ok(Some(committed))
}

/// What the bot answers to.
#[derive(Clone, Copy)]
struct Incoming<'a> {
    content: &'a Inbound,
    profile_name: Option<&'a str>,
    customer: &'a PhoneNumber,
    now: DateTime<Utc>,
}

/// Decides the bot's turn and stages the bookings and agendas its actions change. A
/// suspended business's customer hears how to reach it; a business that is not configured
/// (or closed) answers nothing.
async fn bot_turn(
    uow: &mut UnitOfWork<'_>,
    business: &Business,
    conversation: &ConversationState,
    incoming: Incoming<'_>,
) -> Result<Turn, AppError> {
    let Business {
        tenant,
        config,
        billing,
    } = business;
    let mut calendar = load_calendar(uow, config, &conversation.bookings).await?;
    let now = incoming.now;
    let turn = match (&config.settings, &tenant.onboarded) {
        (Some(settings), Some(t)) if t.status == TenantStatus::Active => {
            let services: Vec<_> = config.active_services().cloned().collect();
            let mut context = BotContext {
                business_name: t.business_name.as_str(),
                contact: t.contact_email.as_str(),
                settings,
                services: &services,
                bookings_open: billing.bookings_stopped(UsageMonth::of(now)).is_none(),
            };
            let input = Input {
                inbound: incoming.content,
                profile_name: incoming.profile_name,
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
                && crate::billing::booking_stop(uow, billing, now)
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
        (settings, Some(t)) if t.status == TenantStatus::Suspended => {
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
        // Not configured, or closed: record the message, say nothing.
        _ => Turn {
            state: conversation.bot.clone(),
            replies: vec![],
            actions: vec![],
            expired: false,
        },
    };
    let before = calendar.bookings.clone();
    let changes = calendar
        .carry_out(config, &turn.actions, incoming.customer, now)
        .map_err(|e| {
            AppError::internal(format!("the bot's actions do not fit the calendar: {e}"))
        })?;
    for change in &changes {
        stage_scheduled(uow, change.booking_id, &change.scheduled);
    }
    let name = turn.state.customer_name.as_deref();
    crate::waitlist::carry_out(uow, &turn.actions, incoming.customer, name, now).await?;
    // A time the customer gave up is offered to those waiting for it.
    for change in &changes {
        let Some(booking) = before
            .iter()
            .filter_map(|b| b.booking.as_ref())
            .find(|b| b.booking_id == change.booking_id)
        else {
            continue;
        };
        if let Some(start) = crate::waitlist::freed_by(booking, &change.scheduled.booking) {
            crate::waitlist::offer_freed(uow, config, booking, start).await?;
        }
    }
    Ok(turn)
}

/// The agenda days a turn may offer (today to the furthest day past the horizon the bot may
/// look at) and any day one of the customer's bookings is on, and the customer's bookings.
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
    // Each member of the staff has an agenda (the default resource when there is none).
    let resources: Vec<ResourceId> = if settings.staff.is_empty() {
        vec![ResourceId::default_resource()]
    } else {
        settings.staff.iter().map(|m| m.id.clone()).collect()
    };
    let today = Utc::now()
        .with_timezone(&settings.time_zone.tz())
        .date_naive();
    let last = today + Duration::days(i64::from(settings.rules.furthest_days()) + 1);
    let mut agendas = Vec::new();
    for resource in &resources {
        agendas.extend(
            uow.load_between::<Agenda>(
                &agenda_stream_id(resource, today),
                &agenda_stream_id(resource, last),
            )
            .await?,
        );
    }
    // A booking's own day may lie outside the window (the horizon shrank since), or on a
    // resource no longer on the staff.
    for booking in bookings.iter().filter_map(|b| b.booking.as_ref()) {
        let day = agenda_day(settings, booking.appointment.start);
        if day < today || day > last || !resources.contains(&booking.resource) {
            let agenda = uow
                .load::<Agenda>(&agenda_ref(&booking.resource, day))
                .await?;
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
    let command = ConversationCommand::RecordStatus {
        wamid: wamid.to_owned(),
        status,
    };
    let Some(conversation_ref) = known_conversation(&app.store, tenant_id, customer).await? else {
        return Err(never_met(command));
    };
    let (conversation_ref, command) = (&conversation_ref, &command);
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(conversation_ref).await?;
            let events = Conversation::decide(&conversation, command.clone())?;
            uow.stage(conversation_ref, &events);
            Ok(())
        })
    })
    .await
}

/// A person of the business answers this customer from now on: the bot is quiet.
pub async fn take_over(
    app: &App,
    ctx: &CommandContext,
    customer: &PhoneNumber,
) -> Result<Committed<()>, AppError> {
    let by = ctx.actor.clone();
    staff_command(app, ctx, customer, ConversationCommand::TakeOver { by }).await
}

/// The bot answers this customer again.
pub async fn hand_back(
    app: &App,
    ctx: &CommandContext,
    customer: &PhoneNumber,
) -> Result<Committed<()>, AppError> {
    let by = ctx.actor.clone();
    staff_command(app, ctx, customer, ConversationCommand::HandBack { by }).await
}

/// A staff reply as recorded: its id (the sender sends it once), and whether it went as the
/// follow-up template (the customer-service window had closed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaffReplied {
    pub reply_id: String,
    pub as_template: bool,
}

/// A person's reply to the customer, as the business; it takes the conversation over. After
/// WhatsApp's 24-hour window it goes as the business's follow-up template with the text, and
/// is refused without one. A retry with the same key is the same reply, sent once.
pub async fn reply(
    app: &App,
    ctx: &CommandContext,
    customer: &PhoneNumber,
    text: &str,
) -> Result<Committed<StaffReplied>, AppError> {
    let reply_id = format!("staff/{}", ctx.derived_id("staff-reply"));
    let (by, now) = (ctx.actor.clone(), Utc::now());
    let Some(conversation_ref) = known_conversation(&app.store, ctx.tenant_id, customer).await?
    else {
        return Err(never_met(ConversationCommand::StaffReply {
            reply_id,
            by,
            text: text.to_owned(),
            template: None,
            now,
        }));
    };
    let conversation_ref = &conversation_ref;
    let reply_id = &reply_id;
    let (by, text) = (&by, text);
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(conversation_ref).await?;
            let config = uow.load::<BotConfig>(&config_stream()).await?;
            let template = config.settings.as_ref().and_then(|settings| {
                domain::reminders::follow_up(settings, &Reply::text(text.trim()))
            });
            let events = Conversation::decide(
                &conversation,
                ConversationCommand::StaffReply {
                    reply_id: reply_id.clone(),
                    by: by.clone(),
                    text: text.to_owned(),
                    template,
                    now,
                },
            )?;
            let as_template = events.iter().any(|e| {
                matches!(
                    e,
                    ConversationEvent::StaffReplied {
                        reply: Reply::Template { .. },
                        ..
                    }
                )
            });
            uow.stage(conversation_ref, &events);
            Ok(StaffReplied {
                reply_id: reply_id.clone(),
                as_template,
            })
        })
    })
    .await
}

/// A person's command on a conversation that must exist.
async fn staff_command(
    app: &App,
    ctx: &CommandContext,
    customer: &PhoneNumber,
    command: ConversationCommand,
) -> Result<Committed<()>, AppError> {
    let Some(conversation_ref) = known_conversation(&app.store, ctx.tenant_id, customer).await?
    else {
        return Err(never_met(command));
    };
    let conversation_ref = &conversation_ref;
    let command = &command;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(conversation_ref).await?;
            let events = Conversation::decide(&conversation, command.clone())?;
            uow.stage(conversation_ref, &events);
            Ok(())
        })
    })
    .await
}

/// Meta's refusal of a free-form message more than 24 hours after the customer last wrote.
pub const OUTSIDE_WINDOW: i64 = 131047;

/// The business's follow-up template for the reply `replied` carries, if it has one.
async fn follow_up_of(
    uow: &mut UnitOfWork<'_>,
    replied: &RecordedEvent,
) -> Result<Option<Reply>, AppError> {
    let ConversationEvent::BotReplied { reply, .. } =
        domain::event::decode::<ConversationEvent>(&replied.event_type, &replied.payload)
            .map_err(|e| AppError::internal(format!("an unreadable reply: {e}")))?
    else {
        return Ok(None);
    };
    let config = uow.load::<BotConfig>(&config_stream()).await?;
    Ok(config
        .settings
        .as_ref()
        .and_then(|settings| domain::reminders::follow_up(settings, &reply)))
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
    let outcome = &outcome;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conversation = uow.load::<Conversation>(&replied.stream).await?;
            let command = match outcome.clone() {
                SendOutcome::Sent { wamid } => ConversationCommand::RecordSent {
                    reply_id: reply_id.to_owned(),
                    wamid,
                },
                SendOutcome::Failed { code, reason } => ConversationCommand::RecordSendFailed {
                    reply_id: reply_id.to_owned(),
                    follow_up: if code == OUTSIDE_WINDOW {
                        follow_up_of(uow, replied).await?
                    } else {
                        None
                    },
                    code,
                    reason,
                },
            };
            let events = Conversation::decide(&conversation, command)?;
            uow.stage(&replied.stream, &events);
            // The customer asked to be erased once this reply had gone: their key goes with
            // this commit, after the outcome is sealed.
            if let Some(phone) = &conversation.phone
                && events
                    .iter()
                    .any(|e| matches!(e, ConversationEvent::CustomerErased { .. }))
            {
                uow.erase_customer(phone).await?;
            }
            Ok(())
        })
    })
    .await
}
