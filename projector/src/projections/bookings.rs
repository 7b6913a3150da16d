//! `rm_bookings` (filterable by status, date range and customer) and `rm_booking_history`
//! (every event of a booking with who did it).

use domain::DomainEvent as _;
use domain::booking::{BookingEvent, BookingStatus};
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::decode;

/// One tenant's events, in order: each booking's row statement by statement, the history rows
/// together in one statement (written before an erasure, which rewrites them).
pub async fn apply_all(conn: &mut PgConnection, events: &[&RecordedEvent]) -> anyhow::Result<()> {
    let mut history = History::default();
    for event in events {
        if event.stream.stream_type != BookingEvent::STREAM_TYPE {
            // A conversation's stream: the erasure of a customer these rows name.
            if let Some(erased) = crate::projection::erasure(event)? {
                history.write(conn).await?;
                scrub(conn, event, &erased).await?;
            }
            continue;
        }
        apply_row(conn, event).await?;
        history.push(event)?;
    }
    history.write(conn).await
}

/// Rows of `rm_booking_history` not written yet.
#[derive(Default)]
struct History {
    tenant: Option<uuid::Uuid>,
    bookings: Vec<uuid::Uuid>,
    versions: Vec<i32>,
    event_types: Vec<String>,
    payloads: Vec<serde_json::Value>,
    actors: Vec<Option<String>>,
    correlations: Vec<Option<uuid::Uuid>>,
    at: Vec<chrono::DateTime<chrono::Utc>>,
}

impl History {
    fn push(&mut self, event: &RecordedEvent) -> anyhow::Result<()> {
        self.tenant = Some(event.tenant_id);
        self.bookings.push(event.stream.stream_id.parse()?);
        self.versions.push(event.version as i32);
        self.event_types.push(event.event_type.clone());
        self.payloads.push(event.payload.clone());
        self.actors.push(event.metadata.actor.clone());
        self.correlations.push(event.metadata.correlation_id);
        self.at.push(event.recorded_at);
        Ok(())
    }

    async fn write(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        let Some(tenant) = self.tenant else {
            return Ok(());
        };
        sqlx::query!(
            "insert into rm_booking_history (tenant_id, booking_id, version, event_type, payload,
                 actor, correlation_id, recorded_at)
             select $1, * from unnest($2::uuid[], $3::int[], $4::text[], $5::jsonb[], $6::text[],
                 $7::uuid[], $8::timestamptz[])",
            tenant,
            &self.bookings,
            &self.versions,
            &self.event_types,
            &self.payloads,
            &self.actors as _,
            &self.correlations as _,
            &self.at
        )
        .execute(conn)
        .await?;
        *self = History::default();
        Ok(())
    }
}

/// A booking's row (`rm_bookings`) after one of its events.
async fn apply_row(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let tenant = event.tenant_id;
    let booking_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    let version = event.version as i32;
    let status = match decode::<BookingEvent>(event)? {
        BookingEvent::AppointmentRequested {
            reference,
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
                "insert into rm_bookings (tenant_id, booking_id, reference, service_id,
                     service_name, resource, starts_at, ends_at, status, channel, customer_phone,
                     customer_name, price_minor, currency, version, created_at, updated_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
                     $16)",
                tenant,
                booking_id,
                reference,
                service_id.uuid(),
                service_name,
                resource.as_str(),
                appointment.start,
                appointment.end,
                BookingStatus::Requested.as_str(),
                channel.as_str(),
                customer.phone.as_str(),
                customer.name.as_deref(),
                price.minor(),
                currency.as_str(),
                version,
                at
            )
            .execute(&mut *conn)
            .await?;
            None
        }
        BookingEvent::AppointmentRescheduled {
            to, to_resource, ..
        } => {
            sqlx::query!(
                "update rm_bookings set starts_at = $3, ends_at = $4, resource = $5, version = $6,
                     updated_at = $7
                 where tenant_id = $1 and booking_id = $2",
                tenant,
                booking_id,
                to.start,
                to.end,
                to_resource.as_str(),
                version,
                at
            )
            .execute(&mut *conn)
            .await?;
            None
        }
        BookingEvent::AppointmentConfirmed => Some(BookingStatus::Confirmed),
        BookingEvent::AppointmentCancelled { .. } => Some(BookingStatus::Cancelled),
        BookingEvent::AppointmentCompleted => Some(BookingStatus::Completed),
        BookingEvent::AppointmentMarkedNoShow => Some(BookingStatus::NoShow),
        BookingEvent::RemindersScheduled { at: due } => {
            sqlx::query!(
                "update rm_bookings set reminders_due = $3,
                     next_reminder_at = (select min(r) from unnest($3::timestamptz[]) r),
                     version = $4, updated_at = $5
                 where tenant_id = $1 and booking_id = $2",
                tenant,
                booking_id,
                &due,
                version,
                at
            )
            .execute(&mut *conn)
            .await?;
            None
        }
        BookingEvent::ReminderSent { at: done } | BookingEvent::ReminderSkipped { at: done } => {
            sqlx::query!(
                "update rm_bookings set reminders_due = array_remove(reminders_due, $3),
                     next_reminder_at = (select min(r) from unnest(array_remove(reminders_due, $3)) r),
                     version = $4, updated_at = $5
                 where tenant_id = $1 and booking_id = $2",
                tenant,
                booking_id,
                done,
                version,
                at
            )
            .execute(&mut *conn)
            .await?;
            None
        }
        BookingEvent::AttendanceConfirmed => {
            sqlx::query!(
                "update rm_bookings set attendance_confirmed_at = $3, version = $4, updated_at = $3
                 where tenant_id = $1 and booking_id = $2",
                tenant,
                booking_id,
                at,
                version
            )
            .execute(&mut *conn)
            .await?;
            None
        }
        BookingEvent::CustomerArrived { at: arrived } => {
            sqlx::query!(
                "update rm_bookings set arrived_at = $3, version = $4, updated_at = $5
                 where tenant_id = $1 and booking_id = $2",
                tenant,
                booking_id,
                arrived,
                version,
                at
            )
            .execute(&mut *conn)
            .await?;
            None
        }
    };
    if let Some(status) = status {
        // A booking no longer ahead has no reminder to find.
        let active = matches!(status, BookingStatus::Requested | BookingStatus::Confirmed);
        sqlx::query!(
            "update rm_bookings set status = $3, version = $4, updated_at = $5,
                 next_reminder_at = case when $6 then next_reminder_at end
             where tenant_id = $1 and booking_id = $2",
            tenant,
            booking_id,
            status.as_str(),
            version,
            at,
            active
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// An erased customer's bookings: their phone and name become the stand-ins a rebuild reads
/// from the log (`domain::personal`), in the booking and in its request's history.
pub(crate) async fn scrub(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    erased: &crate::projection::Erasure,
) -> anyhow::Result<()> {
    let phone = domain::personal::erased_phone(erased.subject);
    let customer = domain::personal::stand_in(domain::personal::StandIn::Customer, erased.subject);
    sqlx::query!(
        "update rm_bookings set customer_phone = $3, customer_name = null
          where tenant_id = $1 and booking_id = any($2)",
        event.tenant_id,
        &erased.bookings,
        phone.as_str()
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update rm_booking_history set payload = jsonb_set(payload, '{customer}', $3)
          where tenant_id = $1 and booking_id = any($2) and event_type = 'AppointmentRequested'",
        event.tenant_id,
        &erased.bookings,
        customer
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}
