//! `rm_bookings` (filterable by status, date range and customer) and `rm_booking_history`
//! (every event of a booking with who did it).

use domain::DomainEvent as _;
use domain::booking::{BookingEvent, BookingStatus};
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::decode;

/// A batch's events, each tenant's in their order. A booking requested here has its row folded
/// from its events in memory (found by tenant and id) and written with the others, every
/// tenant's, in one statement; any other booking's row statement by statement; the history rows
/// together in one statement. Both gathered writes go before an erasure (which rewrites those
/// rows) and, for the folded rows, before an event they do not fold (which then updates the
/// written row).
pub async fn apply_all(conn: &mut PgConnection, events: &[&RecordedEvent]) -> anyhow::Result<()> {
    let mut history = History::default();
    let mut requested = Requested::default();
    for event in events {
        if event.stream.stream_type != BookingEvent::STREAM_TYPE {
            // A conversation's stream: the erasure of a customer these rows name.
            if let Some(erased) = crate::projection::erasure(event)? {
                history.write(conn).await?;
                requested.write(conn).await?;
                scrub(conn, event, &erased).await?;
            }
            continue;
        }
        let decoded = decode::<BookingEvent>(event)?;
        match requested.fold(event, &decoded)? {
            Folded::Yes => {}
            Folded::NotRequestedHere => apply_row(conn, event, decoded).await?,
            Folded::Unfoldable => {
                requested.write(conn).await?;
                apply_row(conn, event, decoded).await?;
            }
        }
        history.push(event)?;
    }
    requested.write(conn).await?;
    history.write(conn).await
}

/// Whether [`Requested::fold`] took an event.
enum Folded {
    Yes,
    /// Its booking was requested before this batch (or its row written already).
    NotRequestedHere,
    /// Its booking's row is folded here, but the event is one only a statement applies
    /// (reminders); the folded rows are written first.
    Unfoldable,
}

/// The rows of bookings requested in this batch, folded from their events, not written yet.
#[derive(Default)]
struct Requested {
    rows: Vec<BookingRow>,
    /// Where each booking's row is, by tenant and booking id.
    index: std::collections::HashMap<(uuid::Uuid, uuid::Uuid), usize>,
}

/// A booking's `rm_bookings` row, as its statements would leave it.
struct BookingRow {
    tenant: uuid::Uuid,
    booking_id: uuid::Uuid,
    reference: String,
    service_id: uuid::Uuid,
    service_name: String,
    resource: String,
    starts_at: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
    status: BookingStatus,
    channel: String,
    customer_phone: String,
    customer_name: Option<String>,
    price_minor: i64,
    currency: String,
    version: i32,
    created_at: chrono::DateTime<chrono::Utc>,
    updated_at: chrono::DateTime<chrono::Utc>,
    attendance_confirmed_at: Option<chrono::DateTime<chrono::Utc>>,
    arrived_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Requested {
    fn fold(&mut self, event: &RecordedEvent, decoded: &BookingEvent) -> anyhow::Result<Folded> {
        let booking_id: uuid::Uuid = event.stream.stream_id.parse()?;
        let at = event.recorded_at;
        if let BookingEvent::AppointmentRequested {
            reference,
            service_id,
            service_name,
            price,
            resource,
            appointment,
            customer,
            channel,
            ..
        } = decoded
        {
            self.index
                .insert((event.tenant_id, booking_id), self.rows.len());
            self.rows.push(BookingRow {
                tenant: event.tenant_id,
                booking_id,
                reference: reference.clone(),
                service_id: service_id.uuid(),
                service_name: service_name.clone(),
                resource: resource.as_str().to_owned(),
                starts_at: appointment.start,
                ends_at: appointment.end,
                status: BookingStatus::Requested,
                channel: channel.as_str().to_owned(),
                customer_phone: customer.phone.as_str().to_owned(),
                customer_name: customer.name.clone(),
                price_minor: price.minor(),
                currency: price.currency().as_str().to_owned(),
                version: event.version as i32,
                created_at: at,
                updated_at: at,
                attendance_confirmed_at: None,
                arrived_at: None,
            });
            return Ok(Folded::Yes);
        }
        let Some(row) = self
            .index
            .get(&(event.tenant_id, booking_id))
            .map(|k| &mut self.rows[*k])
        else {
            return Ok(Folded::NotRequestedHere);
        };
        match decoded {
            BookingEvent::AppointmentRequested { .. } => unreachable!("folded above"),
            BookingEvent::AppointmentRescheduled {
                to, to_resource, ..
            } => {
                row.starts_at = to.start;
                row.ends_at = to.end;
                row.resource = to_resource.as_str().to_owned();
                row.updated_at = at;
            }
            BookingEvent::AppointmentConfirmed => row.status = BookingStatus::Confirmed,
            BookingEvent::AppointmentCancelled { .. } => row.status = BookingStatus::Cancelled,
            BookingEvent::AppointmentCompleted => row.status = BookingStatus::Completed,
            BookingEvent::AppointmentMarkedNoShow => row.status = BookingStatus::NoShow,
            BookingEvent::AttendanceConfirmed => row.attendance_confirmed_at = Some(at),
            BookingEvent::CustomerArrived { at: arrived } => row.arrived_at = Some(*arrived),
            BookingEvent::RemindersScheduled { .. }
            | BookingEvent::ReminderSent { .. }
            | BookingEvent::ReminderSkipped { .. } => return Ok(Folded::Unfoldable),
        }
        row.version = event.version as i32;
        row.updated_at = at;
        Ok(Folded::Yes)
    }

    async fn write(&mut self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.rows);
        self.index.clear();
        let column = |f: fn(&BookingRow) -> String| rows.iter().map(f).collect::<Vec<_>>();
        sqlx::query!(
            "insert into rm_bookings (tenant_id, booking_id, reference, service_id, service_name,
                 resource, starts_at, ends_at, status, channel, customer_phone, customer_name,
                 price_minor, currency, version, created_at, updated_at, attendance_confirmed_at,
                 arrived_at)
             select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[],
                 $6::text[], $7::timestamptz[], $8::timestamptz[], $9::text[], $10::text[],
                 $11::text[], $12::text[], $13::bigint[], $14::text[], $15::int[],
                 $16::timestamptz[], $17::timestamptz[], $18::timestamptz[], $19::timestamptz[])",
            &rows.iter().map(|r| r.tenant).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.booking_id).collect::<Vec<_>>(),
            &column(|r| r.reference.clone()),
            &rows.iter().map(|r| r.service_id).collect::<Vec<_>>(),
            &column(|r| r.service_name.clone()),
            &column(|r| r.resource.clone()),
            &rows.iter().map(|r| r.starts_at).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.ends_at).collect::<Vec<_>>(),
            &column(|r| r.status.as_str().to_owned()),
            &column(|r| r.channel.clone()),
            &column(|r| r.customer_phone.clone()),
            &rows
                .iter()
                .map(|r| r.customer_name.clone())
                .collect::<Vec<_>>() as _,
            &rows.iter().map(|r| r.price_minor).collect::<Vec<_>>(),
            &column(|r| r.currency.clone()),
            &rows.iter().map(|r| r.version).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.created_at).collect::<Vec<_>>(),
            &rows.iter().map(|r| r.updated_at).collect::<Vec<_>>(),
            &rows
                .iter()
                .map(|r| r.attendance_confirmed_at)
                .collect::<Vec<_>>() as _,
            &rows.iter().map(|r| r.arrived_at).collect::<Vec<_>>() as _
        )
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// Rows of `rm_booking_history` not written yet.
#[derive(Default)]
struct History {
    tenants: Vec<uuid::Uuid>,
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
        self.tenants.push(event.tenant_id);
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
        if self.tenants.is_empty() {
            return Ok(());
        }
        sqlx::query!(
            "insert into rm_booking_history (tenant_id, booking_id, version, event_type, payload,
                 actor, correlation_id, recorded_at)
             select * from unnest($1::uuid[], $2::uuid[], $3::int[], $4::text[], $5::jsonb[],
                 $6::text[], $7::uuid[], $8::timestamptz[])",
            &self.tenants,
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
async fn apply_row(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    decoded: BookingEvent,
) -> anyhow::Result<()> {
    let tenant = event.tenant_id;
    let booking_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    let version = event.version as i32;
    let status = match decoded {
        BookingEvent::AppointmentRequested { .. } => {
            anyhow::bail!("a request is folded by apply_all")
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
