//! `rm_bookings` (filterable by status, date range and customer) and `rm_booking_history`
//! (every event of a booking with who did it).

use domain::booking::{BookingEvent, BookingStatus};
use eventstore::RecordedEvent;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::projection::decode;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
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
    sqlx::query!(
        "insert into rm_booking_history (tenant_id, booking_id, version, event_type, payload,
             actor, correlation_id, recorded_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant,
        booking_id,
        version,
        &event.event_type,
        Json(&event.payload) as _,
        event.metadata.actor.as_deref(),
        event.metadata.correlation_id,
        at
    )
    .execute(conn)
    .await?;
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
