//! `rm_bookings` (filterable by status, date range and customer) and `rm_booking_history`
//! (every event of a booking with who did it).

use domain::booking::BookingEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;
use sqlx::types::Json;

use super::label;
use crate::projection::{Target, decode};

pub async fn apply(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let table = target.table("rm_bookings");
    let history = target.table("rm_booking_history");
    let booking_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    match decode::<BookingEvent>(event)? {
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
            sqlx::query(&format!(
                "insert into {table} (tenant_id, booking_id, reference, service_id, service_name,
                     resource, starts_at, ends_at, status, channel, customer_phone, customer_name,
                     price_minor, currency, version, created_at, updated_at)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, $10, $11, $12, $13,
                     $14, $15, $15)"
            ))
            .bind(event.tenant_id)
            .bind(booking_id)
            .bind(reference)
            .bind(service_id.uuid())
            .bind(service_name)
            .bind(resource.as_str())
            .bind(appointment.start)
            .bind(appointment.end)
            .bind(label(&channel))
            .bind(customer.phone.as_str())
            .bind(customer.name.as_deref())
            .bind(price.minor())
            .bind(price.currency().as_str())
            .bind(event.version as i32)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        BookingEvent::AppointmentRescheduled {
            to, to_resource, ..
        } => {
            sqlx::query(&format!(
                "update {table} set starts_at = $3, ends_at = $4, resource = $5, version = $6,
                     updated_at = $7
                 where tenant_id = $1 and booking_id = $2"
            ))
            .bind(event.tenant_id)
            .bind(booking_id)
            .bind(to.start)
            .bind(to.end)
            .bind(to_resource.as_str())
            .bind(event.version as i32)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        other => {
            let status = match other {
                BookingEvent::AppointmentConfirmed => "confirmed",
                BookingEvent::AppointmentCancelled { .. } => "cancelled",
                BookingEvent::AppointmentCompleted => "completed",
                _ => "no_show",
            };
            sqlx::query(&format!(
                "update {table} set status = $3, version = $4, updated_at = $5
                 where tenant_id = $1 and booking_id = $2"
            ))
            .bind(event.tenant_id)
            .bind(booking_id)
            .bind(status)
            .bind(event.version as i32)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
    }
    sqlx::query(&format!(
        "insert into {history} (tenant_id, booking_id, version, event_type, payload, actor,
             correlation_id, recorded_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(event.tenant_id)
    .bind(booking_id)
    .bind(event.version as i32)
    .bind(&event.event_type)
    .bind(Json(&event.payload))
    .bind(event.metadata.actor.as_deref())
    .bind(event.metadata.correlation_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}
