//! The billing clock: a reactor that turns time and counts into billing commands. Every
//! `every` it finds, across tenants, the trials about to end or ended, the grace periods with
//! a reminder due or run out, and the months whose usage crossed 80 % or 100 % of a plan's
//! limit, and gives each tenant's billing the
//! command (`app::billing::tick`, `app::billing::report_usage`); the domain decides. What it
//! reads are read models (`rm_billing`, `rm_usage`, `rm_billing_alerts`), so it lags the log
//! by the projections' delay; what it decides is from the billing stream itself, and a
//! command that finds nothing due appends nothing, so running twice, or on two instances, is
//! harmless.
//!
//! Time is its input: [`BillingClock::run_once`] takes `now`, which is how tests move time.
//! A suspension it decides drops the tenant's cached status, so the APIs answer 423 at once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::billing::{BillingStatus, UsageMonth};
use domain::plan::{Metric, Plan};
use platform::tenant_gate::TenantStatusCache;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct BillingClock {
    pub app: app::App,
    /// Cross-tenant reads of the billing read models (the operator role).
    pub operator: PgPool,
    pub gates: TenantStatusCache,
    pub every: Duration,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ticked {
    /// Tenants whose time moved their billing (a notice or reminder due, a trial ended, a
    /// grace period ended in suspension).
    pub expired: usize,
    /// Usage thresholds reported.
    pub reported: usize,
}

impl BillingClock {
    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        loop {
            if let Err(err) = self.run_once(Utc::now()).await {
                tracing::warn!(error = %format!("{err:#}"), "billing clock run failed");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// Gives every tenant with something due at `now` its command.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<Ticked> {
        let mut ticked = Ticked::default();
        // Trials within their last days (the notice, then the end), and every grace period
        // (its reminders, then its end); the domain decides what is due.
        let due = sqlx::query_scalar!(
            "select tenant_id from rm_billing
              where (status = $1 and subscription_id is null and trial_ends_at <= $3)
                 or status = $2",
            BillingStatus::Trialing.as_str(),
            BillingStatus::PastDue.as_str(),
            now + domain::billing::TRIAL_NOTICE
        )
        .fetch_all(&self.operator)
        .await?;
        for tenant_id in due {
            let done = app::billing::tick(&self.app, tenant_id, now).await?;
            if done.position.is_some() {
                ticked.expired += 1;
                if done.value.status == BillingStatus::Suspended {
                    self.gates.forget(tenant_id).await;
                }
            }
        }
        let month = UsageMonth::of(now);
        for (tenant_id, metric, used) in self.near_limits(month).await? {
            let done =
                app::billing::report_usage(&self.app, tenant_id, month, metric, used).await?;
            if done.position.is_some() {
                ticked.reported += 1;
            }
        }
        Ok(ticked)
    }

    /// This month's counts at 80 % or more of the plan's limit that no alert reports yet at
    /// their threshold and limit.
    async fn near_limits(&self, month: UsageMonth) -> anyhow::Result<Vec<(Uuid, Metric, u32)>> {
        let rows = sqlx::query!(
            r#"select u.tenant_id, b.plan, u.bookings_created as bookings,
                      u.messages_in + u.messages_out as "messages!",
                      ab.threshold as "bookings_threshold?", ab."limit" as "bookings_limit?",
                      am.threshold as "messages_threshold?", am."limit" as "messages_limit?"
                 from rm_usage u
                 join rm_billing b on b.tenant_id = u.tenant_id
                 left join rm_billing_alerts ab
                   on ab.tenant_id = u.tenant_id and ab.month = u.period and ab.metric = 'bookings'
                 left join rm_billing_alerts am
                   on am.tenant_id = u.tenant_id and am.month = u.period and am.metric = 'messages'
                where u.period = $1"#,
            month.to_string()
        )
        .fetch_all(&self.operator)
        .await?;
        let mut due = Vec::new();
        for row in rows {
            let Some(plan) = Plan::parse(&row.plan) else {
                continue;
            };
            for (metric, used, reported) in [
                (
                    Metric::Bookings,
                    row.bookings,
                    row.bookings_threshold.zip(row.bookings_limit),
                ),
                (
                    Metric::Messages,
                    row.messages,
                    row.messages_threshold.zip(row.messages_limit),
                ),
            ] {
                let Some(limit) = plan.limits().of(metric) else {
                    continue;
                };
                let used = u32::try_from(used).unwrap_or(u32::MAX);
                let threshold: i16 = match domain::plan::limit_status(used, Some(limit)) {
                    domain::plan::LimitStatus::Within => continue,
                    domain::plan::LimitStatus::NearLimit => 80,
                    domain::plan::LimitStatus::Reached => 100,
                };
                let news = reported
                    .is_none_or(|(at, of)| i64::from(of) != i64::from(limit) || threshold > at);
                if news {
                    due.push((row.tenant_id, metric, used));
                }
            }
        }
        Ok(due)
    }
}
