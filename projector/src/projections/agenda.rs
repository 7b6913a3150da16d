//! `rm_agenda`: the intervals each resource holds on each local day, which availability reads:
//! bookings' holds, and reservations (`held_until`) until they end.

use chrono::{DateTime, Utc};
use domain::agenda::{AgendaEvent, Interval};
use domain::ids::{BookingId, ResourceId};
use domain::values::LocalDate;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::decode;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    match decode::<AgendaEvent>(event)? {
        AgendaEvent::SlotHeld {
            resource,
            day,
            booking_id,
            interval,
        } => {
            hold(conn, event, &resource, day, booking_id, interval, None).await?;
        }
        AgendaEvent::SlotReserved {
            resource,
            day,
            booking_id,
            interval,
            until,
        } => {
            hold(
                conn,
                event,
                &resource,
                day,
                booking_id,
                interval,
                Some(until),
            )
            .await?;
        }
        AgendaEvent::ReservationReleased {
            resource,
            day,
            booking_id,
        }
        | AgendaEvent::ReservationExpired {
            resource,
            day,
            booking_id,
        } => {
            sqlx::query!(
                "delete from rm_agenda
                 where tenant_id = $1 and resource = $2 and day = $3 and booking_id = $4
                   and held_until is not null",
                event.tenant_id,
                resource.as_str(),
                day,
                booking_id.uuid()
            )
            .execute(conn)
            .await?;
        }
        AgendaEvent::SlotReleased {
            resource,
            day,
            booking_id,
        } => {
            sqlx::query!(
                "delete from rm_agenda
                 where tenant_id = $1 and resource = $2 and day = $3 and booking_id = $4",
                event.tenant_id,
                resource.as_str(),
                day,
                booking_id.uuid()
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// A booking's hold (`until` none) or a reservation; a booking that follows its reservation
/// turns the row into its hold.
async fn hold(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    resource: &ResourceId,
    day: LocalDate,
    booking_id: BookingId,
    interval: Interval,
    until: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    sqlx::query!(
        "insert into rm_agenda (tenant_id, resource, day, booking_id, starts_at, ends_at, held_until)
         values ($1, $2, $3, $4, $5, $6, $7)
         on conflict (tenant_id, resource, day, booking_id)
         do update set starts_at = excluded.starts_at, ends_at = excluded.ends_at,
                       held_until = excluded.held_until",
        event.tenant_id,
        resource.as_str(),
        day,
        booking_id.uuid(),
        interval.start,
        interval.end,
        until
    )
    .execute(conn)
    .await?;
    Ok(())
}
