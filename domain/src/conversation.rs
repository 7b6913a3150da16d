//! One customer's conversation with one business. Stream `conversation/<subject id>`: named by the
//! customer's subject id (`customer_keys`), never by their phone.
//!
//! Each inbound WhatsApp message becomes one turn, recorded once per message id however often
//! Meta delivers it: the message, the bot's replies (which the sender reactor delivers, once
//! per reply id), the bot's new state, bookings it made, a handoff. Delivery outcomes and
//! status webhooks come back here; a status only moves forward (sent < delivered < read;
//! failed is final).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::bot::engine::{BotAction, BotState, Turn};
use crate::bot::message::{Inbound, Reply};
use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::BookingId;
use crate::values::PhoneNumber;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// WhatsApp's message id (`wamid.…`).
    pub wamid: String,
    pub from: PhoneNumber,
    pub profile_name: Option<String>,
    pub content: Inbound,
    pub received_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Sent,
    Delivered,
    Read,
    Failed,
}

crate::labels::labels!(DeliveryStatus {
    Sent => "sent",
    Delivered => "delivered",
    Read => "read",
    Failed => "failed",
});

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer.
    In,
    /// From the business (the bot or a person).
    Out,
}

crate::labels::labels!(Direction {
    In => "in",
    Out => "out",
});

/// How the read side names an outbound message's delivery: `pending` until Meta has it, then
/// its status. In the order a message moves through (`failed` is final).
pub const DELIVERY_LABELS: [&str; 5] = ["pending", "sent", "delivered", "read", "failed"];

/// The read side's label of a delivery status (`None`: pending).
pub fn delivery_label(status: Option<DeliveryStatus>) -> &'static str {
    status.map_or(DELIVERY_LABELS[0], DeliveryStatus::as_str)
}

impl DeliveryStatus {
    fn rank(self) -> u8 {
        match self {
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
            Self::Failed => 4,
        }
    }

    /// Whether moving from `self` to `next` is progress.
    pub fn advances_to(self, next: DeliveryStatus) -> bool {
        self != Self::Failed && next.rank() > self.rank()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConversationCommand {
    /// Erase the customer (their key is deleted with the event's commit).
    Erase,
    RecordTurn {
        message: InboundMessage,
        turn: Box<Turn>,
    },
    /// The Cloud API accepted a reply and gave it a message id.
    RecordSent { reply_id: String, wamid: String },
    /// The reply could not be delivered (Meta's error code and reason). `follow_up`, if any,
    /// goes instead (a template, for a reply refused for the 24-hour window).
    RecordSendFailed {
        reply_id: String,
        code: i64,
        reason: String,
        follow_up: Option<Reply>,
    },
    /// A message the business sends on its own (a reminder), once per `reply_id`.
    Notify {
        reply_id: String,
        to: PhoneNumber,
        reply: Reply,
    },
    /// A status webhook for an outbound message.
    RecordStatus {
        wamid: String,
        status: DeliveryStatus,
    },
    /// A booking made for this phone elsewhere (dashboard, API), so the customer can manage it here.
    AttachBooking { booking_id: BookingId },
    /// The customer writes faster than the bot may answer: the message is recorded and the
    /// bot answers the latest such message at `until`. The first deferral says so (`notice`).
    DeferTurn {
        message: InboundMessage,
        until: DateTime<Utc>,
        notice: Reply,
    },
    /// The deferred message's turn, taken when its time came. Nothing if that message is no
    /// longer the one waiting (a later message was answered, or this turn was taken).
    TakeDeferredTurn { wamid: String, turn: Box<Turn> },
    /// A person of the business (`by`, an actor such as `user:<id>`) answers this customer
    /// from now on: the bot stays quiet until they hand back (or the customer asks for the
    /// menu).
    TakeOver { by: String },
    /// A person's reply, once per `reply_id`. It takes the conversation over if nobody had.
    /// Within WhatsApp's customer-service window (24 hours since the customer last wrote) it
    /// goes as text; after it, only as `template` (the business's approved follow-up template
    /// carrying the text), and without one it is refused.
    StaffReply {
        reply_id: String,
        by: String,
        text: String,
        template: Option<Reply>,
        now: DateTime<Utc>,
    },
    /// The bot answers this customer again, from the start of its flow.
    HandBack { by: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ConversationEvent {
    MessageReceived {
        wamid: String,
        from: PhoneNumber,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile_name: Option<String>,
        content: Inbound,
        received_at: DateTime<Utc>,
    },
    ConversationExpired,
    /// A reply to send. `reply_id` is stable (`<inbound wamid>/<n>`): the sender sends each
    /// once.
    BotReplied {
        reply_id: String,
        to: PhoneNumber,
        reply: Reply,
    },
    BotStateChanged {
        state: BotState,
    },
    BookingAttached {
        booking_id: BookingId,
    },
    HandedOffToHuman,
    OutboundMessageSent {
        reply_id: String,
        wamid: String,
    },
    OutboundMessageFailed {
        reply_id: String,
        code: i64,
        reason: String,
    },
    OutboundStatusChanged {
        wamid: String,
        status: DeliveryStatus,
    },
    /// The customer was over the message limit: this message waits for an answer until
    /// `until` (replacing any message waiting before it).
    AnswerDeferred {
        wamid: String,
        until: DateTime<Utc>,
        /// The customer was told the bot will answer (at most once per [`NOTICE_EVERY`]).
        #[serde(default)]
        noticed: bool,
    },
    /// No message waits any more: the waiting one was answered, or a later one was.
    DeferralEnded {
        wamid: String,
    },
    /// A person of the business answers this customer now; the bot is quiet.
    StaffTookOver {
        by: String,
    },
    /// A person's reply to send (the sender delivers it like the bot's).
    StaffReplied {
        reply_id: String,
        to: PhoneNumber,
        reply: Reply,
        by: String,
    },
    /// The bot answers this customer again.
    HandedBackToBot {
        by: String,
    },
    /// The customer was erased at the business's request (their right to erasure): their key
    /// is gone, so everything personal sealed with it reads as its stand-in from now on. The
    /// bookings they made stay (counts and revenue hold), with no one behind them; read models
    /// scrub what they had already shown.
    CustomerErased {
        bookings: Vec<BookingId>,
    },
    /// The customer asked on WhatsApp to have their data deleted. With `after_reply` (the
    /// bot's confirmation) the business erases at once: the customer is erased when that reply's
    /// outcome is recorded, so it can still reach them. Without, the business decides.
    ErasureRequested {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after_reply: Option<String>,
    },
}

impl DomainEvent for ConversationEvent {
    const STREAM_TYPE: &'static str = "conversation";

    fn event_type(&self) -> &'static str {
        match self {
            Self::MessageReceived { .. } => "MessageReceived",
            Self::ConversationExpired => "ConversationExpired",
            Self::BotReplied { .. } => "BotReplied",
            Self::BotStateChanged { .. } => "BotStateChanged",
            Self::BookingAttached { .. } => "BookingAttached",
            Self::HandedOffToHuman => "HandedOffToHuman",
            Self::OutboundMessageSent { .. } => "OutboundMessageSent",
            Self::OutboundMessageFailed { .. } => "OutboundMessageFailed",
            Self::OutboundStatusChanged { .. } => "OutboundStatusChanged",
            Self::AnswerDeferred { .. } => "AnswerDeferred",
            Self::DeferralEnded { .. } => "DeferralEnded",
            Self::StaffTookOver { .. } => "StaffTookOver",
            Self::StaffReplied { .. } => "StaffReplied",
            Self::HandedBackToBot { .. } => "HandedBackToBot",
            Self::CustomerErased { .. } => "CustomerErased",
            Self::ErasureRequested { .. } => "ErasureRequested",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationState {
    pub phone: Option<PhoneNumber>,
    pub seen: HashSet<String>,
    pub bot: BotState,
    pub bookings: Vec<BookingId>,
    /// Reply id to (outbound wamid once sent, status).
    pub outbound: HashMap<String, (Option<String>, Option<DeliveryStatus>)>,
    pub reply_of_wamid: HashMap<String, String>,
    /// Statuses Meta reported for a wamid before the sender recorded it (the webhook can beat
    /// the send's own answer): applied when the send is recorded.
    pub early_status: HashMap<String, DeliveryStatus>,
    /// The last message received, as the engine would read it.
    pub last_received: Option<Received>,
    /// The message waiting for an answer (its customer was over the limit), and when.
    pub deferred: Option<(Received, DateTime<Utc>)>,
    /// When the customer was last told the bot will answer shortly.
    pub last_notice: Option<DateTime<Utc>>,
    /// Who of the business took the conversation over (while the bot is quiet).
    pub taken_over_by: Option<String>,
    /// The customer asked to have their data deleted (and is not erased yet).
    pub erasure_requested: bool,
    /// The reply whose outcome erases the customer (they asked, and the business erases at
    /// once).
    pub erase_after: Option<String>,
}

/// A received message, as kept for a turn taken later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub wamid: String,
    pub profile_name: Option<String>,
    pub content: Inbound,
    pub received_at: DateTime<Utc>,
}

/// A customer over the message limit hears that the bot will answer at most this often.
pub const NOTICE_EVERY: chrono::Duration = chrono::Duration::minutes(10);

/// WhatsApp's customer-service window: how long after the customer last wrote the business
/// may write freely (after it, only an approved template).
pub const SERVICE_WINDOW: chrono::Duration = chrono::Duration::hours(24);

/// The longest text WhatsApp delivers in one message.
pub const MAX_TEXT_CHARS: usize = 4096;

impl ConversationState {
    /// A person is answering: the bot stays quiet.
    pub fn is_handed_off(&self) -> bool {
        self.bot.step == crate::bot::engine::Step::HandedOff
    }

    /// When the customer-service window closes (closed already, or never opened: `None` if
    /// the customer never wrote).
    pub fn window_closes_at(&self) -> Option<DateTime<Utc>> {
        self.last_received
            .as_ref()
            .map(|r| r.received_at + SERVICE_WINDOW)
    }

    /// The bot's state once a person answers: quiet, remembering the customer's name.
    fn handed_off_bot(&self) -> BotState {
        BotState {
            step: crate::bot::engine::Step::HandedOff,
            customer_name: self.bot.customer_name.clone(),
            ..BotState::default()
        }
    }

    /// The erasure the outcome of `reply_id` brings, when it is the confirmation the customer
    /// is erased after.
    fn erasure_after(&self, reply_id: &str) -> Option<ConversationEvent> {
        (self.erase_after.as_deref() == Some(reply_id)).then(|| ConversationEvent::CustomerErased {
            bookings: self.bookings.clone(),
        })
    }

    /// What taking the conversation over records (nothing if `by` has it already).
    fn take_over(&self, by: &str) -> Vec<ConversationEvent> {
        let mut events = Vec::new();
        if self.taken_over_by.as_deref() != Some(by) {
            events.push(ConversationEvent::StaffTookOver { by: by.to_owned() });
        }
        if !self.is_handed_off() {
            events.push(ConversationEvent::BotStateChanged {
                state: self.handed_off_bot(),
            });
        }
        events
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversationError {
    #[error("no reply {0} in this conversation")]
    UnknownReply(String),
    #[error("no outbound message {0} in this conversation")]
    UnknownMessage(String),
    #[error("the message is from {0}, not from this conversation's customer")]
    WrongCustomer(PhoneNumber),
    #[error("this customer has not written to the business")]
    NoCustomer,
    #[error("a reply needs some text")]
    EmptyReply,
    #[error("a reply is at most {MAX_TEXT_CHARS} characters")]
    ReplyTooLong,
    #[error(
        "WhatsApp's 24-hour window to reply freely closed{}; only an approved template can be sent, and the business has no follow-up template",
        closed_at.map(|t| format!(" at {}", t.format("%Y-%m-%d %H:%M UTC"))).unwrap_or_default()
    )]
    OutsideServiceWindow { closed_at: Option<DateTime<Utc>> },
}

pub struct Conversation;

impl Decider for Conversation {
    type State = ConversationState;
    type Command = ConversationCommand;
    type Event = ConversationEvent;
    type Error = ConversationError;

    fn decide(
        state: &ConversationState,
        command: ConversationCommand,
    ) -> Result<Vec<ConversationEvent>, ConversationError> {
        use ConversationEvent as E;
        match command {
            ConversationCommand::RecordTurn { message, turn } => {
                if state.seen.contains(&message.wamid) {
                    return Ok(vec![]); // a redelivery: this message was handled
                }
                if let Some(phone) = &state.phone
                    && *phone != message.from
                {
                    return Err(ConversationError::WrongCustomer(message.from));
                }
                let mut events = Vec::new();
                if turn.expired {
                    events.push(E::ConversationExpired);
                }
                let (wamid, to) = (message.wamid.clone(), message.from.clone());
                events.push(received(message));
                if let Some((waiting, _)) = &state.deferred {
                    // This message is answered now; the one waiting before it is passed over.
                    events.push(E::DeferralEnded {
                        wamid: waiting.wamid.clone(),
                    });
                }
                events.extend(turn_events(state, &wamid, &to, *turn));
                Ok(events)
            }
            ConversationCommand::DeferTurn {
                message,
                until,
                notice,
            } => {
                if state.seen.contains(&message.wamid) {
                    return Ok(vec![]);
                }
                if let Some(phone) = &state.phone
                    && *phone != message.from
                {
                    return Err(ConversationError::WrongCustomer(message.from));
                }
                let (wamid, to) = (message.wamid.clone(), message.from.clone());
                // Said once: a flood hears it once, however its messages fall around the limit.
                let noticed = !state.is_handed_off()
                    && state
                        .last_notice
                        .is_none_or(|t| message.received_at - t >= NOTICE_EVERY);
                let mut events = vec![
                    received(message),
                    E::AnswerDeferred {
                        wamid: wamid.clone(),
                        until,
                        noticed,
                    },
                ];
                if noticed {
                    events.push(E::BotReplied {
                        reply_id: format!("{wamid}/0"),
                        to,
                        reply: notice,
                    });
                }
                Ok(events)
            }
            ConversationCommand::TakeDeferredTurn { wamid, turn } => {
                let (Some((waiting, _)), Some(phone)) = (&state.deferred, &state.phone) else {
                    return Ok(vec![]);
                };
                if waiting.wamid != wamid {
                    return Ok(vec![]);
                }
                let mut events = vec![E::DeferralEnded {
                    wamid: wamid.clone(),
                }];
                // Its replies' ids differ from the notice the message may have had (`/0`).
                events.extend(turn_events(state, &format!("{wamid}/late"), phone, *turn));
                Ok(events)
            }
            ConversationCommand::RecordSent { reply_id, wamid } => {
                match state.outbound.get(&reply_id) {
                    None => Err(ConversationError::UnknownReply(reply_id)),
                    Some((Some(_), _)) | Some((None, Some(DeliveryStatus::Failed))) => Ok(vec![]),
                    Some(_) => {
                        let early = state.early_status.get(&wamid).copied();
                        let erased = state.erasure_after(&reply_id);
                        let mut events = vec![E::OutboundMessageSent {
                            reply_id,
                            wamid: wamid.clone(),
                        }];
                        if let Some(status) = early {
                            events.push(E::OutboundStatusChanged { wamid, status });
                        }
                        events.extend(erased);
                        Ok(events)
                    }
                }
            }
            ConversationCommand::RecordSendFailed {
                reply_id,
                code,
                reason,
                follow_up,
            } => match state.outbound.get(&reply_id) {
                None => Err(ConversationError::UnknownReply(reply_id)),
                Some((Some(_), _)) | Some((None, Some(DeliveryStatus::Failed))) => Ok(vec![]),
                Some(_) => {
                    let mut events = vec![E::OutboundMessageFailed {
                        reply_id: reply_id.clone(),
                        code,
                        reason,
                    }];
                    // The confirmation of an erasure is not sent again: the customer goes now.
                    if let Some(erased) = state.erasure_after(&reply_id) {
                        events.push(erased);
                        return Ok(events);
                    }
                    let follow_up_id = format!("{reply_id}/follow-up");
                    if let (Some(reply), Some(to)) = (follow_up, &state.phone)
                        && !state.outbound.contains_key(&follow_up_id)
                    {
                        events.push(E::BotReplied {
                            reply_id: follow_up_id,
                            to: to.clone(),
                            reply,
                        });
                    }
                    Ok(events)
                }
            },
            ConversationCommand::Notify {
                reply_id,
                to,
                reply,
            } => {
                if let Some(phone) = &state.phone
                    && *phone != to
                {
                    return Err(ConversationError::WrongCustomer(to));
                }
                if state.outbound.contains_key(&reply_id) {
                    return Ok(vec![]);
                }
                Ok(vec![E::BotReplied {
                    reply_id,
                    to,
                    reply,
                }])
            }
            ConversationCommand::RecordStatus { wamid, status } => {
                let Some(reply_id) = state.reply_of_wamid.get(&wamid) else {
                    // Before the send was recorded? Only while a reply awaits its wamid.
                    let awaiting = state
                        .outbound
                        .values()
                        .any(|(w, s)| w.is_none() && *s != Some(DeliveryStatus::Failed));
                    if !awaiting {
                        return Err(ConversationError::UnknownMessage(wamid));
                    }
                    let advances = state
                        .early_status
                        .get(&wamid)
                        .is_none_or(|early| early.advances_to(status));
                    return Ok(if advances {
                        vec![E::OutboundStatusChanged { wamid, status }]
                    } else {
                        vec![]
                    });
                };
                let current = state
                    .outbound
                    .get(reply_id)
                    .and_then(|(_, s)| *s)
                    .unwrap_or(DeliveryStatus::Sent);
                let is_first = state
                    .outbound
                    .get(reply_id)
                    .is_some_and(|(_, s)| s.is_none());
                if is_first && status == DeliveryStatus::Sent || current.advances_to(status) {
                    Ok(vec![E::OutboundStatusChanged { wamid, status }])
                } else {
                    Ok(vec![])
                }
            }
            ConversationCommand::AttachBooking { booking_id } => {
                if state.bookings.contains(&booking_id) {
                    Ok(vec![])
                } else {
                    Ok(vec![E::BookingAttached { booking_id }])
                }
            }
            ConversationCommand::TakeOver { by } => {
                if state.phone.is_none() {
                    return Err(ConversationError::NoCustomer);
                }
                Ok(state.take_over(&by))
            }
            ConversationCommand::StaffReply {
                reply_id,
                by,
                text,
                template,
                now,
            } => {
                let Some(to) = state.phone.clone() else {
                    return Err(ConversationError::NoCustomer);
                };
                if state.outbound.contains_key(&reply_id) {
                    return Ok(vec![]); // sent before: a retry
                }
                let text = text.trim();
                if text.is_empty() {
                    return Err(ConversationError::EmptyReply);
                }
                if text.chars().count() > MAX_TEXT_CHARS {
                    return Err(ConversationError::ReplyTooLong);
                }
                let closes = state.window_closes_at();
                let reply = match (closes, template) {
                    (Some(closes), _) if now < closes => Reply::text(text),
                    (_, Some(template)) => template,
                    (closed_at, None) => {
                        return Err(ConversationError::OutsideServiceWindow { closed_at });
                    }
                };
                let mut events = state.take_over(&by);
                events.push(E::StaffReplied {
                    reply_id,
                    to,
                    reply,
                    by,
                });
                Ok(events)
            }
            // A customer who wrote, or whom the business booked (who may never have written:
            // their conversation holds only their bookings). A conversation with nothing in it
            // is a phone never met, whatever key a refused command may have left for it.
            ConversationCommand::Erase => {
                if state.phone.is_none() && state.bookings.is_empty() {
                    return Err(ConversationError::NoCustomer);
                }
                Ok(vec![E::CustomerErased {
                    bookings: state.bookings.clone(),
                }])
            }
            ConversationCommand::HandBack { by } => {
                if state.phone.is_none() {
                    return Err(ConversationError::NoCustomer);
                }
                if !state.is_handed_off() {
                    return Ok(vec![]);
                }
                Ok(vec![
                    E::HandedBackToBot { by },
                    E::BotStateChanged {
                        state: BotState {
                            customer_name: state.bot.customer_name.clone(),
                            ..BotState::default()
                        },
                    },
                ])
            }
        }
    }

    fn evolve(mut state: ConversationState, event: &ConversationEvent) -> ConversationState {
        use ConversationEvent as E;
        match event {
            E::MessageReceived {
                wamid,
                from,
                profile_name,
                content,
                received_at,
            } => {
                state.phone = Some(from.clone());
                state.seen.insert(wamid.clone());
                state.last_received = Some(Received {
                    wamid: wamid.clone(),
                    profile_name: profile_name.clone(),
                    content: content.clone(),
                    received_at: *received_at,
                });
            }
            E::AnswerDeferred {
                wamid,
                until,
                noticed,
            } => {
                if let Some(last) = state.last_received.clone().filter(|r| r.wamid == *wamid) {
                    if *noticed {
                        state.last_notice = Some(last.received_at);
                    }
                    state.deferred = Some((last, *until));
                }
            }
            E::DeferralEnded { wamid } => {
                if state
                    .deferred
                    .as_ref()
                    .is_some_and(|(r, _)| r.wamid == *wamid)
                {
                    state.deferred = None;
                }
            }
            E::ConversationExpired | E::HandedOffToHuman => {}
            E::BotReplied { reply_id, to, .. } | E::StaffReplied { reply_id, to, .. } => {
                state.phone.get_or_insert_with(|| to.clone());
                state.outbound.insert(reply_id.clone(), (None, None));
            }
            E::StaffTookOver { by } => state.taken_over_by = Some(by.clone()),
            E::HandedBackToBot { .. } => state.taken_over_by = None,
            // Nobody is left in this conversation (the customer, writing again, starts another).
            E::CustomerErased { .. } => state = ConversationState::default(),
            E::ErasureRequested { after_reply } => {
                state.erasure_requested = true;
                state.erase_after = after_reply.clone();
            }
            E::BotStateChanged { state: bot } => {
                state.bot = bot.clone();
                if !state.is_handed_off() {
                    // The customer asked for the bot's menu: nobody is answering in its place.
                    state.taken_over_by = None;
                }
            }
            E::BookingAttached { booking_id } => state.bookings.push(*booking_id),
            E::OutboundMessageSent { reply_id, wamid } => {
                state
                    .outbound
                    .insert(reply_id.clone(), (Some(wamid.clone()), None));
                state.reply_of_wamid.insert(wamid.clone(), reply_id.clone());
                state.early_status.remove(wamid);
            }
            E::OutboundMessageFailed { reply_id, .. } => {
                state
                    .outbound
                    .insert(reply_id.clone(), (None, Some(DeliveryStatus::Failed)));
            }
            E::OutboundStatusChanged { wamid, status } => match state.reply_of_wamid.get(wamid) {
                Some(reply_id) => {
                    if let Some(entry) = state.outbound.get_mut(reply_id) {
                        entry.1 = Some(*status);
                    }
                }
                None => {
                    state.early_status.insert(wamid.clone(), *status);
                }
            },
        }
        state
    }
}

fn received(message: InboundMessage) -> ConversationEvent {
    ConversationEvent::MessageReceived {
        wamid: message.wamid,
        from: message.from,
        profile_name: message.profile_name,
        content: message.content,
        received_at: message.received_at,
    }
}

/// What a turn records: its replies (ids `<prefix>/<n>`), the bookings it made, a handoff,
/// the bot's new state.
fn turn_events(
    state: &ConversationState,
    prefix: &str,
    to: &PhoneNumber,
    turn: Turn,
) -> Vec<ConversationEvent> {
    use ConversationEvent as E;
    let mut events = Vec::new();
    let last_reply = turn
        .replies
        .len()
        .checked_sub(1)
        .map(|i| format!("{prefix}/{i}"));
    for (i, reply) in turn.replies.into_iter().enumerate() {
        events.push(E::BotReplied {
            reply_id: format!("{prefix}/{i}"),
            to: to.clone(),
            reply,
        });
    }
    for action in &turn.actions {
        match action {
            BotAction::RequestBooking { booking_id, .. } => events.push(E::BookingAttached {
                booking_id: *booking_id,
            }),
            BotAction::HandOff => events.push(E::HandedOffToHuman),
            BotAction::RequestErasure { at_once } => events.push(E::ErasureRequested {
                after_reply: last_reply.clone().filter(|_| *at_once),
            }),
            BotAction::CancelBooking { .. }
            | BotAction::RescheduleBooking { .. }
            | BotAction::ConfirmAttendance { .. }
            | BotAction::JoinWaitlist { .. }
            | BotAction::LeaveWaitlist { .. }
            | BotAction::ReserveSlot { .. }
            | BotAction::ReleaseSlot { .. } => {}
        }
    }
    if turn.state != state.bot {
        events.push(E::BotStateChanged { state: turn.state });
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bot::engine::Step;
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    fn phone() -> PhoneNumber {
        PhoneNumber::parse("+34600000001").unwrap()
    }

    fn message(wamid: &str) -> InboundMessage {
        InboundMessage {
            wamid: wamid.into(),
            from: phone(),
            profile_name: Some("Ana".into()),
            content: Inbound::Text { body: "hi".into() },
            received_at: "2026-11-30T08:30:00Z".parse().unwrap(),
        }
    }

    fn turn(actions: Vec<BotAction>) -> Turn {
        Turn {
            state: BotState {
                step: Step::ChoosingService,
                ..BotState::default()
            },
            replies: vec![Reply::text("Welcome"), Reply::text("Which service?")],
            actions,
            expired: false,
        }
    }

    fn received(wamid: &str) -> ConversationEvent {
        ConversationEvent::MessageReceived {
            wamid: wamid.into(),
            from: phone(),
            profile_name: Some("Ana".into()),
            content: Inbound::Text { body: "hi".into() },
            received_at: "2026-11-30T08:30:00Z".parse().unwrap(),
        }
    }

    fn replied(wamid: &str, i: usize, body: &str) -> ConversationEvent {
        ConversationEvent::BotReplied {
            reply_id: format!("{wamid}/{i}"),
            to: phone(),
            reply: Reply::text(body),
        }
    }

    fn staff_reply(
        id: &str,
        text: &str,
        now: &str,
        template: Option<Reply>,
    ) -> ConversationCommand {
        ConversationCommand::StaffReply {
            reply_id: id.into(),
            by: "user:1".into(),
            text: text.into(),
            template,
            now: now.parse().unwrap(),
        }
    }

    fn handed_off() -> BotState {
        BotState {
            step: Step::HandedOff,
            ..BotState::default()
        }
    }

    #[test]
    fn a_customer_who_asks_to_be_erased_at_once_is_erased_when_the_confirmation_has_gone() {
        let booking = BookingId::from_uuid(uuid::Uuid::from_u128(7));
        let asked = Conversation::decide(
            &ConversationState::default(),
            ConversationCommand::RecordTurn {
                message: message("wamid.1"),
                turn: Box::new(turn(vec![BotAction::RequestErasure { at_once: true }])),
            },
        )
        .unwrap();
        // The confirmation is the turn's last reply.
        assert!(asked.contains(&ConversationEvent::ErasureRequested {
            after_reply: Some("wamid.1/1".into())
        }));
        let mut history = vec![ConversationEvent::BookingAttached {
            booking_id: booking,
        }];
        history.extend(asked);
        let erased = ConversationEvent::CustomerErased {
            bookings: vec![booking],
        };
        // Another reply's outcome erases nothing; the confirmation's, sent or failed, does.
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordSent {
                reply_id: "wamid.1/0".into(),
                wamid: "wamid.out0".into(),
            })
            .then_expect(&[ConversationEvent::OutboundMessageSent {
                reply_id: "wamid.1/0".into(),
                wamid: "wamid.out0".into(),
            }]);
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordSent {
                reply_id: "wamid.1/1".into(),
                wamid: "wamid.out1".into(),
            })
            .then_expect(&[
                ConversationEvent::OutboundMessageSent {
                    reply_id: "wamid.1/1".into(),
                    wamid: "wamid.out1".into(),
                },
                erased.clone(),
            ]);
        // Failed, it is not sent again as a template: the customer goes all the same.
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordSendFailed {
                reply_id: "wamid.1/1".into(),
                code: 131047,
                reason: "re-engagement".into(),
                follow_up: Some(Reply::text("template")),
            })
            .then_expect(&[
                ConversationEvent::OutboundMessageFailed {
                    reply_id: "wamid.1/1".into(),
                    code: 131047,
                    reason: "re-engagement".into(),
                },
                erased,
            ]);
    }

    #[test]
    fn a_customer_who_asks_to_be_erased_waits_for_the_business_where_it_decides() {
        let asked = Conversation::decide(
            &ConversationState::default(),
            ConversationCommand::RecordTurn {
                message: message("wamid.1"),
                turn: Box::new(turn(vec![BotAction::RequestErasure { at_once: false }])),
            },
        )
        .unwrap();
        assert!(asked.contains(&ConversationEvent::ErasureRequested { after_reply: None }));
        let state = Conversation::fold(&asked);
        assert!(state.erasure_requested);
        for i in 0..2 {
            let events = Conversation::decide(
                &state,
                ConversationCommand::RecordSent {
                    reply_id: format!("wamid.1/{i}"),
                    wamid: format!("wamid.out{i}"),
                },
            )
            .unwrap();
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, ConversationEvent::CustomerErased { .. }))
            );
        }
        // The business erases them: the request is done with the rest.
        let events = Conversation::decide(&state, ConversationCommand::Erase).unwrap();
        let mut all = asked;
        all.extend(events);
        assert_eq!(Conversation::fold(&all), ConversationState::default());
    }

    #[test]
    fn a_customer_the_business_booked_but_who_never_wrote_may_be_erased() {
        let booking = BookingId::from_uuid(uuid::Uuid::from_u128(7));
        given::<Conversation>(&[ConversationEvent::BookingAttached {
            booking_id: booking,
        }])
        .when(ConversationCommand::Erase)
        .then_expect(&[ConversationEvent::CustomerErased {
            bookings: vec![booking],
        }]);
        // Nothing in it: never met.
        assert_eq!(
            Conversation::decide(&ConversationState::default(), ConversationCommand::Erase),
            Err(ConversationError::NoCustomer)
        );
        // Once erased, the conversation starts again from nothing.
        let erased = [
            received("wamid.1"),
            ConversationEvent::CustomerErased { bookings: vec![] },
        ];
        assert_eq!(Conversation::fold(&erased), ConversationState::default());
    }

    #[test]
    fn a_person_takes_over_replies_in_the_window_and_hands_back() {
        let took = ConversationEvent::StaffTookOver {
            by: "user:1".into(),
        };
        given::<Conversation>(&[received("wamid.1")])
            .when(ConversationCommand::TakeOver {
                by: "user:1".into(),
            })
            .then_expect(&[
                took.clone(),
                ConversationEvent::BotStateChanged {
                    state: handed_off(),
                },
            ]);
        // Taken over already, by the same person: nothing new.
        let taken = [
            received("wamid.1"),
            took.clone(),
            ConversationEvent::BotStateChanged {
                state: handed_off(),
            },
        ];
        given::<Conversation>(&taken)
            .when(ConversationCommand::TakeOver {
                by: "user:1".into(),
            })
            .then_expect(&[]);
        // 23 hours after the customer wrote: text.
        given::<Conversation>(&taken)
            .when(staff_reply(
                "staff/1",
                "  See you at 10  ",
                "2026-12-01T07:30:00Z",
                None,
            ))
            .then_expect(&[ConversationEvent::StaffReplied {
                reply_id: "staff/1".into(),
                to: phone(),
                reply: Reply::text("See you at 10"),
                by: "user:1".into(),
            }]);
        given::<Conversation>(&taken)
            .when(ConversationCommand::HandBack {
                by: "user:1".into(),
            })
            .then_expect(&[
                ConversationEvent::HandedBackToBot {
                    by: "user:1".into(),
                },
                ConversationEvent::BotStateChanged {
                    state: BotState::default(),
                },
            ]);
        // With the bot in charge, handing back changes nothing.
        given::<Conversation>(&[received("wamid.1")])
            .when(ConversationCommand::HandBack {
                by: "user:1".into(),
            })
            .then_expect(&[]);
    }

    #[test]
    fn a_reply_takes_over_and_is_sent_once_per_id() {
        let state = [received("wamid.1")];
        let events = Conversation::decide(
            &Conversation::fold(&state),
            staff_reply("staff/1", "Hello", "2026-11-30T09:00:00Z", None),
        )
        .unwrap();
        assert_eq!(
            events[..2],
            [
                ConversationEvent::StaffTookOver {
                    by: "user:1".into()
                },
                ConversationEvent::BotStateChanged {
                    state: handed_off()
                },
            ]
        );
        let mut history = state.to_vec();
        history.extend(events);
        given::<Conversation>(&history)
            .when(staff_reply(
                "staff/1",
                "Hello",
                "2026-11-30T09:00:01Z",
                None,
            ))
            .then_expect(&[]);
    }

    #[test]
    fn after_the_window_only_the_template_goes_and_without_one_the_reply_is_refused() {
        let template = Reply::template("follow_up", "es", ["Hello".to_owned()], vec![]);
        given::<Conversation>(&[received("wamid.1")])
            .when(staff_reply(
                "staff/1",
                "Hello",
                "2026-12-01T08:30:00Z",
                Some(template.clone()),
            ))
            .then_expect(&[
                ConversationEvent::StaffTookOver {
                    by: "user:1".into(),
                },
                ConversationEvent::BotStateChanged {
                    state: handed_off(),
                },
                ConversationEvent::StaffReplied {
                    reply_id: "staff/1".into(),
                    to: phone(),
                    reply: template,
                    by: "user:1".into(),
                },
            ]);
        given::<Conversation>(&[received("wamid.1")])
            .when(staff_reply(
                "staff/1",
                "Hello",
                "2026-12-01T08:30:00Z",
                None,
            ))
            .then_expect_error(ConversationError::OutsideServiceWindow {
                closed_at: Some("2026-12-01T08:30:00Z".parse().unwrap()),
            });
        given::<Conversation>(&[received("wamid.1")])
            .when(staff_reply("staff/1", "   ", "2026-11-30T09:00:00Z", None))
            .then_expect_error(ConversationError::EmptyReply);
        given::<Conversation>(&[received("wamid.1")])
            .when(staff_reply(
                "staff/1",
                &"a".repeat(MAX_TEXT_CHARS + 1),
                "2026-11-30T09:00:00Z",
                None,
            ))
            .then_expect_error(ConversationError::ReplyTooLong);
        given::<Conversation>(&[])
            .when(staff_reply(
                "staff/1",
                "Hello",
                "2026-11-30T09:00:00Z",
                None,
            ))
            .then_expect_error(ConversationError::NoCustomer);
    }

    #[test]
    fn the_customer_asking_for_the_menu_frees_the_conversation_from_its_person() {
        let state = Conversation::fold(&[
            received("wamid.1"),
            ConversationEvent::StaffTookOver {
                by: "user:1".into(),
            },
            ConversationEvent::BotStateChanged {
                state: handed_off(),
            },
            ConversationEvent::BotStateChanged {
                state: BotState::default(),
            },
        ]);
        assert_eq!(state.taken_over_by, None);
    }

    #[test]
    fn a_turn_records_the_message_replies_and_state() {
        given::<Conversation>(&[])
            .when(ConversationCommand::RecordTurn {
                message: message("wamid.1"),
                turn: Box::new(turn(vec![])),
            })
            .then_expect(&[
                received("wamid.1"),
                replied("wamid.1", 0, "Welcome"),
                replied("wamid.1", 1, "Which service?"),
                ConversationEvent::BotStateChanged {
                    state: turn(vec![]).state,
                },
            ]);
    }

    #[test]
    fn over_the_limit_the_customer_is_told_once_and_the_latest_message_is_answered_later() {
        let until: DateTime<Utc> = "2026-11-30T08:31:00Z".parse().unwrap();
        let defer = |wamid: &str| ConversationCommand::DeferTurn {
            message: message(wamid),
            until,
            notice: Reply::text("In a moment"),
        };
        let first = Conversation::decide(&ConversationState::default(), defer("wamid.1")).unwrap();
        assert_eq!(
            first,
            [
                received("wamid.1"),
                ConversationEvent::AnswerDeferred {
                    wamid: "wamid.1".into(),
                    until,
                    noticed: true,
                },
                replied("wamid.1", 0, "In a moment"),
            ]
        );
        let state = Conversation::fold(&first);
        let second = Conversation::decide(&state, defer("wamid.2")).unwrap();
        assert_eq!(second.len(), 2, "no second notice: {second:?}");
        let state = second.iter().fold(state, Conversation::evolve);
        let (waiting, at) = state.deferred.clone().unwrap();
        assert_eq!((waiting.wamid.as_str(), at), ("wamid.2", until));
        // The first message's turn is no longer due; the latest one's is.
        let take = |wamid: &str| ConversationCommand::TakeDeferredTurn {
            wamid: wamid.into(),
            turn: Box::new(turn(vec![])),
        };
        assert_eq!(Conversation::decide(&state, take("wamid.1")), Ok(vec![]));
        let taken = Conversation::decide(&state, take("wamid.2")).unwrap();
        assert_eq!(
            taken[..2],
            [
                ConversationEvent::DeferralEnded {
                    wamid: "wamid.2".into()
                },
                ConversationEvent::BotReplied {
                    reply_id: "wamid.2/late/0".into(),
                    to: phone(),
                    reply: Reply::text("Welcome"),
                },
            ]
        );
        let state = taken.iter().fold(state, Conversation::evolve);
        assert!(state.deferred.is_none());
        assert_eq!(Conversation::decide(&state, take("wamid.2")), Ok(vec![]));
        // Over the limit again soon after: no second notice; ten minutes on, one again.
        let again = Conversation::decide(&state, defer("wamid.3")).unwrap();
        assert_eq!(again.len(), 2, "{again:?}");
        let mut later = message("wamid.4");
        later.received_at += NOTICE_EVERY;
        let later = Conversation::decide(
            &state,
            ConversationCommand::DeferTurn {
                message: later,
                until,
                notice: Reply::text("In a moment"),
            },
        )
        .unwrap();
        assert_eq!(later.len(), 3, "{later:?}");
    }

    #[test]
    fn a_message_answered_at_once_ends_the_wait_of_an_earlier_one() {
        let until: DateTime<Utc> = "2026-11-30T08:31:00Z".parse().unwrap();
        let history = [
            received("wamid.1"),
            ConversationEvent::AnswerDeferred {
                wamid: "wamid.1".into(),
                until,
                noticed: true,
            },
        ];
        let events = Conversation::decide(
            &Conversation::fold(&history),
            ConversationCommand::RecordTurn {
                message: message("wamid.2"),
                turn: Box::new(turn(vec![])),
            },
        )
        .unwrap();
        assert!(events.contains(&ConversationEvent::DeferralEnded {
            wamid: "wamid.1".into()
        }));
    }

    #[test]
    fn a_redelivered_message_is_a_turn_only_once() {
        given::<Conversation>(&[received("wamid.1")])
            .when(ConversationCommand::RecordTurn {
                message: message("wamid.1"),
                turn: Box::new(turn(vec![])),
            })
            .then_expect(&[]);
    }

    #[test]
    fn bookings_and_handoffs_of_a_turn_are_recorded() {
        let booking_id = BookingId::from_uuid(uuid::Uuid::from_u128(1));
        let events = Conversation::decide(
            &ConversationState::default(),
            ConversationCommand::RecordTurn {
                message: message("wamid.2"),
                turn: Box::new(turn(vec![
                    BotAction::RequestBooking {
                        booking_id,
                        reference: "BK-1".into(),
                        service_id: crate::ids::ServiceId::from_uuid(uuid::Uuid::nil()),
                        start: "2026-12-01T09:00:00Z".parse().unwrap(),
                        resource: crate::ids::ResourceId::default_resource(),
                        customer_name: None,
                        payment: None,
                        confirm: true,
                    },
                    BotAction::HandOff,
                ])),
            },
        )
        .unwrap();
        assert!(events.contains(&ConversationEvent::BookingAttached { booking_id }));
        assert!(events.contains(&ConversationEvent::HandedOffToHuman));
        let state = Conversation::fold(&events);
        assert_eq!(state.bookings, [booking_id]);
    }

    #[test]
    fn another_customers_message_is_refused() {
        let mut other = message("wamid.9");
        other.from = PhoneNumber::parse("+34600000002").unwrap();
        given::<Conversation>(&[received("wamid.1")])
            .when(ConversationCommand::RecordTurn {
                message: other,
                turn: Box::new(turn(vec![])),
            })
            .then_expect_error(ConversationError::WrongCustomer(
                PhoneNumber::parse("+34600000002").unwrap(),
            ));
    }

    #[test]
    fn a_reply_is_recorded_sent_once() {
        let history = [received("wamid.1"), replied("wamid.1", 0, "Welcome")];
        let sent = ConversationEvent::OutboundMessageSent {
            reply_id: "wamid.1/0".into(),
            wamid: "wamid.out.1".into(),
        };
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordSent {
                reply_id: "wamid.1/0".into(),
                wamid: "wamid.out.1".into(),
            })
            .then_expect(std::slice::from_ref(&sent));
        let mut after = history.to_vec();
        after.push(sent);
        given::<Conversation>(&after)
            .when(ConversationCommand::RecordSent {
                reply_id: "wamid.1/0".into(),
                wamid: "wamid.out.2".into(),
            })
            .then_expect(&[]);
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordSent {
                reply_id: "nope".into(),
                wamid: "w".into(),
            })
            .then_expect_error(ConversationError::UnknownReply("nope".into()));
    }

    #[test]
    fn statuses_only_move_forward_and_failed_is_final() {
        let history = vec![
            received("wamid.1"),
            replied("wamid.1", 0, "Welcome"),
            ConversationEvent::OutboundMessageSent {
                reply_id: "wamid.1/0".into(),
                wamid: "out".into(),
            },
        ];
        let status = |s| ConversationCommand::RecordStatus {
            wamid: "out".into(),
            status: s,
        };
        let changed = |s| ConversationEvent::OutboundStatusChanged {
            wamid: "out".into(),
            status: s,
        };
        given::<Conversation>(&history)
            .when(status(DeliveryStatus::Delivered))
            .then_expect(&[changed(DeliveryStatus::Delivered)]);
        let mut read = history.clone();
        read.push(changed(DeliveryStatus::Read));
        // A late "delivered" after "read" changes nothing.
        given::<Conversation>(&read)
            .when(status(DeliveryStatus::Delivered))
            .then_expect(&[]);
        given::<Conversation>(&read)
            .when(status(DeliveryStatus::Read))
            .then_expect(&[]);
        let mut failed = history.clone();
        failed.push(changed(DeliveryStatus::Failed));
        given::<Conversation>(&failed)
            .when(status(DeliveryStatus::Read))
            .then_expect(&[]);
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordStatus {
                wamid: "unknown".into(),
                status: DeliveryStatus::Read,
            })
            .then_expect_error(ConversationError::UnknownMessage("unknown".into()));
    }

    #[test]
    fn a_status_that_beats_the_send_is_applied_when_the_send_is_recorded() {
        let history = vec![received("wamid.1"), replied("wamid.1", 0, "Welcome")];
        let read = ConversationEvent::OutboundStatusChanged {
            wamid: "out".into(),
            status: DeliveryStatus::Read,
        };
        given::<Conversation>(&history)
            .when(ConversationCommand::RecordStatus {
                wamid: "out".into(),
                status: DeliveryStatus::Read,
            })
            .then_expect(std::slice::from_ref(&read));
        let mut early = history.clone();
        early.push(read.clone());
        // A later, lesser status changes nothing; the send then brings the read status along.
        given::<Conversation>(&early)
            .when(ConversationCommand::RecordStatus {
                wamid: "out".into(),
                status: DeliveryStatus::Delivered,
            })
            .then_expect(&[]);
        given::<Conversation>(&early)
            .when(ConversationCommand::RecordSent {
                reply_id: "wamid.1/0".into(),
                wamid: "out".into(),
            })
            .then_expect(&[
                ConversationEvent::OutboundMessageSent {
                    reply_id: "wamid.1/0".into(),
                    wamid: "out".into(),
                },
                read,
            ]);
    }

    #[test]
    fn events_round_trip_through_the_store_format() {
        assert_round_trips(&[
            received("wamid.1"),
            ConversationEvent::ConversationExpired,
            replied("wamid.1", 0, "Welcome"),
            ConversationEvent::BotStateChanged {
                state: turn(vec![]).state,
            },
            ConversationEvent::BookingAttached {
                booking_id: BookingId::from_uuid(uuid::Uuid::nil()),
            },
            ConversationEvent::HandedOffToHuman,
            ConversationEvent::OutboundMessageSent {
                reply_id: "r".into(),
                wamid: "w".into(),
            },
            ConversationEvent::OutboundMessageFailed {
                reply_id: "r".into(),
                code: 131047,
                reason: "24h window".into(),
            },
            ConversationEvent::OutboundStatusChanged {
                wamid: "w".into(),
                status: DeliveryStatus::Read,
            },
        ]);
    }
}
