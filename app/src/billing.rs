//! A business's subscription: its trial, plan changes and cancellation, the usage thresholds
//! the meter reports, the passing of time (a trial or a grace period running out), and what
//! Stripe reports (a subscription as it stands, invoices paid or not).
//!
//! Suspension for non-payment is two facts committed together: the billing stream says why,
//! the tenant stream locks the business (423, the bot's notice), as an operator's suspension
//! does. A payment lifts it in the same way, and never lifts an operator's.

use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::billing::{
    Billing, BillingCommand, BillingEvent, BillingState, BookingsStopped, InvoiceFacts,
    SubscriptionSnapshot, UsageMonth, UsageNow,
};
use domain::plan::{Cycle, Metric, Plan};
use domain::tenant::{SuspensionCause, Tenant, TenantCommand};
use domain::values::Reason;
use eventstore::{EventStore, StreamRef};
use uuid::Uuid;

use crate::events::{fold, stream};
use crate::tenants::tenant_stream;
use crate::{App, AppError, CommandContext, Committed, Rejection, UnitOfWork, execute};

/// A tenant's billing stream.
pub fn billing_stream(tenant_id: Uuid) -> StreamRef {
    stream::<BillingEvent>(tenant_id)
}

/// The billing state of a tenant, read outside a command (the reactors').
pub async fn state(store: &EventStore, tenant_id: Uuid) -> Result<BillingState, AppError> {
    let stream = billing_stream(tenant_id);
    let recorded = store.read_stream(tenant_id, &stream, 1).await?;
    Ok(fold::<Billing>(&stream, recorded)?.0)
}

/// Why bookings are stopped, as the client should hear it.
pub(crate) fn payment_required(app: &App, stopped: BookingsStopped) -> AppError {
    let detail = match stopped {
        BookingsStopped::LimitReached { limit } => {
            format!("this month's {limit} bookings of the plan are used up; upgrade to take more")
        }
        BookingsStopped::NoSubscription => {
            "the business has no subscription: subscribe to take bookings again".to_owned()
        }
    };
    AppError::PaymentRequired {
        detail,
        upgrade_url: app.policy.upgrade_url.clone(),
    }
}

/// Inside a booking's unit of work, with the billing state it read: refuses unless the plan
/// takes another booking now (see [`booking_stop`]).
pub(crate) async fn require_bookings_open(
    uow: &mut UnitOfWork<'_>,
    app: &App,
    billing: &BillingState,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    match booking_stop(uow, billing, now).await? {
        Some(stopped) => Err(payment_required(app, stopped)),
        None => Ok(()),
    }
}

/// Inside a unit of work (a booking, or a turn of the bot about to book): why the plan takes
/// no booking at `now`, if it does not. The month's bookings are counted from the log, so the
/// 100th of a 100-booking month is taken and the 101st refused; bookings committing at the same
/// instant can pass the count together (a handful at most: one tenant's concurrent requests).
/// The count is a read of its own, like the unit's loads: the unit's transaction is begun only
/// to commit, so no unit holds one connection while it waits for another.
pub(crate) async fn booking_stop(
    uow: &UnitOfWork<'_>,
    billing: &BillingState,
    now: DateTime<Utc>,
) -> Result<Option<BookingsStopped>, AppError> {
    if !billing.started {
        return Ok(None);
    }
    if let Some(stopped) = billing.bookings_stopped(UsageMonth::of(now)) {
        return Ok(Some(stopped));
    }
    let Some(limit) = billing.plan.and_then(|p| p.limits().bookings) else {
        return Ok(None);
    };
    let used = bookings_this_month(uow.store(), uow.tenant_id(), now).await?;
    Ok((used >= u64::from(limit)).then_some(BookingsStopped::LimitReached { limit }))
}

async fn bookings_this_month(
    store: &EventStore,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, AppError> {
    let (from, to) = UsageMonth::of(now).bounds();
    Ok(store
        .count_events(tenant_id, "AppointmentRequested", from, to)
        .await?)
}

/// Inside an invitation's unit of work: refuses when the plan's seats are taken.
pub(crate) async fn require_seat(uow: &mut UnitOfWork<'_>, app: &App) -> Result<(), AppError> {
    let billing = uow
        .load::<Billing>(&billing_stream(uow.tenant_id()))
        .await?;
    let Some(seats) = billing
        .plan
        .filter(|_| billing.started)
        .and_then(|p| p.limits().staff_seats)
    else {
        return Ok(());
    };
    let taken = vault::users::active_count(uow.conn().await?).await?;
    if taken >= i64::from(seats) {
        return Err(AppError::PaymentRequired {
            detail: format!("the plan's {seats} seats are taken; upgrade to invite more people"),
            upgrade_url: app.policy.upgrade_url.clone(),
        });
    }
    Ok(())
}

/// Changes the plan, or the cycle (the current one by default), at once. A downgrade that
/// this month's bookings, or the team's seats, already exceed is refused, naming the limit.
pub async fn change_plan(
    app: &App,
    ctx: &CommandContext,
    plan: Plan,
    cycle: Option<Cycle>,
) -> Result<Committed<BillingState>, AppError> {
    let now = Utc::now();
    let cycle = match cycle {
        Some(cycle) => cycle,
        None => state(&app.store, ctx.tenant_id)
            .await?
            .cycle
            .unwrap_or(Cycle::Monthly),
    };
    let bookings = bookings_this_month(&app.store, ctx.tenant_id, now).await?;
    let seats = {
        let mut tx = app.store.begin(ctx.tenant_id).await?;
        let seats = vault::users::active_count(tx.conn()).await?;
        tx.rollback().await?;
        seats
    };
    let usage = UsageNow {
        bookings: u32::try_from(bookings).unwrap_or(u32::MAX),
        // Messages never stop a business: over a limit they are billed as overage.
        messages: 0,
        staff_seats: u32::try_from(seats).unwrap_or(u32::MAX),
    };
    decide(
        app,
        ctx,
        BillingCommand::ChangePlan {
            plan,
            cycle,
            usage,
            now,
        },
    )
    .await
}

/// Cancels at the end of the period paid for.
pub async fn cancel(app: &App, ctx: &CommandContext) -> Result<Committed<BillingState>, AppError> {
    decide(app, ctx, BillingCommand::Cancel { now: Utc::now() }).await
}

/// The meter's count of a month's `metric` for a tenant (the billing reactor).
pub async fn report_usage(
    app: &App,
    tenant_id: Uuid,
    month: UsageMonth,
    metric: Metric,
    used: u32,
) -> Result<Committed<BillingState>, AppError> {
    let ctx = CommandContext::new(
        tenant_id,
        "system:billing-meter",
        format!("usage|{month}|{}|{used}", metric.as_str()),
    );
    decide(
        app,
        &ctx,
        BillingCommand::ReportUsage {
            month,
            metric,
            used,
        },
    )
    .await
}

/// Time passed for a tenant (the scheduler): a trial or a grace period may have run out. A
/// grace period's end suspends the tenant in the same unit of work.
pub async fn tick(
    app: &App,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Committed<BillingState>, AppError> {
    let ctx = CommandContext::new(
        tenant_id,
        "system:billing-scheduler",
        format!("tick|{}", now.timestamp()),
    );
    decide(app, &ctx, BillingCommand::Tick { now }).await
}

/// Stripe says the subscription stands so, as of `observed_at`. Keyed by the Stripe event.
pub async fn sync_subscription(
    app: &App,
    tenant_id: Uuid,
    stripe_event_id: &str,
    snapshot: SubscriptionSnapshot,
    observed_at: DateTime<Utc>,
) -> Result<Committed<BillingState>, AppError> {
    let ctx = stripe_context(tenant_id, stripe_event_id);
    decide(
        app,
        &ctx,
        BillingCommand::SyncSubscription {
            snapshot,
            observed_at,
        },
    )
    .await
}

/// Stripe says an invoice was paid: dunning ends, a suspension for non-payment is lifted.
pub async fn record_invoice_paid(
    app: &App,
    tenant_id: Uuid,
    stripe_event_id: &str,
    invoice: InvoiceFacts,
) -> Result<Committed<BillingState>, AppError> {
    let ctx = stripe_context(tenant_id, stripe_event_id);
    decide(app, &ctx, BillingCommand::RecordInvoicePaid { invoice }).await
}

/// Stripe says an invoice's payment failed: the first failure opens the grace period.
pub async fn record_payment_failed(
    app: &App,
    tenant_id: Uuid,
    stripe_event_id: &str,
    invoice: InvoiceFacts,
    now: DateTime<Utc>,
) -> Result<Committed<BillingState>, AppError> {
    let ctx = stripe_context(tenant_id, stripe_event_id);
    let grace = app.policy.grace;
    decide(
        app,
        &ctx,
        BillingCommand::RecordPaymentFailed {
            invoice,
            grace,
            now,
        },
    )
    .await
}

/// Stripe says the bank wants the customer to confirm a payment.
pub async fn record_payment_action_required(
    app: &App,
    tenant_id: Uuid,
    stripe_event_id: &str,
    invoice: InvoiceFacts,
) -> Result<Committed<BillingState>, AppError> {
    let ctx = stripe_context(tenant_id, stripe_event_id);
    decide(
        app,
        &ctx,
        BillingCommand::RecordPaymentActionRequired { invoice },
    )
    .await
}

/// Stripe made the tenant's customer: recorded, and routed so that Stripe's webhooks, which
/// name the customer, find the tenant.
pub async fn record_customer(
    app: &App,
    ctx: &CommandContext,
    customer_id: String,
) -> Result<Committed<BillingState>, AppError> {
    let customer_id = &customer_id;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let stream = billing_stream(uow.tenant_id());
            let billing = uow.load::<Billing>(&stream).await?;
            let events = Billing::decide(
                &billing,
                BillingCommand::RecordCustomer {
                    customer_id: customer_id.clone(),
                },
            )
            .map_err(Rejection::Billing)?;
            if !events.is_empty() {
                let tenant_id = uow.tenant_id();
                vault::directory::route_stripe_customer(uow.conn().await?, customer_id, tenant_id)
                    .await?;
            }
            uow.stage(&stream, &events);
            Ok(events.iter().fold(billing, Billing::evolve))
        })
    })
    .await
}

/// The tenant a Stripe customer belongs to (a webhook names only the customer).
pub async fn tenant_of_customer(app: &App, customer_id: &str) -> Result<Option<Uuid>, AppError> {
    Ok(vault::directory::tenant_of_stripe_customer(app.store.pool(), customer_id).await?)
}

/// A Checkout Session was opened for the business to subscribe.
pub async fn record_checkout(
    app: &App,
    ctx: &CommandContext,
    session_id: String,
    url: String,
    plan: Plan,
    cycle: Cycle,
) -> Result<Committed<BillingState>, AppError> {
    decide(
        app,
        ctx,
        BillingCommand::StartCheckout {
            session_id,
            url,
            plan,
            cycle,
            now: Utc::now(),
        },
    )
    .await
}

/// A command from Stripe's event `stripe_event_id`: a redelivery is the same command.
fn stripe_context(tenant_id: Uuid, stripe_event_id: &str) -> CommandContext {
    CommandContext::new(
        tenant_id,
        "system:stripe",
        format!("stripe|{stripe_event_id}"),
    )
}

/// Decides a billing command and stages its events; a suspension or reinstatement it decides
/// also locks or unlocks the tenant, in the same unit of work. The billing state after it.
async fn decide(
    app: &App,
    ctx: &CommandContext,
    command: BillingCommand,
) -> Result<Committed<BillingState>, AppError> {
    let command = &command;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let stream = billing_stream(uow.tenant_id());
            let billing = uow.load::<Billing>(&stream).await?;
            let events = Billing::decide(&billing, command.clone()).map_err(Rejection::Billing)?;
            stage_tenant_lock(uow, &events).await?;
            uow.stage(&stream, &events);
            Ok(events.iter().fold(billing, Billing::evolve))
        })
    })
    .await
}

/// What billing's events do to the tenant: an unpaid grace period suspends it, a payment
/// afterwards reinstates it.
async fn stage_tenant_lock(
    uow: &mut UnitOfWork<'_>,
    events: &[BillingEvent],
) -> Result<(), AppError> {
    let command = events.iter().find_map(|e| match e {
        BillingEvent::SuspendedForNonPayment { .. } => Some(TenantCommand::Suspend {
            reason: Reason::parse("an invoice is unpaid").expect("a valid reason"),
            cause: SuspensionCause::NonPayment,
        }),
        BillingEvent::Reinstated { .. } => Some(TenantCommand::ReinstateAfterPayment),
        _ => None,
    });
    let Some(command) = command else {
        return Ok(());
    };
    let stream = tenant_stream(uow.tenant_id());
    let tenant = uow.load::<Tenant>(&stream).await?;
    match Tenant::decide(&tenant, command) {
        Ok(events) => uow.stage(&stream, &events),
        // Already suspended (by the operator): billing's own record stands, the lock is on.
        Err(domain::tenant::TenantError::Suspended) => {}
        Err(other) => return Err(other.into()),
    }
    Ok(())
}
