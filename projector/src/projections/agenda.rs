//! `rm_agenda`: the intervals each resource holds on each local day, which availability reads.

use domain::agenda::AgendaEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::{Target, decode};

pub async fn apply(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let table = target.table("rm_agenda");
    match decode::<AgendaEvent>(event)? {
        AgendaEvent::SlotHeld {
            resource,
            day,
            booking_id,
            interval,
        } => {
            sqlx::query(&format!(
                "insert into {table} (tenant_id, resource, day, booking_id, starts_at, ends_at)
                 values ($1, $2, $3, $4, $5, $6)
                 on conflict (tenant_id, resource, day, booking_id)
                 do update set starts_at = excluded.starts_at, ends_at = excluded.ends_at"
            ))
            .bind(event.tenant_id)
            .bind(resource.as_str())
            .bind(day)
            .bind(booking_id.uuid())
            .bind(interval.start)
            .bind(interval.end)
            .execute(conn)
            .await?;
        }
        AgendaEvent::SlotReleased {
            resource,
            day,
            booking_id,
        } => {
            sqlx::query(&format!(
                "delete from {table}
                 where tenant_id = $1 and resource = $2 and day = $3 and booking_id = $4"
            ))
            .bind(event.tenant_id)
            .bind(resource.as_str())
            .bind(day)
            .bind(booking_id.uuid())
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
