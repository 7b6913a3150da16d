//! One event into the facts: what a booking became, how a conversation went, how many
//! messages a day. Reads only the envelope and the published event types (`domain/EVENTS.md`);
//! an event type it does not use costs nothing.
//!
//! Applied inside the consumer's transaction, whose `app.tenant_id` is the event's tenant, in
//! stream order and at most once (the checkpoint skips what was applied), so counters may
//! simply add one.

use anyhow::Context as _;
use chrono::Duration;
use domain::DomainEvent;
use domain::booking::{BookingEvent, Party};
use domain::bot::engine::Step;
use domain::bot_config::BotConfigEvent;
use domain::conversation::ConversationEvent;
use domain::tenant::TenantEvent;
use sqlx::PgConnection;

use crate::envelope::Envelope;

/// How long after a conversation starts a booking still counts as its outcome.
pub const BOOKED_WITHIN: Duration = Duration::days(7);

pub async fn apply(conn: &mut PgConnection, event: &Envelope) -> anyhow::Result<()> {
    match event.stream.stream_type.as_str() {
        TenantEvent::STREAM_TYPE => tenant(conn, event, decode(event)?).await,
        BookingEvent::STREAM_TYPE => booking(conn, event, decode(event)?).await,
        ConversationEvent::STREAM_TYPE => conversation(conn, event, decode(event)?).await,
        BotConfigEvent::STREAM_TYPE => bot_config(conn, event, decode(event)?).await,
        _ => Ok(()),
    }
}

/// A configuration's hours, kept from the time it was recorded (utilisation's open minutes).
async fn bot_config(
    conn: &mut PgConnection,
    e: &Envelope,
    event: BotConfigEvent,
) -> anyhow::Result<()> {
    let BotConfigEvent::BotConfigured { settings } = event else {
        return Ok(());
    };
    sqlx::query!(
        "insert into analytics.hours (tenant_id, since, settings) values ($1, $2, $3)
         on conflict (tenant_id, since) do update set settings = excluded.settings",
        e.tenant_id,
        e.recorded_at,
        serde_json::to_value(&*settings)?
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The payload as the published type, refusing a schema version the catalogue does not name
/// as current (a newer producer than this consumer: the event is dead-lettered, not misread).
fn decode<E: DomainEvent>(event: &Envelope) -> anyhow::Result<E> {
    let known = E::schema_version(&event.event_type);
    anyhow::ensure!(
        event.schema_version == known,
        "{} has schema version {}; this consumer reads {known}",
        event.event_type,
        event.schema_version
    );
    domain::event::decode(&event.event_type, &event.payload)
        .with_context(|| format!("event {}", event.event_id))
}

async fn tenant(conn: &mut PgConnection, e: &Envelope, event: TenantEvent) -> anyhow::Result<()> {
    match event {
        TenantEvent::TenantOnboarded {
            business_name,
            time_zone,
            ..
        } => {
            sqlx::query!(
                "insert into analytics.tenants (tenant_id, business_name, time_zone, onboarded_at)
                 values ($1, $2, $3, $4)
                 on conflict (tenant_id) do update
                     set business_name = excluded.business_name, time_zone = excluded.time_zone",
                e.tenant_id,
                business_name.as_str(),
                time_zone.as_str(),
                e.recorded_at
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::TenantProfileUpdated {
            business_name,
            time_zone,
            ..
        } => {
            sqlx::query!(
                "update analytics.tenants
                    set business_name = coalesce($2, business_name),
                        time_zone = coalesce($3, time_zone)
                  where tenant_id = $1",
                e.tenant_id,
                business_name.as_ref().map(|n| n.as_str()),
                time_zone.as_ref().map(|z| z.as_str())
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::EmailVerificationRequested { .. }
        | TenantEvent::EmailVerified { .. }
        | TenantEvent::WhatsAppNumberConnected { .. }
        | TenantEvent::WhatsAppNumberDisconnected { .. }
        | TenantEvent::WhatsAppCredentialsInvalidated { .. }
        | TenantEvent::TenantSuspended { .. }
        | TenantEvent::TenantReinstated
        | TenantEvent::TenantClosed { .. } => {}
    }
    Ok(())
}

async fn booking(conn: &mut PgConnection, e: &Envelope, event: BookingEvent) -> anyhow::Result<()> {
    let booking_id: uuid::Uuid = e
        .stream
        .stream_id
        .parse()
        .context("a booking stream is named by its id")?;
    let (outcome, by) = match event {
        BookingEvent::AppointmentRequested {
            service_id,
            service_name,
            price,
            resource,
            appointment,
            customer,
            channel,
            ..
        } => {
            let currency = price.currency();
            sqlx::query!(
                "insert into analytics.bookings (tenant_id, booking_id, service_id, service_name,
                     resource, channel, customer_phone, price_minor, currency, booked_at,
                     starts_at, ends_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                 on conflict (tenant_id, booking_id) do nothing",
                e.tenant_id,
                booking_id,
                service_id.uuid(),
                service_name,
                resource.as_str(),
                channel.as_str(),
                customer.phone.as_str(),
                price.minor(),
                currency.as_str(),
                e.recorded_at,
                appointment.start,
                appointment.end
            )
            .execute(conn)
            .await?;
            return Ok(());
        }
        BookingEvent::AppointmentRescheduled {
            to, to_resource, ..
        } => {
            sqlx::query!(
                "update analytics.bookings
                    set starts_at = $3, ends_at = $4, resource = $5, moves = moves + 1
                  where tenant_id = $1 and booking_id = $2",
                e.tenant_id,
                booking_id,
                to.start,
                to.end,
                to_resource.as_str()
            )
            .execute(conn)
            .await?;
            return Ok(());
        }
        BookingEvent::AppointmentCancelled { by, .. } => ("cancelled", Some(by)),
        BookingEvent::AppointmentCompleted => ("completed", None),
        BookingEvent::AppointmentMarkedNoShow => ("no_show", None),
        BookingEvent::AppointmentConfirmed
        | BookingEvent::RemindersScheduled { .. }
        | BookingEvent::ReminderSent { .. }
        | BookingEvent::ReminderSkipped { .. }
        | BookingEvent::AttendanceConfirmed
        | BookingEvent::CustomerArrived { .. } => return Ok(()),
    };
    let by = by.map(|p| match p {
        Party::Customer => "customer",
        Party::Business => "business",
    });
    sqlx::query!(
        "update analytics.bookings
            set outcome = $3,
                cancelled_at = case when $3 = 'cancelled' then $4::timestamptz end,
                cancelled_by = $5
          where tenant_id = $1 and booking_id = $2",
        e.tenant_id,
        booking_id,
        outcome,
        e.recorded_at,
        by
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn conversation(
    conn: &mut PgConnection,
    e: &Envelope,
    event: ConversationEvent,
) -> anyhow::Result<()> {
    // A session is its customer's by subject id (the conversation stream's name), never by phone.
    let (tenant, subject, at) = (e.tenant_id, e.stream.stream_id.as_str(), e.recorded_at);
    match event {
        ConversationEvent::MessageReceived { .. } => {
            count_message(conn, e, Direction::In).await?;
            let open = sqlx::query!(
                "update analytics.sessions set messages_in = messages_in + 1
                  where tenant_id = $1 and subject = $2 and not ended",
                tenant,
                subject
            )
            .execute(&mut *conn)
            .await?;
            if open.rows_affected() == 0 {
                sqlx::query!(
                    "insert into analytics.sessions (tenant_id, subject, started_at, messages_in)
                     values ($1, $2, $3, 1) on conflict do nothing",
                    tenant,
                    subject,
                    at
                )
                .execute(conn)
                .await?;
            }
        }
        ConversationEvent::ConversationExpired => {
            sqlx::query!(
                "update analytics.sessions set ended = true
                  where tenant_id = $1 and subject = $2 and not ended",
                tenant,
                subject
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::BotReplied { .. } | ConversationEvent::StaffReplied { .. } => {
            if matches!(event, ConversationEvent::StaffReplied { .. }) {
                sqlx::query!(
                    "update analytics.sessions set staff_replied_at = $3
                      where tenant_id = $1 and subject = $2 and not ended
                        and waiting_since is not null and staff_replied_at is null",
                    tenant,
                    subject,
                    at
                )
                .execute(&mut *conn)
                .await?;
            }
            count_message(conn, e, Direction::Out).await?;
            sqlx::query!(
                "update analytics.sessions set messages_out = messages_out + 1
                  where tenant_id = $1 and subject = $2 and not ended",
                tenant,
                subject
            )
            .execute(conn)
            .await?;
        }
        // The first reply's time is when Meta took it, not when it was decided (in the same
        // transaction as the message it answers).
        ConversationEvent::OutboundMessageSent { .. } => {
            sqlx::query!(
                "update analytics.sessions set first_reply_at = $3
                  where tenant_id = $1 and subject = $2 and not ended and first_reply_at is null",
                tenant,
                subject,
                at
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::BotStateChanged { state } => {
            if state.step == Step::ChoosingTime || state.start.is_some() {
                sqlx::query!(
                    "update analytics.sessions set reached_time = true
                      where tenant_id = $1 and subject = $2 and not ended and not reached_time",
                    tenant,
                    subject
                )
                .execute(conn)
                .await?;
            }
        }
        // Asked for by the customer (or given up by the bot): a person is awaited from now.
        ConversationEvent::HandedOffToHuman => {
            sqlx::query!(
                "update analytics.sessions
                    set handed_off = true, waiting_since = coalesce(waiting_since, $3)
                  where tenant_id = $1 and subject = $2 and not ended",
                tenant,
                subject,
                at
            )
            .execute(conn)
            .await?;
        }
        // Taken over by the business: not finished by the bot, but nobody was kept waiting.
        ConversationEvent::StaffTookOver { .. } => {
            sqlx::query!(
                "update analytics.sessions set handed_off = true
                  where tenant_id = $1 and subject = $2 and not ended",
                tenant,
                subject
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::BookingAttached { booking_id } => {
            sqlx::query!(
                "update analytics.sessions set booking_id = $3, booked_at = $4
                  where tenant_id = $1 and subject = $2 and not ended and booking_id is null
                    and started_at >= $5",
                tenant,
                subject,
                booking_id.uuid(),
                at,
                at - BOOKED_WITHIN
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::CustomerErased { bookings } => {
            // Their bookings still count, by no one: the stand-in a rebuild reads.
            let subject: uuid::Uuid = subject.parse()?;
            let bookings: Vec<uuid::Uuid> = bookings.iter().map(|b| b.uuid()).collect();
            let stand_in = domain::personal::erased_phone(subject);
            sqlx::query!(
                "update analytics.bookings set customer_phone = $3
                  where tenant_id = $1 and booking_id = any($2)",
                tenant,
                &bookings,
                stand_in.as_str()
            )
            .execute(conn)
            .await?;
        }
        ConversationEvent::OutboundMessageFailed { .. }
        | ConversationEvent::OutboundStatusChanged { .. }
        | ConversationEvent::AnswerDeferred { .. }
        | ConversationEvent::DeferralEnded { .. }
        | ConversationEvent::ErasureRequested { .. }
        | ConversationEvent::HandedBackToBot { .. } => {}
    }
    Ok(())
}

enum Direction {
    In,
    Out,
}

/// One message on the tenant's local day (UTC until the tenant's zone is known).
async fn count_message(
    conn: &mut PgConnection,
    e: &Envelope,
    direction: Direction,
) -> anyhow::Result<()> {
    let (inbound, outbound) = match direction {
        Direction::In => (1, 0),
        Direction::Out => (0, 1),
    };
    sqlx::query!(
        "insert into analytics.messages_daily (tenant_id, day, inbound, outbound)
         select $1, ($2::timestamptz at time zone coalesce(
                    (select time_zone from analytics.tenants where tenant_id = $1), 'UTC'))::date,
                $3, $4
         on conflict (tenant_id, day) do update
             set inbound = messages_daily.inbound + excluded.inbound,
                 outbound = messages_daily.outbound + excluded.outbound",
        e.tenant_id,
        e.recorded_at,
        inbound,
        outbound
    )
    .execute(conn)
    .await?;
    Ok(())
}
