//! The conversation clock: a reactor that turns time into conversation commands. Every
//! `every` it finds, across tenants, the reservations whose time ran out (`rm_agenda`), the
//! answers due to customers who wrote faster than the bot may answer (`rm_conversations`) and
//! the reminders due before appointments (`rm_bookings`), and gives each its command
//! (`app::bookings::expire_reservation`, `app::conversation::take_deferred_turn`,
//! `app::bookings::send_reminder`); the domain decides. What it reads are read
//! models, so it lags the log by the projections' delay; what it decides is from the streams
//! themselves, and a command that finds nothing due appends nothing, so running twice, or on
//! two instances, is harmless. A reservation that ran out takes nothing even before the clock
//! expires it: the agenda counts only live ones.
//!
//! Time is its input: [`ConversationClock::run_once`] takes `now`, which is how tests move
//! time.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::ids::{BookingId, ResourceId};
use domain::values::PhoneNumber;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub struct ConversationClock {
    pub app: app::App,
    /// Cross-tenant reads of `rm_agenda` and `rm_conversations` (the operator role).
    pub operator: PgPool,
    pub every: Duration,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ticked {
    /// Reservations that ran out.
    pub expired: usize,
    /// Deferred messages answered.
    pub answered: usize,
    /// Reminders sent.
    pub reminded: usize,
}

/// At most this many of each per run; the next run takes the rest.
const BATCH: i64 = 500;

impl ConversationClock {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        loop {
            if let Err(err) = self.run_once(Utc::now()).await {
                tracing::warn!(error = %format!("{err:#}"), "conversation clock run failed");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// Gives everything due at `now` its command. One failure does not hold up the others.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<Ticked> {
        let mut ticked = Ticked::default();
        let due = sqlx::query!(
            "select tenant_id, resource, day, booking_id from rm_agenda
              where held_until <= $1 order by held_until limit $2",
            now,
            BATCH
        )
        .fetch_all(&self.operator)
        .await?;
        for row in due {
            let resource = ResourceId::parse(&row.resource)?;
            let booking_id = BookingId::from_uuid(row.booking_id);
            match app::bookings::expire_reservation(
                &self.app,
                row.tenant_id,
                &resource,
                row.day,
                booking_id,
                now,
            )
            .await
            {
                Ok(done) if done.value => ticked.expired += 1,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(tenant = %row.tenant_id, %booking_id, error = %err, "a reservation could not be expired")
                }
            }
        }
        let due = sqlx::query!(
            "select tenant_id, customer_phone from rm_conversations
              where answer_due_at <= $1 order by answer_due_at limit $2",
            now,
            BATCH
        )
        .fetch_all(&self.operator)
        .await?;
        for row in due {
            let customer = PhoneNumber::parse(&row.customer_phone)?;
            match app::conversation::take_deferred_turn(&self.app, row.tenant_id, &customer, now)
                .await
            {
                Ok(Some(_)) => ticked.answered += 1,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(tenant = %row.tenant_id, error = %err, "a deferred answer could not be taken")
                }
            }
        }
        let due = sqlx::query!(
            r#"select tenant_id, booking_id, next_reminder_at as "at!" from rm_bookings
                where next_reminder_at <= $1 order by next_reminder_at limit $2"#,
            now,
            BATCH
        )
        .fetch_all(&self.operator)
        .await?;
        for row in due {
            let booking_id = BookingId::from_uuid(row.booking_id);
            match app::bookings::send_reminder(&self.app, row.tenant_id, booking_id, row.at, now)
                .await
            {
                Ok(sent) if sent.value => ticked.reminded += 1,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(tenant = %row.tenant_id, %booking_id, error = %err, "a reminder could not be sent")
                }
            }
        }
        Ok(ticked)
    }
}
