//! `rm_conversations` (the inbox: last message, bot state, handoff, who of the business has
//! it, when the customer last wrote) and `rm_messages` (each message in and out, outbound ones
//! with their delivery status and, for a person's reply, who sent it).

use std::collections::HashMap;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use domain::bot::engine::Step;
use domain::bot::message::{Inbound, Reply};
use domain::conversation::{
    ConversationEvent, DELIVERY_LABELS, DeliveryStatus, Direction, delivery_label,
};
use eventstore::{EventStore, RecordedEvent};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::projection::decode;

const PREVIEW_CHARS: usize = 80;

/// A batch's events, each tenant's in their order. The messages in and out are gathered: their
/// inbox rows folded by tenant and phone (with the bot's state after them) and their
/// `rm_messages` rows (with what became of a reply: sent, failed, delivered, read), one
/// statement each, written before any other statement (which may read or change those rows)
/// and at the end.
pub async fn apply_all(
    conn: &mut PgConnection,
    store: &EventStore,
    events: &[&RecordedEvent],
) -> anyhow::Result<()> {
    let mut pending = Pending::default();
    for event in events {
        // A conversation's stream is named by its customer's subject id; the events that carry
        // the phone (a message in or out) keep the inbox row's phone, the others find the row
        // by its subject.
        let subject: Uuid = event
            .stream
            .stream_id
            .parse()
            .context("a conversation stream is named by its customer's subject id")?;
        match decode::<ConversationEvent>(event)? {
            ConversationEvent::MessageReceived {
                wamid,
                from,
                profile_name,
                content,
                received_at,
            } => {
                let touch = pending.touch(event, (from.as_str(), subject), received_at);
                touch.direction = Direction::In;
                touch.preview = preview(inbound_text(&content));
                touch.last_inbound_at = touch.last_inbound_at.max(Some(received_at));
                if profile_name.is_some() {
                    touch.profile_name = profile_name;
                }
                pending.message(Message {
                    tenant: event.tenant_id,
                    phone: from.as_str().to_owned(),
                    version: event.version as i32,
                    id: wamid,
                    direction: Direction::In,
                    content: serde_json::to_value(&content)?,
                    at: received_at,
                    status: None,
                    sent_by: None,
                    wamid: None,
                    error: None,
                });
            }
            ConversationEvent::BotReplied {
                reply_id,
                reply,
                to,
            } => pending.outbound(event, (to.as_str(), subject), reply_id, &reply, None)?,
            ConversationEvent::StaffReplied {
                reply_id,
                reply,
                by,
                to,
            } => pending.outbound(event, (to.as_str(), subject), reply_id, &reply, Some(by))?,
            ConversationEvent::ConversationExpired | ConversationEvent::BookingAttached { .. } => {}
            // What became of a reply of the run (sent, failed, delivered, read): columns of its
            // row, as the statements of `apply_other` would set them.
            ConversationEvent::OutboundMessageSent { reply_id, wamid }
                if pending.has_reply(event.tenant_id, &reply_id) =>
            {
                pending.sent(event.tenant_id, &reply_id, wamid);
            }
            ConversationEvent::OutboundMessageFailed {
                reply_id,
                code,
                reason,
            } if pending.has_reply(event.tenant_id, &reply_id) => {
                pending.failed(event.tenant_id, &reply_id, code, reason);
            }
            ConversationEvent::OutboundStatusChanged { wamid, status }
                if pending.has_wamid(event.tenant_id, &wamid) =>
            {
                pending.status(event.tenant_id, &wamid, status);
            }
            // The bot's state after a message of the run: a column of that message's row.
            ConversationEvent::BotStateChanged { state }
                if pending.folds_state(event.tenant_id, subject, state.step == Step::HandedOff) =>
            {
                pending.bot_state(event, subject, serde_json::to_value(&state)?, &state.step);
            }
            other => {
                pending.write(conn).await?;
                apply_other(conn, store, event, subject, other).await?;
            }
        }
    }
    pending.write(conn).await
}

/// An event that is not a message in or out, by itself.
async fn apply_other(
    conn: &mut PgConnection,
    store: &EventStore,
    event: &RecordedEvent,
    subject: Uuid,
    decoded: ConversationEvent,
) -> anyhow::Result<()> {
    let tenant = event.tenant_id;
    match decoded {
        ConversationEvent::MessageReceived { .. }
        | ConversationEvent::BotReplied { .. }
        | ConversationEvent::StaffReplied { .. }
        | ConversationEvent::ConversationExpired
        | ConversationEvent::BookingAttached { .. } => {
            anyhow::bail!("{} is gathered by apply_all", event.event_type)
        }
        ConversationEvent::BotStateChanged { state } => {
            // Back with the bot (the customer asked for the menu): nobody of the business has it.
            sqlx::query!(
                "update rm_conversations set bot_state = $3, handed_off = $4, updated_at = $5,
                     taken_over_by = case when $4 then taken_over_by end
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                Json(&state) as _,
                state.step == Step::HandedOff,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::StaffTookOver { by } => {
            sqlx::query!(
                "update rm_conversations set taken_over_by = $3, updated_at = $4
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                by,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::HandedBackToBot { .. } => {
            sqlx::query!(
                "update rm_conversations set taken_over_by = null, updated_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::HandedOffToHuman => {
            sqlx::query!(
                "update rm_conversations set handed_off = true, updated_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageSent { reply_id, wamid } => {
            // Pending becomes sent; a status that came first (kept by the domain) stays.
            sqlx::query!(
                "update rm_messages set wamid = $3,
                     status = case when status = $4 then $5 else status end
                 where tenant_id = $1 and message_id = $2",
                tenant,
                reply_id,
                wamid,
                delivery_label(None),
                DeliveryStatus::Sent.as_str()
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageFailed {
            reply_id,
            code,
            reason,
        } => {
            sqlx::query!(
                "update rm_messages set status = $3, error_code = $4, error_reason = $5
                 where tenant_id = $1 and message_id = $2",
                tenant,
                reply_id,
                DeliveryStatus::Failed.as_str(),
                code,
                reason
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundStatusChanged { wamid, status } => {
            // Forward only, in the order of DELIVERY_LABELS (failed is final).
            let order: Vec<String> = DELIVERY_LABELS.iter().map(|l| (*l).to_owned()).collect();
            sqlx::query!(
                "update rm_messages set status = $3
                 where tenant_id = $1 and wamid = $2 and status is distinct from $5
                   and array_position($4::text[], $3) > coalesce(array_position($4::text[], status), 0)",
                tenant,
                wamid,
                status.as_str(),
                &order,
                DeliveryStatus::Failed.as_str()
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::AnswerDeferred { until, .. } => {
            sqlx::query!(
                "update rm_conversations set answer_due_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                until
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::DeferralEnded { .. } => {
            sqlx::query!(
                "update rm_conversations set answer_due_at = null
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::ErasureRequested { .. } => {
            sqlx::query!(
                "update rm_conversations set erasure_requested_at = $3, updated_at = $3
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject,
                event.recorded_at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::CustomerErased { .. } => {
            refold(conn, store, event, subject).await?;
            // What the customer asked for is done.
            sqlx::query!(
                "update rm_conversations set erasure_requested_at = null
                 where tenant_id = $1 and subject = $2",
                tenant,
                subject
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// The customer was erased: their inbox row and messages are made again from the log, which
/// now reads their stand-ins, so the live rows are what a rebuild makes of them.
async fn refold(
    conn: &mut PgConnection,
    store: &EventStore,
    event: &RecordedEvent,
    subject: Uuid,
) -> anyhow::Result<()> {
    let phone = sqlx::query_scalar!(
        "delete from rm_conversations where tenant_id = $1 and subject = $2
         returning customer_phone",
        event.tenant_id,
        subject
    )
    .fetch_optional(&mut *conn)
    .await?;
    // Their messages, under their phone and, for those read after the erasure, its stand-in.
    let phones: Vec<String> = phone
        .into_iter()
        .chain([domain::personal::erased_phone(subject).as_str().to_owned()])
        .collect();
    sqlx::query!(
        "delete from rm_messages where tenant_id = $1 and customer_phone = any($2)",
        event.tenant_id,
        &phones
    )
    .execute(&mut *conn)
    .await?;
    if event.version > 1 {
        let earlier = store
            .read_stream_range_in(conn, event.tenant_id, &event.stream, 1, event.version - 1)
            .await?;
        let earlier: Vec<&RecordedEvent> = earlier.iter().collect();
        Box::pin(apply_all(conn, store, &earlier)).await?;
    }
    Ok(())
}

/// The inbox rows and messages of a run of messages in and out (and the bot's state after
/// them), not written yet.
#[derive(Default)]
struct Pending {
    /// By tenant and phone, in the order first touched.
    touches: Vec<Touch>,
    /// Where each row is in `touches`: by tenant and phone, and by tenant and subject (a row
    /// whose subject changed since stays listed under the one before).
    by_phone: HashMap<(Uuid, String), usize>,
    by_subject: HashMap<(Uuid, Uuid), Vec<usize>>,
    messages: Vec<Message>,
    /// Where each message is in `messages`, by tenant and its id and, once sent, by tenant and
    /// Meta's id.
    by_id: HashMap<(Uuid, String), usize>,
    by_wamid: HashMap<(Uuid, String), Vec<usize>>,
}

/// What a run of messages does to one inbox row (`rm_conversations`): created, or moved to
/// its latest message.
struct Touch {
    tenant: Uuid,
    phone: String,
    subject: Uuid,
    /// The latest name the customer's profile gave.
    profile_name: Option<String>,
    last_message_at: DateTime<Utc>,
    direction: Direction,
    preview: String,
    messages: i32,
    updated_at: DateTime<Utc>,
    last_inbound_at: Option<DateTime<Utc>>,
    /// The bot's state after the run, and whether that hands the conversation to a person:
    /// the row's own when `None`.
    bot_state: Option<(serde_json::Value, bool)>,
}

impl Touch {
    /// Whether this is `subject`'s row under the customer's own phone, not an erased
    /// customer's stand-in.
    fn is_customers_row_of(&self, subject: Uuid) -> bool {
        self.subject == subject && self.phone != domain::personal::erased_phone(subject).as_str()
    }
}

/// A row of `rm_messages`.
struct Message {
    tenant: Uuid,
    phone: String,
    version: i32,
    id: String,
    direction: Direction,
    content: serde_json::Value,
    at: DateTime<Utc>,
    status: Option<&'static str>,
    sent_by: Option<String>,
    /// Meta's id of an outbound message, once sent.
    wamid: Option<String>,
    /// Why an outbound message failed: Meta's code and reason.
    error: Option<(i64, String)>,
}

/// Whether a delivery status `to` moves a message at `from` forward, in the order of
/// `DELIVERY_LABELS`, a failure being final: the rule of the `OutboundStatusChanged` statement.
fn moves_forward(from: Option<&str>, to: &str) -> bool {
    let rank = |label: &str| DELIVERY_LABELS.iter().position(|l| *l == label);
    from != Some(DeliveryStatus::Failed.as_str())
        && rank(to).is_some_and(|to| from.and_then(rank).is_none_or(|from| to > from))
}

impl Pending {
    /// The row `event` moves (to a message at `at`), with the message counted.
    fn touch(
        &mut self,
        event: &RecordedEvent,
        (phone, subject): (&str, Uuid),
        at: DateTime<Utc>,
    ) -> &mut Touch {
        let key = (event.tenant_id, phone.to_owned());
        let index = match self.by_phone.get(&key) {
            Some(&index) => index,
            None => {
                self.by_phone.insert(key, self.touches.len());
                self.touches.push(Touch {
                    tenant: event.tenant_id,
                    phone: phone.to_owned(),
                    subject,
                    profile_name: None,
                    last_message_at: at,
                    direction: Direction::In,
                    preview: String::new(),
                    messages: 0,
                    updated_at: event.recorded_at,
                    last_inbound_at: None,
                    bot_state: None,
                });
                self.touches.len() - 1
            }
        };
        let listed = self
            .by_subject
            .entry((event.tenant_id, subject))
            .or_default();
        if !listed.contains(&index) {
            listed.push(index);
        }
        let touch = &mut self.touches[index];
        touch.subject = subject;
        touch.last_message_at = touch.last_message_at.max(at);
        touch.messages += 1;
        touch.updated_at = event.recorded_at;
        touch
    }

    /// Whether the bot's state (handing the conversation to a person or not) can be folded into
    /// a row of the run: one of `subject`'s, under the customer's phone, and not back with the
    /// bot already in the run (which, unlike the state that follows it, lets go of whoever of
    /// the business had the conversation).
    ///
    /// A stand-in phone (a customer erased since, read in a replay) may name a row that is never
    /// written, the subject's row keeping its phone until the erasure, later in the log, makes
    /// it again; the bot's state then goes to that row by itself.
    fn folds_state(&self, tenant: Uuid, subject: Uuid, handed_off: bool) -> bool {
        let mut rows = self.rows_of(tenant, subject).peekable();
        rows.peek().is_some()
            && rows.all(|t| !matches!(t.bot_state, Some((_, false))) || !handed_off)
    }

    /// The bot's state after the run's messages of `subject` ([`Pending::folds_state`]).
    fn bot_state(
        &mut self,
        event: &RecordedEvent,
        subject: Uuid,
        state: serde_json::Value,
        step: &Step,
    ) {
        let rows: Vec<usize> = self
            .by_subject
            .get(&(event.tenant_id, subject))
            .into_iter()
            .flatten()
            .copied()
            .filter(|&i| self.touches[i].is_customers_row_of(subject))
            .collect();
        for i in rows {
            let touch = &mut self.touches[i];
            touch.bot_state = Some((state.clone(), *step == Step::HandedOff));
            touch.updated_at = event.recorded_at;
        }
    }

    /// The run's rows of `tenant`'s customer `subject`, under the customer's own phone.
    fn rows_of(&self, tenant: Uuid, subject: Uuid) -> impl Iterator<Item = &Touch> {
        self.by_subject
            .get(&(tenant, subject))
            .into_iter()
            .flatten()
            .map(|&i| &self.touches[i])
            .filter(move |t| t.is_customers_row_of(subject))
    }

    fn message(&mut self, message: Message) {
        self.by_id
            .insert((message.tenant, message.id.clone()), self.messages.len());
        self.messages.push(message);
    }

    /// Whether the run has `tenant`'s reply `reply_id`.
    fn has_reply(&self, tenant: Uuid, reply_id: &str) -> bool {
        self.by_id.contains_key(&(tenant, reply_id.to_owned()))
    }

    /// Whether the run has `tenant`'s messages sent as `wamid`.
    fn has_wamid(&self, tenant: Uuid, wamid: &str) -> bool {
        self.by_wamid.contains_key(&(tenant, wamid.to_owned()))
    }

    /// The run's reply `reply_id` was sent, as `wamid`: pending becomes sent (a status that
    /// came first stays).
    fn sent(&mut self, tenant: Uuid, reply_id: &str, wamid: String) {
        let Some(&i) = self.by_id.get(&(tenant, reply_id.to_owned())) else {
            return;
        };
        self.by_wamid
            .entry((tenant, wamid.clone()))
            .or_default()
            .push(i);
        let message = &mut self.messages[i];
        message.wamid = Some(wamid);
        if message.status == Some(delivery_label(None)) {
            message.status = Some(DeliveryStatus::Sent.as_str());
        }
    }

    /// The run's reply `reply_id` failed: final.
    fn failed(&mut self, tenant: Uuid, reply_id: &str, code: i64, reason: String) {
        if let Some(&i) = self.by_id.get(&(tenant, reply_id.to_owned())) {
            let message = &mut self.messages[i];
            message.status = Some(DeliveryStatus::Failed.as_str());
            message.error = Some((code, reason));
        }
    }

    /// Meta reported `status` for the run's messages sent as `wamid`: only ever forward.
    fn status(&mut self, tenant: Uuid, wamid: &str, status: DeliveryStatus) {
        for &i in self
            .by_wamid
            .get(&(tenant, wamid.to_owned()))
            .into_iter()
            .flatten()
        {
            let message = &mut self.messages[i];
            if moves_forward(message.status, status.as_str()) {
                message.status = Some(status.as_str());
            }
        }
    }

    /// A message to the customer, the bot's or a person's (`by`): pending until the sender
    /// has it.
    fn outbound(
        &mut self,
        event: &RecordedEvent,
        (phone, subject): (&str, Uuid),
        reply_id: String,
        reply: &Reply,
        by: Option<String>,
    ) -> anyhow::Result<()> {
        let touch = self.touch(event, (phone, subject), event.recorded_at);
        touch.direction = Direction::Out;
        touch.preview = preview(&reply_text(reply));
        self.message(Message {
            tenant: event.tenant_id,
            phone: phone.to_owned(),
            version: event.version as i32,
            id: reply_id,
            direction: Direction::Out,
            content: serde_json::to_value(reply)?,
            at: event.recorded_at,
            status: Some(delivery_label(None)),
            sent_by: by,
            wamid: None,
            error: None,
        });
        Ok(())
    }

    /// Writes what is pending: the inbox rows in one statement, the messages in another.
    async fn write(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.touches.is_empty() {
            let t = &self.touches;
            sqlx::query!(
                "insert into rm_conversations (tenant_id, customer_phone, profile_name,
                     last_message_at, last_direction, last_preview, messages, updated_at, subject,
                     last_inbound_at, bot_state, handed_off)
                 select u.tenant_id, u.phone, u.profile_name, u.last_message_at,
                        u.last_direction, u.last_preview, u.messages, u.updated_at, u.subject,
                        u.last_inbound_at, u.bot_state, coalesce(u.handed_off, false)
                   from unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[], $5::text[],
                     $6::text[], $7::int[], $8::timestamptz[], $9::uuid[], $10::timestamptz[],
                     $11::jsonb[], $12::bool[])
                     as u(tenant_id, phone, profile_name, last_message_at, last_direction,
                          last_preview, messages, updated_at, subject, last_inbound_at, bot_state,
                          handed_off)
                  -- Read after their erasure, a customer's messages name a stand-in: the row
                  -- keeps its phone until the erasure, later in the log, makes it again. (A
                  -- scalar subquery, one lookup by the unique subject per row: as `not exists`
                  -- the planner may hash the whole table, and does on a rebuild's shadows, which
                  -- it takes to be small.)
                  where coalesce((select c.customer_phone from rm_conversations c
                                   where c.tenant_id = u.tenant_id and c.subject = u.subject),
                                 u.phone) = u.phone
                 on conflict (tenant_id, customer_phone) do update
                 set subject = excluded.subject,
                     profile_name = coalesce(excluded.profile_name, rm_conversations.profile_name),
                     last_message_at = greatest(rm_conversations.last_message_at,
                         excluded.last_message_at),
                     last_direction = excluded.last_direction,
                     last_preview = excluded.last_preview,
                     messages = rm_conversations.messages + excluded.messages,
                     updated_at = excluded.updated_at,
                     last_inbound_at = greatest(rm_conversations.last_inbound_at,
                         excluded.last_inbound_at),
                     -- A state given (never JSON null) hands the conversation to a person, or
                     -- back to the bot, where nobody of the business has it.
                     bot_state = coalesce(excluded.bot_state, rm_conversations.bot_state),
                     handed_off = case when excluded.bot_state is null
                         then rm_conversations.handed_off else excluded.handed_off end,
                     taken_over_by = case when excluded.bot_state is not null
                         and not excluded.handed_off then null
                         else rm_conversations.taken_over_by end",
                &t.iter().map(|t| t.tenant).collect::<Vec<_>>(),
                &t.iter().map(|t| t.phone.clone()).collect::<Vec<_>>(),
                &t.iter().map(|t| t.profile_name.clone()).collect::<Vec<_>>() as _,
                &t.iter().map(|t| t.last_message_at).collect::<Vec<_>>(),
                &t.iter()
                    .map(|t| t.direction.as_str().to_owned())
                    .collect::<Vec<_>>(),
                &t.iter().map(|t| t.preview.clone()).collect::<Vec<_>>(),
                &t.iter().map(|t| t.messages).collect::<Vec<_>>(),
                &t.iter().map(|t| t.updated_at).collect::<Vec<_>>(),
                &t.iter().map(|t| t.subject).collect::<Vec<_>>(),
                &t.iter().map(|t| t.last_inbound_at).collect::<Vec<_>>() as _,
                &t.iter()
                    .map(|t| t.bot_state.as_ref().map(|(state, _)| state.clone()))
                    .collect::<Vec<_>>() as _,
                &t.iter()
                    .map(|t| t.bot_state.as_ref().map(|(_, handed_off)| *handed_off))
                    .collect::<Vec<_>>() as _
            )
            .execute(&mut *conn)
            .await?;
        }
        if !self.messages.is_empty() {
            let m = &self.messages;
            sqlx::query!(
                "insert into rm_messages (tenant_id, customer_phone, version, message_id,
                     direction, content, at, status, sent_by, wamid, error_code, error_reason)
                 select * from unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::text[],
                     $6::jsonb[], $7::timestamptz[], $8::text[], $9::text[], $10::text[],
                     $11::bigint[], $12::text[])",
                &m.iter().map(|m| m.tenant).collect::<Vec<_>>(),
                &m.iter().map(|m| m.phone.clone()).collect::<Vec<_>>(),
                &m.iter().map(|m| m.version).collect::<Vec<_>>(),
                &m.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
                &m.iter()
                    .map(|m| m.direction.as_str().to_owned())
                    .collect::<Vec<_>>(),
                &m.iter().map(|m| m.content.clone()).collect::<Vec<_>>(),
                &m.iter().map(|m| m.at).collect::<Vec<_>>(),
                &m.iter()
                    .map(|m| m.status.map(str::to_owned))
                    .collect::<Vec<_>>() as _,
                &m.iter().map(|m| m.sent_by.clone()).collect::<Vec<_>>() as _,
                &m.iter().map(|m| m.wamid.clone()).collect::<Vec<_>>() as _,
                &m.iter()
                    .map(|m| m.error.as_ref().map(|(code, _)| *code))
                    .collect::<Vec<_>>() as _,
                &m.iter()
                    .map(|m| m.error.as_ref().map(|(_, reason)| reason.clone()))
                    .collect::<Vec<_>>() as _
            )
            .execute(&mut *conn)
            .await?;
        }
        *self = Pending::default();
        Ok(())
    }
}

fn inbound_text(content: &Inbound) -> &str {
    match content {
        Inbound::Text { body } => body,
        Inbound::ButtonReply { title, .. } | Inbound::ListReply { title, .. } => title,
        Inbound::Unsupported { message_type } => message_type,
    }
}

/// What the customer reads; a template by its name and parameters (its own text is Meta's).
fn reply_text(reply: &Reply) -> std::borrow::Cow<'_, str> {
    match reply {
        Reply::Text { body } | Reply::Buttons { body, .. } | Reply::List { body, .. } => {
            body.as_str().into()
        }
        Reply::Template { name, body, .. } => format!("[{name}] {}", body.join(" · ")).into(),
    }
}

fn preview(text: &str) -> String {
    let mut out: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        out.push('…');
    }
    out
}
