//! What the benchmarks share: a backlog of realistic events written straight into the log (the
//! benchmarks' setup, not what they measure), and percentiles.

use std::time::Duration;

use domain::agenda::Interval;
use domain::booking::{BookingEvent, Channel, Customer, Party};
use domain::bot::engine::BotState;
use domain::bot::message::{Inbound, Reply};
use domain::conversation::ConversationEvent;
use domain::event::{DomainEvent, encode};
use domain::ids::{BookingId, ResourceId, ServiceId};
use domain::values::{Money, PhoneNumber};
use eventstore::Position;
use serde_json::Value;
use sqlx::PgPool;

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn tenant(i: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(0xb00c_0000_0000_0000_0000_0000_0000_0000 + i as u128)
}

/// A row for the events table.
#[derive(Clone)]
pub struct Row {
    pub tenant: uuid::Uuid,
    pub stream_type: &'static str,
    pub stream_id: String,
    pub version: i32,
    pub event_type: &'static str,
    pub schema_version: i32,
    pub payload: Value,
}

pub fn row<E: DomainEvent>(tenant: uuid::Uuid, stream_id: &str, version: i32, event: &E) -> Row {
    let encoded = encode(event);
    Row {
        tenant,
        stream_type: E::STREAM_TYPE,
        stream_id: stream_id.to_owned(),
        version,
        event_type: encoded.event_type,
        schema_version: encoded.schema_version as i32,
        payload: encoded.payload,
    }
}

/// A booking's life (requested, confirmed, rescheduled, completed) or a conversation turn
/// (a message in, a reply out, the bot's state): `n` of them, tenants round-robin.
pub fn history(n: usize, tenants: usize, offset: usize) -> Vec<Row> {
    let mut rows = Vec::with_capacity(n);
    let start: chrono::DateTime<chrono::Utc> = "2030-01-07T10:00:00Z".parse().unwrap();
    let mut k = offset;
    while rows.len() < n {
        let t = tenant(k % tenants);
        if k.is_multiple_of(2) {
            let booking = BookingId::from_uuid(uuid::Uuid::new_v4());
            let at = start + chrono::Duration::minutes((k % 500) as i64 * 15);
            let slot = Interval::new(at, at + chrono::Duration::minutes(45)).unwrap();
            let later = Interval::new(
                at + chrono::Duration::days(1),
                at + chrono::Duration::days(1) + chrono::Duration::minutes(45),
            )
            .unwrap();
            let id = booking.to_string();
            let events = [
                requested(
                    booking,
                    format!("BK-{k}"),
                    slot,
                    Customer {
                        phone: PhoneNumber::parse(&format!("+3460{:07}", k % 10_000_000)).unwrap(),
                        name: Some("Bench".into()),
                    },
                ),
                BookingEvent::AppointmentConfirmed,
                BookingEvent::AppointmentRescheduled {
                    from: slot,
                    to: later,
                    from_resource: ResourceId::default_resource(),
                    to_resource: ResourceId::default_resource(),
                    by: Party::Customer,
                },
                BookingEvent::AppointmentCompleted,
            ];
            for (v, e) in events.iter().enumerate() {
                rows.push(row(t, &id, v as i32 + 1, e));
            }
        } else {
            let phone = PhoneNumber::parse(&format!("+3461{k:08}")).unwrap();
            // A conversation's stream is named by its customer's subject id.
            let id = uuid::Uuid::from_u128(0x5eb_0000_0000_0000_0000 + k as u128).to_string();
            let wamid = format!("wamid.bench.{k}");
            let events = [
                ConversationEvent::MessageReceived {
                    wamid: wamid.clone(),
                    from: phone.clone(),
                    profile_name: Some("Bench".into()),
                    content: Inbound::Text { body: "hi".into() },
                    received_at: start,
                },
                ConversationEvent::BotReplied {
                    reply_id: format!("{wamid}/0"),
                    to: phone.clone(),
                    reply: Reply::Text {
                        body: "Welcome! Which service would you like?".into(),
                    },
                },
                ConversationEvent::BotStateChanged {
                    state: BotState::default(),
                },
            ];
            for (v, e) in events.iter().enumerate() {
                rows.push(row(t, &id, v as i32 + 1, e));
            }
        }
        k += 1;
    }
    rows.truncate(n);
    rows
}

/// A WhatsApp request for a 25 EUR haircut on the default resource.
fn requested(
    booking: BookingId,
    reference: String,
    appointment: Interval,
    customer: Customer,
) -> BookingEvent {
    BookingEvent::AppointmentRequested {
        booking_id: booking,
        reference,
        service_id: ServiceId::from_uuid(uuid::Uuid::from_u128(7)),
        service_name: "Haircut".into(),
        price: Money::parse(2500, "EUR").unwrap(),
        resource: ResourceId::default_resource(),
        appointment,
        customer,
        channel: Channel::WhatsApp,
    }
}

/// Writes rows straight into the log (as the superuser, in chunks): the bench's setup, not
/// what it measures.
pub async fn load(superuser: &PgPool, rows: Vec<Row>) {
    for chunk in rows.chunks(20_000) {
        let mut tenants = Vec::with_capacity(chunk.len());
        let mut types = Vec::with_capacity(chunk.len());
        let mut ids = Vec::with_capacity(chunk.len());
        let mut versions = Vec::with_capacity(chunk.len());
        let mut event_types = Vec::with_capacity(chunk.len());
        let mut schemas = Vec::with_capacity(chunk.len());
        let mut payloads = Vec::with_capacity(chunk.len());
        for r in chunk {
            tenants.push(r.tenant);
            types.push(r.stream_type);
            ids.push(r.stream_id.clone());
            versions.push(r.version);
            event_types.push(r.event_type);
            schemas.push(r.schema_version);
            payloads.push(r.payload.clone());
        }
        sqlx::query(
            "insert into events (tenant_id, stream_type, stream_id, version, event_id, event_type,
                 schema_version, payload)
             select t, st, sid, v, gen_random_uuid(), et, sv, p
             from unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[],
                 $7::jsonb[]) as x(t, st, sid, v, et, sv, p)",
        )
        .bind(&tenants)
        .bind(&types)
        .bind(&ids)
        .bind(&versions)
        .bind(&event_types)
        .bind(&schemas)
        .bind(&payloads)
        .execute(superuser)
        .await
        .unwrap();
    }
}

pub async fn last_position(superuser: &PgPool) -> Position {
    let (tx, pos): (String, i64) = sqlx::query_as(
        "select transaction_id::text, global_position from events
         order by transaction_id desc, global_position desc limit 1",
    )
    .fetch_one(superuser)
    .await
    .unwrap();
    Position {
        transaction_id: tx.parse().unwrap(),
        global_position: pos as u64,
    }
}

/// One tenant's bookings through every kind of booking event, reminders, attendance and
/// arrival included: what [`history`] leaves out, for the tests that compare a batch applied
/// together with its events one at a time.
pub fn booking_lives(tenant: uuid::Uuid) -> Vec<Row> {
    use BookingEvent::*;
    let start: chrono::DateTime<chrono::Utc> = "2030-01-07T10:00:00Z".parse().unwrap();
    let slot = Interval::new(start, start + chrono::Duration::minutes(45)).unwrap();
    let later = Interval::new(
        start + chrono::Duration::days(1),
        start + chrono::Duration::days(1) + chrono::Duration::minutes(45),
    )
    .unwrap();
    let (day_before, hour_before) = (
        start - chrono::Duration::days(1),
        start - chrono::Duration::hours(1),
    );
    let lives: Vec<Vec<BookingEvent>> = vec![
        vec![
            RemindersScheduled {
                at: vec![day_before, hour_before],
            },
            AppointmentConfirmed,
            ReminderSent { at: day_before },
            AttendanceConfirmed,
            ReminderSkipped { at: hour_before },
            CustomerArrived { at: start },
            AppointmentCompleted,
        ],
        vec![
            AppointmentConfirmed,
            AttendanceConfirmed,
            AppointmentRescheduled {
                from: slot,
                to: later,
                from_resource: ResourceId::default_resource(),
                to_resource: ResourceId::default_resource(),
                by: Party::Customer,
            },
            CustomerArrived { at: later.start },
            AppointmentMarkedNoShow,
        ],
        vec![
            AppointmentConfirmed,
            RemindersScheduled {
                at: vec![hour_before],
            },
            AppointmentCancelled {
                by: Party::Customer,
                reason: None,
            },
        ],
        vec![],
    ];
    let mut rows = Vec::new();
    for (k, life) in lives.into_iter().enumerate() {
        // The same ids for every tenant: two tenants' lives side by side must stay apart.
        let booking = BookingId::from_uuid(uuid::Uuid::from_u128(0x11fe_b00c_0000 + k as u128));
        let requested = requested(
            booking,
            format!("BK-LIFE-{k}"),
            slot,
            Customer {
                phone: PhoneNumber::parse(&format!("+346200000{k:02}")).unwrap(),
                name: (k % 2 == 0).then(|| "Life".into()),
            },
        );
        let id = booking.to_string();
        for (v, e) in std::iter::once(requested).chain(life).enumerate() {
            rows.push(row(tenant, &id, v as i32 + 1, &e));
        }
    }
    rows
}

/// One tenant's conversations through a hand-off to a person and back: the bot's state after a
/// message, a person taking the conversation over and replying, the customer asking for the
/// menu again (back with the bot, nobody of the business holding it); replies sent, failed,
/// delivered and read, statuses out of order among them. What [`history`] leaves
/// out, for the tests that compare a batch applied together with its events one at a time.
pub fn conversation_lives(tenant: uuid::Uuid) -> Vec<Row> {
    use ConversationEvent::*;
    use domain::bot::engine::Step;
    use domain::conversation::DeliveryStatus;
    let at: chrono::DateTime<chrono::Utc> = "2030-01-07T10:00:00Z".parse().unwrap();
    let state = |step: Step| BotStateChanged {
        state: BotState {
            step,
            ..BotState::default()
        },
    };
    let mut rows = Vec::new();
    for k in 0..3u32 {
        let phone = PhoneNumber::parse(&format!("+346300000{k:02}")).unwrap();
        let subject = uuid::Uuid::from_u128(0x11fe_0000 + u128::from(k)).to_string();
        let message = |n: i64, body: &str| MessageReceived {
            wamid: format!("wamid.life.{k}.{n}"),
            from: phone.clone(),
            profile_name: (n == 0).then(|| "Life".into()),
            content: Inbound::Text { body: body.into() },
            received_at: at + chrono::Duration::minutes(n),
        };
        let reply = |n: u32, body: &str| BotReplied {
            reply_id: format!("wamid.life.{k}/{n}"),
            to: phone.clone(),
            reply: Reply::Text { body: body.into() },
        };
        let sent = |n: &str| OutboundMessageSent {
            reply_id: format!("wamid.life.{k}/{n}"),
            wamid: format!("wamid.out.{k}.{n}"),
        };
        let status = |n: &str, status: DeliveryStatus| OutboundStatusChanged {
            wamid: format!("wamid.out.{k}.{n}"),
            status,
        };
        let life = vec![
            message(0, "hi"),
            reply(0, "Welcome! Which service would you like?"),
            // Read reported before delivered: a status never moves back.
            sent("0"),
            status("0", DeliveryStatus::Read),
            status("0", DeliveryStatus::Delivered),
            state(Step::ChoosingService),
            message(1, "a person, please"),
            HandedOffToHuman,
            state(Step::HandedOff),
            StaffTookOver {
                by: "user:owner".into(),
            },
            StaffReplied {
                reply_id: format!("wamid.life.{k}/staff"),
                to: phone.clone(),
                reply: Reply::Text {
                    body: "Hello, this is Ana.".into(),
                },
                by: "user:owner".into(),
            },
            OutboundMessageFailed {
                reply_id: format!("wamid.life.{k}/staff"),
                code: 131047,
                reason: "Re-engagement message".into(),
            },
            message(2, "menu"),
            state(Step::Idle),
            reply(1, "Back to the menu."),
            // A status for a reply before its send is recorded: nothing to move yet.
            status("1", DeliveryStatus::Delivered),
            sent("1"),
            status("1", DeliveryStatus::Delivered),
            message(3, "someone again"),
            state(Step::HandedOff),
        ];
        for (v, e) in life.iter().enumerate() {
            rows.push(row(tenant, &subject, v as i32 + 1, e));
        }
    }
    rows
}
