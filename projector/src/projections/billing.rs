//! `rm_billing` (a business's subscription as it stands), `rm_billing_alerts` (the usage
//! thresholds its months reached: the dashboard's banner) and `rm_invoices`. The status
//! follows the aggregate's own evolution (`domain::billing`), event by event.

use domain::billing::{BillingEvent, BillingStatus, InvoiceFacts};
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::decode;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    use BillingEvent as E;
    use BillingStatus as S;
    let (tenant, at) = (event.tenant_id, event.recorded_at);
    match decode::<BillingEvent>(event)? {
        E::TrialStarted { plan, ends_at, .. } => {
            sqlx::query!(
                "insert into rm_billing (tenant_id, status, plan, trial_ends_at, updated_at)
                 values ($1, $2, $3, $4, $5)",
                tenant,
                S::Trialing.as_str(),
                plan.as_str(),
                ends_at,
                at
            )
            .execute(conn)
            .await?;
        }
        E::StripeCustomerCreated { customer_id } => {
            sqlx::query!(
                "update rm_billing set customer_id = $2, updated_at = $3 where tenant_id = $1",
                tenant,
                customer_id,
                at
            )
            .execute(conn)
            .await?;
        }
        E::CheckoutStarted { url, .. } => {
            sqlx::query!(
                "update rm_billing set checkout_url = $2, updated_at = $3 where tenant_id = $1",
                tenant,
                url,
                at
            )
            .execute(conn)
            .await?;
        }
        E::SubscriptionStarted {
            subscription_id,
            plan,
            cycle,
            period_start,
            period_end,
            ..
        } => {
            sqlx::query!(
                "update rm_billing set status = $2, plan = $3, cycle = $4, subscription_id = $5,
                     period_start = $6, period_end = $7, cancel_at_period_end = false,
                     checkout_url = null, updated_at = $8
                 where tenant_id = $1",
                tenant,
                S::Active.as_str(),
                plan.as_str(),
                cycle.as_str(),
                subscription_id,
                period_start,
                period_end,
                at
            )
            .execute(conn)
            .await?;
        }
        E::SubscriptionUpdated {
            plan,
            cycle,
            period_start,
            period_end,
            cancel_at_period_end,
            ..
        } => {
            sqlx::query!(
                "update rm_billing set plan = $2, cycle = $3, period_start = $4, period_end = $5,
                     cancel_at_period_end = $6, updated_at = $7
                 where tenant_id = $1",
                tenant,
                plan.as_str(),
                cycle.as_str(),
                period_start,
                period_end,
                cancel_at_period_end,
                at
            )
            .execute(conn)
            .await?;
        }
        E::PlanChanged { to, cycle, .. } => {
            sqlx::query!(
                "update rm_billing set plan = $2, cycle = $3, updated_at = $4 where tenant_id = $1",
                tenant,
                to.as_str(),
                cycle.as_str(),
                at
            )
            .execute(conn)
            .await?;
        }
        E::CancellationScheduled { .. } => {
            sqlx::query!(
                "update rm_billing set cancel_at_period_end = true, updated_at = $2
                 where tenant_id = $1",
                tenant,
                at
            )
            .execute(conn)
            .await?;
        }
        E::SubscriptionEnded { .. } | E::TrialEnded { .. } => {
            set_status(conn, event, S::Cancelled, None).await?;
        }
        E::InvoicePaid { invoice } => {
            upsert_invoice(conn, event, &invoice, "paid").await?;
            set_status(conn, event, S::Active, Some(S::PastDue)).await?;
        }
        E::PaymentFailed { invoice } => upsert_invoice(conn, event, &invoice, "failed").await?,
        E::PaymentActionRequired { invoice } => {
            upsert_invoice(conn, event, &invoice, "action_required").await?;
        }
        E::GracePeriodStarted { ends_at, .. } => {
            sqlx::query!(
                "update rm_billing set status = $2, grace_ends_at = $3, updated_at = $4
                 where tenant_id = $1",
                tenant,
                S::PastDue.as_str(),
                ends_at,
                at
            )
            .execute(conn)
            .await?;
        }
        E::GracePeriodEnded { .. } => {
            set_status(conn, event, S::Active, Some(S::PastDue)).await?;
        }
        E::SuspendedForNonPayment { .. } => {
            sqlx::query!(
                "update rm_billing set status = $2, updated_at = $3 where tenant_id = $1",
                tenant,
                S::Suspended.as_str(),
                at
            )
            .execute(conn)
            .await?;
        }
        E::Reinstated { .. } => set_status(conn, event, S::Active, None).await?,
        // Reminders and notices are for the notifier; the read model has nothing to add.
        E::PaymentReminderDue { .. } | E::TrialEndingSoon { .. } => {}
        E::UsageThresholdReached {
            month,
            metric,
            threshold,
            used,
            limit,
        } => {
            sqlx::query!(
                r#"insert into rm_billing_alerts (tenant_id, month, metric, threshold, used, "limit", at)
                 values ($1, $2, $3, $4, $5, $6, $7)
                 on conflict (tenant_id, month, metric) do update
                 set threshold = excluded.threshold, used = excluded.used,
                     "limit" = excluded."limit", at = excluded.at"#,
                tenant,
                month.to_string(),
                metric.as_str(),
                i16::from(threshold),
                i32::try_from(used).unwrap_or(i32::MAX),
                i32::try_from(limit).unwrap_or(i32::MAX),
                at
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// Sets the status (only when it is `from`, if given) and ends any grace period.
async fn set_status(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    to: BillingStatus,
    from: Option<BillingStatus>,
) -> anyhow::Result<()> {
    sqlx::query!(
        "update rm_billing set status = $2, grace_ends_at = null, updated_at = $3
         where tenant_id = $1 and ($4::text is null or status = $4)",
        event.tenant_id,
        to.as_str(),
        event.recorded_at,
        from.map(BillingStatus::as_str)
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// An invoice as its latest event says, except that a paid one stays paid.
async fn upsert_invoice(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    invoice: &InvoiceFacts,
    status: &str,
) -> anyhow::Result<()> {
    sqlx::query!(
        "insert into rm_invoices (tenant_id, invoice_id, number, period_start, period_end,
             amount_due, amount_paid, currency, status, hosted_url, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         on conflict (tenant_id, invoice_id) do update
         set number = coalesce(excluded.number, rm_invoices.number),
             amount_due = excluded.amount_due, amount_paid = excluded.amount_paid,
             hosted_url = coalesce(excluded.hosted_url, rm_invoices.hosted_url),
             status = case when rm_invoices.status = 'paid' then 'paid' else excluded.status end,
             updated_at = excluded.updated_at",
        event.tenant_id,
        invoice.invoice_id,
        invoice.number,
        invoice.period_start,
        invoice.period_end,
        invoice.amount_due.minor(),
        invoice.amount_paid.minor(),
        invoice.amount_due.currency().to_string(),
        status,
        invoice.hosted_url,
        event.recorded_at
    )
    .execute(conn)
    .await?;
    Ok(())
}
