//! `rm_agenda`: the intervals each resource holds on each local day, which availability reads.

use domain::agenda::AgendaEvent;
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
            sqlx::query!(
                "insert into rm_agenda (tenant_id, resource, day, booking_id, starts_at, ends_at)
                 values ($1, $2, $3, $4, $5, $6)
                 on conflict (tenant_id, resource, day, booking_id)
                 do update set starts_at = excluded.starts_at, ends_at = excluded.ends_at",
                event.tenant_id,
                resource.as_str(),
                day,
                booking_id.uuid(),
                interval.start,
                interval.end
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
