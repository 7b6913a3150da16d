//! A business's subscription: its trial, its plan and how it is paid, Stripe's account of it,
//! payments and dunning, and the usage thresholds its months reach. One stream per tenant:
//! `billing/<tenant_id>`.
//!
//! Every transition is decided here, from a command the API gives (check out, change plan,
//! cancel), one a Stripe event gives (a subscription as it stands, an invoice paid or not), or
//! one time gives (a trial or a grace period running out; the time is an input). Stripe's
//! events arrive at least once and in any order: a decision looks at what the object says and
//! when Stripe said it, never at the order of arrival, so a repeat or a late one changes
//! nothing.
//!
//! Usage is counted per calendar month (UTC), whatever the subscription's cycle: a month's
//! bookings and messages are measured against the plan's limits. The reactor that counts them
//! reports the month's count when it crosses 80 % and 100 % of a limit; bookings stop while the
//! count reported is at the current plan's limit, so an upgrade lifts the stop at once.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Datelike, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::plan::{Cycle, Metric, Plan};
use crate::values::Money;

/// Where a subscription stands, as the business sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BillingStatus {
    /// The free trial: everything of the plan, no payment yet.
    #[default]
    Trialing,
    /// Paid and current.
    Active,
    /// A payment failed: the grace period runs, Stripe retries, everything still works.
    PastDue,
    /// The grace period ran out unpaid: the tenant is suspended until a payment arrives.
    Suspended,
    /// No paid access: the trial ended without a subscription, or the subscription ended.
    /// Nothing is deleted; bookings stop until the business subscribes again.
    Cancelled,
}

crate::labels::labels!(BillingStatus {
    Trialing => "trialing",
    Active => "active",
    PastDue => "past_due",
    Suspended => "suspended",
    Cancelled => "cancelled",
});

/// A calendar month (UTC): the period usage is counted in. Written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageMonth {
    year: i32,
    month: u32,
}

impl UsageMonth {
    pub fn of(at: DateTime<Utc>) -> Self {
        Self {
            year: at.year(),
            month: at.month(),
        }
    }

    /// From `YYYY-MM`.
    pub fn parse(raw: &str) -> Option<Self> {
        let (year, month) = raw.split_once('-')?;
        let (year, month) = (year.parse().ok()?, month.parse().ok()?);
        ((2000..10_000).contains(&year) && (1..=12).contains(&month) && raw.len() == 7)
            .then_some(Self { year, month })
    }

    /// The first instant of the month and of the next.
    pub fn bounds(self) -> (DateTime<Utc>, DateTime<Utc>) {
        let start = |y, m| {
            chrono::NaiveDate::from_ymd_opt(y, m, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .expect("a month's first day")
        };
        let (ny, nm) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        (start(self.year, self.month), start(ny, nm))
    }
}

impl fmt::Display for UsageMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

impl Serialize for UsageMonth {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for UsageMonth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).ok_or_else(|| serde::de::Error::custom("a month is YYYY-MM"))
    }
}

/// A Stripe subscription as Stripe last described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionSnapshot {
    pub subscription_id: String,
    pub status: StripeStatus,
    pub plan: Plan,
    pub cycle: Cycle,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub cancel_at_period_end: bool,
}

/// Stripe's subscription statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StripeStatus {
    Incomplete,
    IncompleteExpired,
    Trialing,
    Active,
    PastDue,
    Unpaid,
    Canceled,
    Paused,
}

/// An invoice as Stripe describes it, for the business's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceFacts {
    pub invoice_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub amount_due: Money,
    pub amount_paid: Money,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosted_url: Option<String>,
}

/// A subscription the business has (Stripe's id, what it pays for, the period it is in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subscription_id: String,
    pub cycle: Cycle,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub cancel_at_period_end: bool,
}

/// A payment that failed and the grace period it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grace {
    pub invoice_id: String,
    pub started_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// The days of the grace period a reminder went out on (3, then 6).
    pub reminded: Vec<u8>,
}

/// The days of a grace period on which the business is reminded that a payment failed (day 0
/// is the failure itself).
pub const REMINDER_DAYS: [u8; 2] = [3, 6];
/// How long before a trial ends the business is told.
pub const TRIAL_NOTICE: Duration = Duration::days(3);

/// Today's usage, as the command side measures it for a plan change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageNow {
    pub bookings: u32,
    pub messages: u32,
    pub staff_seats: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum BillingCommand {
    /// A new business: its trial of `plan` until `ends_at`.
    StartTrial {
        plan: Plan,
        ends_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Stripe made the business's customer.
    RecordCustomer { customer_id: String },
    /// A Checkout Session to subscribe to `plan`, paid every `cycle`.
    StartCheckout {
        session_id: String,
        url: String,
        plan: Plan,
        cycle: Cycle,
        now: DateTime<Utc>,
    },
    /// Stripe says this is the subscription (created, updated, deleted, or a completed
    /// checkout), as of `observed_at` (the Stripe event's time).
    SyncSubscription {
        snapshot: SubscriptionSnapshot,
        observed_at: DateTime<Utc>,
    },
    /// Another plan or cycle, with today's usage: a downgrade the usage exceeds is refused.
    ChangePlan {
        plan: Plan,
        cycle: Cycle,
        usage: UsageNow,
        now: DateTime<Utc>,
    },
    /// Stop at the end of the period paid for.
    Cancel { now: DateTime<Utc> },
    /// An invoice was paid.
    RecordInvoicePaid { invoice: InvoiceFacts },
    /// An invoice's payment failed: the first failure opens a grace period of `grace`.
    RecordPaymentFailed {
        invoice: InvoiceFacts,
        grace: Duration,
        now: DateTime<Utc>,
    },
    /// The bank asks the customer to confirm the payment (SCA).
    RecordPaymentActionRequired { invoice: InvoiceFacts },
    /// Time passed: a trial or a grace period may have run out.
    Tick { now: DateTime<Utc> },
    /// The month's count of `metric` so far.
    ReportUsage {
        month: UsageMonth,
        metric: Metric,
        used: u32,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum BillingEvent {
    TrialStarted {
        plan: Plan,
        started_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    StripeCustomerCreated {
        customer_id: String,
    },
    CheckoutStarted {
        session_id: String,
        url: String,
        plan: Plan,
        cycle: Cycle,
        at: DateTime<Utc>,
    },
    SubscriptionStarted {
        subscription_id: String,
        plan: Plan,
        cycle: Cycle,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        observed_at: DateTime<Utc>,
    },
    /// Stripe's account of the subscription changed (a new period, a plan change confirmed,
    /// a cancellation scheduled or withdrawn).
    SubscriptionUpdated {
        plan: Plan,
        cycle: Cycle,
        period_start: DateTime<Utc>,
        period_end: DateTime<Utc>,
        cancel_at_period_end: bool,
        observed_at: DateTime<Utc>,
    },
    /// The business changed its plan: it applies at once (Stripe prorates the period).
    PlanChanged {
        from: Plan,
        to: Plan,
        cycle: Cycle,
        at: DateTime<Utc>,
    },
    CancellationScheduled {
        effective_at: DateTime<Utc>,
    },
    SubscriptionEnded {
        at: DateTime<Utc>,
    },
    TrialEnded {
        at: DateTime<Utc>,
    },
    InvoicePaid {
        invoice: InvoiceFacts,
    },
    PaymentFailed {
        invoice: InvoiceFacts,
    },
    PaymentActionRequired {
        invoice: InvoiceFacts,
    },
    GracePeriodStarted {
        invoice_id: String,
        started_at: DateTime<Utc>,
        ends_at: DateTime<Utc>,
    },
    /// A payment arrived: dunning is over.
    GracePeriodEnded {
        invoice_id: String,
    },
    SuspendedForNonPayment {
        at: DateTime<Utc>,
    },
    /// A payment after suspension: the business is back.
    Reinstated {
        invoice_id: String,
    },
    /// A month's usage crossed `threshold` percent of the plan's limit.
    UsageThresholdReached {
        month: UsageMonth,
        metric: Metric,
        threshold: u8,
        used: u32,
        limit: u32,
    },
    /// A day of the grace period on which the business is reminded to pay.
    PaymentReminderDue {
        invoice_id: String,
        day: u8,
        grace_ends_at: DateTime<Utc>,
    },
    /// The trial ends soon and there is no subscription yet.
    TrialEndingSoon {
        ends_at: DateTime<Utc>,
    },
}

impl DomainEvent for BillingEvent {
    const STREAM_TYPE: &'static str = "billing";

    fn event_type(&self) -> &'static str {
        match self {
            Self::TrialStarted { .. } => "TrialStarted",
            Self::StripeCustomerCreated { .. } => "StripeCustomerCreated",
            Self::CheckoutStarted { .. } => "CheckoutStarted",
            Self::SubscriptionStarted { .. } => "SubscriptionStarted",
            Self::SubscriptionUpdated { .. } => "SubscriptionUpdated",
            Self::PlanChanged { .. } => "PlanChanged",
            Self::CancellationScheduled { .. } => "CancellationScheduled",
            Self::SubscriptionEnded { .. } => "SubscriptionEnded",
            Self::TrialEnded { .. } => "TrialEnded",
            Self::InvoicePaid { .. } => "InvoicePaid",
            Self::PaymentFailed { .. } => "PaymentFailed",
            Self::PaymentActionRequired { .. } => "PaymentActionRequired",
            Self::GracePeriodStarted { .. } => "GracePeriodStarted",
            Self::GracePeriodEnded { .. } => "GracePeriodEnded",
            Self::SuspendedForNonPayment { .. } => "SuspendedForNonPayment",
            Self::Reinstated { .. } => "Reinstated",
            Self::UsageThresholdReached { .. } => "UsageThresholdReached",
            Self::PaymentReminderDue { .. } => "PaymentReminderDue",
            Self::TrialEndingSoon { .. } => "TrialEndingSoon",
        }
    }
}

/// Why bookings are stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookingsStopped {
    /// The month's bookings reached the plan's limit.
    LimitReached { limit: u32 },
    /// No paid access: the trial ended, or the subscription did.
    NoSubscription,
}

/// A threshold a month's usage crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedUsage {
    pub threshold: u8,
    pub used: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BillingState {
    pub started: bool,
    pub status: BillingStatus,
    pub plan: Option<Plan>,
    pub cycle: Option<Cycle>,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub customer_id: Option<String>,
    /// The last Checkout Session started, until a subscription exists.
    pub checkout: Option<(String, String)>,
    pub subscription: Option<Subscription>,
    /// The time of the latest Stripe account applied: older ones change nothing.
    pub observed_at: Option<DateTime<Utc>>,
    pub grace: Option<Grace>,
    pub paid_invoices: BTreeSet<String>,
    pub failed_invoices: BTreeSet<String>,
    /// The last threshold reported per month and metric: the threshold, the count then, and
    /// the limit it was measured against.
    pub usage: BTreeMap<(UsageMonth, Metric), ReportedUsage>,
    /// The business was told its trial ends soon.
    pub trial_notice_sent: bool,
}

impl BillingState {
    /// Whether new bookings are taken in `month`, and why not.
    pub fn bookings_stopped(&self, month: UsageMonth) -> Option<BookingsStopped> {
        if !self.started {
            return None; // a business from before billing existed
        }
        if self.status == BillingStatus::Cancelled {
            return Some(BookingsStopped::NoSubscription);
        }
        let limit = self.plan?.limits().bookings?;
        let reported = self.usage.get(&(month, Metric::Bookings))?;
        (reported.used >= limit).then_some(BookingsStopped::LimitReached { limit })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("billing has not started for this business")]
    NotStarted,
    #[error("billing has already started")]
    AlreadyStarted,
    #[error("the business has no Stripe customer yet; try again in a moment")]
    NoCustomer,
    #[error("the business already has a subscription; change its plan instead")]
    AlreadySubscribed,
    #[error("the business has no subscription")]
    NoSubscription,
    #[error("that is the plan and cycle the business has")]
    SamePlan,
    #[error("the {metric} of this month ({used}) exceed the {limit} the {plan:?} plan allows")]
    OverLimit {
        plan: Plan,
        metric: &'static str,
        used: u32,
        limit: u32,
    },
    #[error("the subscription already ends at the end of its period")]
    AlreadyCancelling,
}

pub struct Billing;

impl Decider for Billing {
    type State = BillingState;
    type Command = BillingCommand;
    type Event = BillingEvent;
    type Error = BillingError;

    fn decide(
        state: &BillingState,
        command: BillingCommand,
    ) -> Result<Vec<BillingEvent>, BillingError> {
        use BillingCommand as C;
        use BillingEvent as E;
        if !state.started {
            return match command {
                C::StartTrial { plan, ends_at, now } => Ok(vec![E::TrialStarted {
                    plan,
                    started_at: now,
                    ends_at,
                }]),
                _ => Err(BillingError::NotStarted),
            };
        }
        let plan = state.plan.unwrap_or(Plan::Starter);
        match command {
            C::StartTrial { .. } => Err(BillingError::AlreadyStarted),
            C::RecordCustomer { customer_id } => Ok(if state.customer_id.is_some() {
                vec![] // the first one stands; a retry of the reactor says the same
            } else {
                vec![E::StripeCustomerCreated { customer_id }]
            }),
            C::StartCheckout {
                session_id,
                url,
                plan,
                cycle,
                now,
            } => {
                if state.customer_id.is_none() {
                    return Err(BillingError::NoCustomer);
                }
                if state.subscription.is_some() && state.status != BillingStatus::Cancelled {
                    return Err(BillingError::AlreadySubscribed);
                }
                Ok(vec![E::CheckoutStarted {
                    session_id,
                    url,
                    plan,
                    cycle,
                    at: now,
                }])
            }
            C::SyncSubscription {
                snapshot,
                observed_at,
            } => Ok(sync(state, snapshot, observed_at)),
            C::ChangePlan {
                plan: to,
                cycle,
                usage,
                now,
            } => {
                if matches!(
                    state.status,
                    BillingStatus::Cancelled | BillingStatus::Suspended
                ) {
                    return Err(BillingError::NoSubscription);
                }
                if to == plan && Some(cycle) == state.cycle.or(Some(Cycle::Monthly)) {
                    return Err(BillingError::SamePlan);
                }
                let limits = to.limits();
                for (metric, used, limit) in [
                    ("bookings", usage.bookings, limits.bookings),
                    ("messages", usage.messages, limits.messages),
                    ("staff seats", usage.staff_seats, limits.staff_seats),
                ] {
                    if let Some(limit) = limit
                        && used > limit
                    {
                        return Err(BillingError::OverLimit {
                            plan: to,
                            metric,
                            used,
                            limit,
                        });
                    }
                }
                Ok(vec![E::PlanChanged {
                    from: plan,
                    to,
                    cycle,
                    at: now,
                }])
            }
            C::Cancel { now: _ } => {
                let subscription = state
                    .subscription
                    .as_ref()
                    .filter(|_| state.status != BillingStatus::Cancelled)
                    .ok_or(BillingError::NoSubscription)?;
                if subscription.cancel_at_period_end {
                    return Err(BillingError::AlreadyCancelling);
                }
                Ok(vec![E::CancellationScheduled {
                    effective_at: subscription.period_end,
                }])
            }
            C::RecordInvoicePaid { invoice } => {
                if state.paid_invoices.contains(&invoice.invoice_id) {
                    return Ok(vec![]);
                }
                let invoice_id = invoice.invoice_id.clone();
                let mut events = vec![E::InvoicePaid { invoice }];
                if state.grace.is_some() {
                    events.push(E::GracePeriodEnded {
                        invoice_id: invoice_id.clone(),
                    });
                }
                if state.status == BillingStatus::Suspended {
                    events.push(E::Reinstated { invoice_id });
                }
                Ok(events)
            }
            C::RecordPaymentFailed {
                invoice,
                grace,
                now,
            } => {
                let id = &invoice.invoice_id;
                if state.paid_invoices.contains(id) || state.failed_invoices.contains(id) {
                    // Paid since, or a retry of Stripe's already recorded: Stripe keeps
                    // retrying the charge; the grace period already runs.
                    return Ok(vec![]);
                }
                let mut events = vec![];
                if state.grace.is_none() && state.status != BillingStatus::Suspended {
                    events.push(E::GracePeriodStarted {
                        invoice_id: id.clone(),
                        started_at: now,
                        ends_at: now + grace,
                    });
                }
                events.insert(0, E::PaymentFailed { invoice });
                Ok(events)
            }
            C::RecordPaymentActionRequired { invoice } => {
                Ok(if state.paid_invoices.contains(&invoice.invoice_id) {
                    vec![]
                } else {
                    vec![E::PaymentActionRequired { invoice }]
                })
            }
            C::Tick { now } => {
                let mut events = vec![];
                if state.status == BillingStatus::Trialing
                    && state.subscription.is_none()
                    && !state.trial_notice_sent
                    && state
                        .trial_ends_at
                        .is_some_and(|end| end - TRIAL_NOTICE <= now && now < end)
                {
                    events.push(E::TrialEndingSoon {
                        ends_at: state.trial_ends_at.expect("checked above"),
                    });
                }
                if state.status == BillingStatus::PastDue
                    && let Some(grace) = &state.grace
                    && now < grace.ends_at
                {
                    // The latest reminder due, once: a clock that was away sends one, not two.
                    let due = REMINDER_DAYS
                        .iter()
                        .rev()
                        .find(|d| grace.started_at + Duration::days(i64::from(**d)) <= now);
                    if let Some(day) = due
                        && !grace.reminded.iter().any(|r| r >= day)
                    {
                        events.push(E::PaymentReminderDue {
                            invoice_id: grace.invoice_id.clone(),
                            day: *day,
                            grace_ends_at: grace.ends_at,
                        });
                    }
                }
                if state.status == BillingStatus::Trialing
                    && state.subscription.is_none()
                    && state.trial_ends_at.is_some_and(|end| end <= now)
                {
                    events.push(E::TrialEnded { at: now });
                }
                if state.status == BillingStatus::PastDue
                    && state.grace.as_ref().is_some_and(|g| g.ends_at <= now)
                {
                    events.push(E::SuspendedForNonPayment { at: now });
                }
                Ok(events)
            }
            C::ReportUsage {
                month,
                metric,
                used,
            } => {
                let Some(limit) = plan.limits().of(metric) else {
                    return Ok(vec![]);
                };
                let threshold = if used >= limit {
                    100
                } else if u64::from(used) * 5 >= u64::from(limit) * 4 {
                    80
                } else {
                    return Ok(vec![]);
                };
                // Once per threshold of a limit: a plan change makes the next crossing news.
                let news = state
                    .usage
                    .get(&(month, metric))
                    .is_none_or(|r| r.limit != limit || threshold > r.threshold);
                Ok(if news {
                    vec![E::UsageThresholdReached {
                        month,
                        metric,
                        threshold,
                        used,
                        limit,
                    }]
                } else {
                    vec![]
                })
            }
        }
    }

    fn evolve(mut state: BillingState, event: &BillingEvent) -> BillingState {
        use BillingEvent as E;
        match event {
            E::TrialStarted { plan, ends_at, .. } => {
                state.started = true;
                state.status = BillingStatus::Trialing;
                state.plan = Some(*plan);
                state.trial_ends_at = Some(*ends_at);
            }
            E::StripeCustomerCreated { customer_id } => {
                state.customer_id = Some(customer_id.clone());
            }
            E::CheckoutStarted {
                session_id, url, ..
            } => state.checkout = Some((session_id.clone(), url.clone())),
            E::SubscriptionStarted {
                subscription_id,
                plan,
                cycle,
                period_start,
                period_end,
                observed_at,
            } => {
                state.status = BillingStatus::Active;
                state.plan = Some(*plan);
                state.cycle = Some(*cycle);
                state.checkout = None;
                state.observed_at = Some(*observed_at);
                state.subscription = Some(Subscription {
                    subscription_id: subscription_id.clone(),
                    cycle: *cycle,
                    period_start: *period_start,
                    period_end: *period_end,
                    cancel_at_period_end: false,
                });
            }
            E::SubscriptionUpdated {
                plan,
                cycle,
                period_start,
                period_end,
                cancel_at_period_end,
                observed_at,
            } => {
                state.plan = Some(*plan);
                state.cycle = Some(*cycle);
                state.observed_at = Some(*observed_at);
                if let Some(s) = &mut state.subscription {
                    s.cycle = *cycle;
                    s.period_start = *period_start;
                    s.period_end = *period_end;
                    s.cancel_at_period_end = *cancel_at_period_end;
                }
            }
            E::PlanChanged { to, cycle, .. } => {
                state.plan = Some(*to);
                state.cycle = Some(*cycle);
                if let Some(s) = &mut state.subscription {
                    s.cycle = *cycle;
                }
            }
            E::CancellationScheduled { .. } => {
                if let Some(s) = &mut state.subscription {
                    s.cancel_at_period_end = true;
                }
            }
            E::SubscriptionEnded { .. } | E::TrialEnded { .. } => {
                state.status = BillingStatus::Cancelled;
                state.grace = None;
            }
            E::InvoicePaid { invoice } => {
                state.paid_invoices.insert(invoice.invoice_id.clone());
                if state.status == BillingStatus::PastDue {
                    state.status = BillingStatus::Active;
                }
            }
            E::PaymentFailed { invoice } => {
                state.failed_invoices.insert(invoice.invoice_id.clone());
            }
            E::PaymentActionRequired { .. } => {}
            E::GracePeriodStarted {
                invoice_id,
                started_at,
                ends_at,
            } => {
                state.status = BillingStatus::PastDue;
                state.grace = Some(Grace {
                    invoice_id: invoice_id.clone(),
                    started_at: *started_at,
                    ends_at: *ends_at,
                    reminded: vec![],
                });
            }
            E::GracePeriodEnded { .. } => {
                state.grace = None;
                if state.status == BillingStatus::PastDue {
                    state.status = BillingStatus::Active;
                }
            }
            E::SuspendedForNonPayment { .. } => state.status = BillingStatus::Suspended,
            E::Reinstated { .. } => {
                state.status = BillingStatus::Active;
                state.grace = None;
            }
            E::UsageThresholdReached {
                month,
                metric,
                threshold,
                used,
                limit,
            } => {
                state.usage.insert(
                    (*month, *metric),
                    ReportedUsage {
                        threshold: *threshold,
                        used: *used,
                        limit: *limit,
                    },
                );
            }
            E::PaymentReminderDue { day, .. } => {
                if let Some(grace) = &mut state.grace {
                    grace.reminded.push(*day);
                }
            }
            E::TrialEndingSoon { .. } => state.trial_notice_sent = true,
        }
        state
    }
}

/// Stripe's account of the subscription, applied unless an account Stripe gave later was
/// applied already.
fn sync(
    state: &BillingState,
    s: SubscriptionSnapshot,
    observed_at: DateTime<Utc>,
) -> Vec<BillingEvent> {
    use BillingEvent as E;
    if state.observed_at.is_some_and(|seen| observed_at < seen) {
        return vec![]; // an older account arriving late
    }
    let ended = matches!(
        s.status,
        StripeStatus::Canceled | StripeStatus::IncompleteExpired
    );
    let current = state.subscription.as_ref();
    match (current, ended) {
        // Not paid for yet (a checkout in progress), or one we never had that ended.
        (None, true) => vec![],
        (None, false) if s.status == StripeStatus::Incomplete => vec![],
        (None, false) => vec![E::SubscriptionStarted {
            subscription_id: s.subscription_id,
            plan: s.plan,
            cycle: s.cycle,
            period_start: s.period_start,
            period_end: s.period_end,
            observed_at,
        }],
        (Some(_), true) if state.status == BillingStatus::Cancelled => vec![],
        (Some(_), true) => vec![E::SubscriptionEnded { at: observed_at }],
        (Some(c), false) => {
            let same = Some(s.plan) == state.plan
                && s.cycle == c.cycle
                && s.period_start == c.period_start
                && s.period_end == c.period_end
                && s.cancel_at_period_end == c.cancel_at_period_end;
            if same {
                vec![]
            } else {
                vec![E::SubscriptionUpdated {
                    plan: s.plan,
                    cycle: s.cycle,
                    period_start: s.period_start,
                    period_end: s.period_end,
                    cancel_at_period_end: s.cancel_at_period_end,
                    observed_at,
                }]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::scenario::given;

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-{s}").parse().unwrap()
    }

    fn euros(major: i64) -> Money {
        Money::parse(major * 100, "EUR").unwrap()
    }

    fn trial() -> BillingEvent {
        BillingEvent::TrialStarted {
            plan: Plan::Starter,
            started_at: at("12-01T10:00:00Z"),
            ends_at: at("12-15T10:00:00Z"),
        }
    }

    fn customer() -> BillingEvent {
        BillingEvent::StripeCustomerCreated {
            customer_id: "cus_1".into(),
        }
    }

    fn snapshot(status: StripeStatus, plan: Plan) -> SubscriptionSnapshot {
        SubscriptionSnapshot {
            subscription_id: "sub_1".into(),
            status,
            plan,
            cycle: Cycle::Monthly,
            period_start: at("12-03T00:00:00Z"),
            period_end: at("12-31T00:00:00Z"),
            cancel_at_period_end: false,
        }
    }

    fn started() -> BillingEvent {
        BillingEvent::SubscriptionStarted {
            subscription_id: "sub_1".into(),
            plan: Plan::Growth,
            cycle: Cycle::Monthly,
            period_start: at("12-03T00:00:00Z"),
            period_end: at("12-31T00:00:00Z"),
            observed_at: at("12-03T00:00:05Z"),
        }
    }

    fn invoice(id: &str) -> InvoiceFacts {
        InvoiceFacts {
            invoice_id: id.into(),
            number: Some(format!("INV-{id}")),
            period_start: at("12-03T00:00:00Z"),
            period_end: at("12-31T00:00:00Z"),
            amount_due: euros(79),
            amount_paid: euros(0),
            hosted_url: None,
        }
    }

    #[test]
    fn a_trial_starts_once_and_nothing_else_happens_before_it() {
        given::<Billing>(&[])
            .when(BillingCommand::RecordCustomer {
                customer_id: "cus_1".into(),
            })
            .then_expect_error(BillingError::NotStarted);
        given::<Billing>(&[trial()])
            .when(BillingCommand::StartTrial {
                plan: Plan::Starter,
                ends_at: at("12-15T10:00:00Z"),
                now: at("12-01T10:00:00Z"),
            })
            .then_expect_error(BillingError::AlreadyStarted);
    }

    #[test]
    fn a_checkout_needs_a_customer_and_a_completed_one_starts_the_subscription() {
        given::<Billing>(&[trial()])
            .when(BillingCommand::StartCheckout {
                session_id: "cs_1".into(),
                url: "https://checkout/cs_1".into(),
                plan: Plan::Growth,
                cycle: Cycle::Monthly,
                now: at("12-03T00:00:00Z"),
            })
            .then_expect_error(BillingError::NoCustomer);
        let sync = |status| BillingCommand::SyncSubscription {
            snapshot: snapshot(status, Plan::Growth),
            observed_at: at("12-03T00:00:05Z"),
        };
        given::<Billing>(&[trial(), customer()])
            .when(sync(StripeStatus::Incomplete))
            .then_expect(&[]);
        given::<Billing>(&[trial(), customer()])
            .when(sync(StripeStatus::Active))
            .then_expect(&[started()]);
        // The same account again, or an older one, changes nothing.
        given::<Billing>(&[trial(), customer(), started()])
            .when(sync(StripeStatus::Active))
            .then_expect(&[]);
        given::<Billing>(&[trial(), customer(), started()])
            .when(BillingCommand::SyncSubscription {
                snapshot: snapshot(StripeStatus::Canceled, Plan::Growth),
                observed_at: at("12-02T00:00:00Z"),
            })
            .then_expect(&[]);
    }

    #[test]
    fn a_downgrade_the_month_already_exceeds_is_refused_naming_the_limit() {
        let usage = UsageNow {
            bookings: 150,
            messages: 10,
            staff_seats: 1,
        };
        given::<Billing>(&[trial(), customer(), started()])
            .when(BillingCommand::ChangePlan {
                plan: Plan::Starter,
                cycle: Cycle::Monthly,
                usage,
                now: at("12-10T00:00:00Z"),
            })
            .then_expect_error(BillingError::OverLimit {
                plan: Plan::Starter,
                metric: "bookings",
                used: 150,
                limit: 100,
            });
        given::<Billing>(&[trial(), customer(), started()])
            .when(BillingCommand::ChangePlan {
                plan: Plan::Pro,
                cycle: Cycle::Monthly,
                usage,
                now: at("12-10T00:00:00Z"),
            })
            .then_expect(&[BillingEvent::PlanChanged {
                from: Plan::Growth,
                to: Plan::Pro,
                cycle: Cycle::Monthly,
                at: at("12-10T00:00:00Z"),
            }]);
    }

    #[test]
    fn a_trial_ending_within_three_days_is_told_once() {
        let soon = BillingEvent::TrialEndingSoon {
            ends_at: at("12-15T10:00:00Z"),
        };
        given::<Billing>(&[trial()])
            .when(BillingCommand::Tick {
                now: at("12-12T09:59:59Z"),
            })
            .then_expect(&[]);
        given::<Billing>(&[trial()])
            .when(BillingCommand::Tick {
                now: at("12-12T10:00:00Z"),
            })
            .then_expect(std::slice::from_ref(&soon));
        given::<Billing>(&[trial(), soon])
            .when(BillingCommand::Tick {
                now: at("12-14T10:00:00Z"),
            })
            .then_expect(&[]);
    }

    #[test]
    fn a_failed_payment_opens_a_grace_period_that_ends_in_suspension_unless_paid() {
        let failed = BillingCommand::RecordPaymentFailed {
            invoice: invoice("in_1"),
            grace: Duration::days(7),
            now: at("12-31T00:00:00Z"),
        };
        let grace = BillingEvent::GracePeriodStarted {
            invoice_id: "in_1".into(),
            started_at: at("12-31T00:00:00Z"),
            ends_at: "2027-01-07T00:00:00Z".parse().unwrap(),
        };
        let failure = BillingEvent::PaymentFailed {
            invoice: invoice("in_1"),
        };
        let history = [trial(), customer(), started()];
        given::<Billing>(&history)
            .when(failed.clone())
            .then_expect(&[failure.clone(), grace.clone()]);
        let mut dunning = history.to_vec();
        dunning.extend([failure.clone(), grace.clone()]);
        // Stripe's retry fails again: recorded once, the grace period does not restart.
        given::<Billing>(&dunning).when(failed).then_expect(&[]);
        let reminder = |day| BillingEvent::PaymentReminderDue {
            invoice_id: "in_1".into(),
            day,
            grace_ends_at: "2027-01-07T00:00:00Z".parse().unwrap(),
        };
        // Reminders on day 3 and day 6, each once; a clock away on day 3 sends only day 6's.
        given::<Billing>(&dunning)
            .when(BillingCommand::Tick {
                now: "2027-01-02T23:59:59Z".parse().unwrap(),
            })
            .then_expect(&[]);
        given::<Billing>(&dunning)
            .when(BillingCommand::Tick {
                now: "2027-01-03T00:00:00Z".parse().unwrap(),
            })
            .then_expect(&[reminder(3)]);
        let mut reminded = dunning.clone();
        reminded.push(reminder(3));
        given::<Billing>(&reminded)
            .when(BillingCommand::Tick {
                now: "2027-01-05T00:00:00Z".parse().unwrap(),
            })
            .then_expect(&[]);
        given::<Billing>(&dunning)
            .when(BillingCommand::Tick {
                now: "2027-01-06T23:59:59Z".parse().unwrap(),
            })
            .then_expect(&[reminder(6)]);
        let suspended = BillingEvent::SuspendedForNonPayment {
            at: "2027-01-07T00:00:00Z".parse().unwrap(),
        };
        given::<Billing>(&dunning)
            .when(BillingCommand::Tick {
                now: "2027-01-07T00:00:00Z".parse().unwrap(),
            })
            .then_expect(std::slice::from_ref(&suspended));
        // A payment at any point ends it; after suspension it reinstates.
        given::<Billing>(&dunning)
            .when(BillingCommand::RecordInvoicePaid {
                invoice: invoice("in_1"),
            })
            .then_expect(&[
                BillingEvent::InvoicePaid {
                    invoice: invoice("in_1"),
                },
                BillingEvent::GracePeriodEnded {
                    invoice_id: "in_1".into(),
                },
            ]);
        dunning.push(suspended);
        given::<Billing>(&dunning)
            .when(BillingCommand::RecordInvoicePaid {
                invoice: invoice("in_1"),
            })
            .then_expect(&[
                BillingEvent::InvoicePaid {
                    invoice: invoice("in_1"),
                },
                BillingEvent::GracePeriodEnded {
                    invoice_id: "in_1".into(),
                },
                BillingEvent::Reinstated {
                    invoice_id: "in_1".into(),
                },
            ]);
    }

    #[test]
    fn usage_is_reported_at_eighty_and_a_hundred_percent_and_an_upgrade_lifts_the_stop() {
        let month = UsageMonth::parse("2026-12").unwrap();
        let report = |used| BillingCommand::ReportUsage {
            month,
            metric: Metric::Bookings,
            used,
        };
        let reached = |threshold, used| BillingEvent::UsageThresholdReached {
            month,
            metric: Metric::Bookings,
            threshold,
            used,
            limit: 100,
        };
        given::<Billing>(&[trial()])
            .when(report(79))
            .then_expect(&[]);
        given::<Billing>(&[trial()])
            .when(report(80))
            .then_expect(&[reached(80, 80)]);
        given::<Billing>(&[trial(), reached(80, 80)])
            .when(report(90))
            .then_expect(&[]);
        given::<Billing>(&[trial(), reached(80, 80)])
            .when(report(100))
            .then_expect(&[reached(100, 100)]);
        let stopped = Billing::fold(&[trial(), reached(80, 80), reached(100, 100)]);
        assert_eq!(
            stopped.bookings_stopped(month),
            Some(BookingsStopped::LimitReached { limit: 100 })
        );
        assert_eq!(
            stopped.bookings_stopped(UsageMonth::parse("2027-01").unwrap()),
            None,
            "a new month starts over"
        );
        let upgraded = Billing::evolve(
            stopped,
            &BillingEvent::PlanChanged {
                from: Plan::Starter,
                to: Plan::Growth,
                cycle: Cycle::Monthly,
                at: at("12-20T00:00:00Z"),
            },
        );
        assert_eq!(upgraded.bookings_stopped(month), None);
        // The bigger plan's own thresholds are news again.
        let growth = |threshold, used| BillingEvent::UsageThresholdReached {
            month,
            metric: Metric::Bookings,
            threshold,
            used,
            limit: 1_000,
        };
        given::<Billing>(&[
            trial(),
            reached(100, 100),
            BillingEvent::PlanChanged {
                from: Plan::Starter,
                to: Plan::Growth,
                cycle: Cycle::Monthly,
                at: at("12-20T00:00:00Z"),
            },
        ])
        .when(report(800))
        .then_expect(&[growth(80, 800)]);
    }

    #[test]
    fn a_trial_that_ends_without_a_subscription_stops_bookings() {
        let told = BillingEvent::TrialEndingSoon {
            ends_at: at("12-15T10:00:00Z"),
        };
        given::<Billing>(&[trial(), told])
            .when(BillingCommand::Tick {
                now: at("12-14T10:00:00Z"),
            })
            .then_expect(&[]);
        given::<Billing>(&[trial()])
            .when(BillingCommand::Tick {
                now: at("12-15T10:00:00Z"),
            })
            .then_expect(&[BillingEvent::TrialEnded {
                at: at("12-15T10:00:00Z"),
            }]);
        let ended = Billing::fold(&[
            trial(),
            BillingEvent::TrialEnded {
                at: at("12-15T10:00:00Z"),
            },
        ]);
        assert_eq!(
            ended.bookings_stopped(UsageMonth::of(at("12-16T00:00:00Z"))),
            Some(BookingsStopped::NoSubscription)
        );
        given::<Billing>(&[trial(), customer(), started()])
            .when(BillingCommand::Tick {
                now: at("12-20T10:00:00Z"),
            })
            .then_expect(&[]);
    }

    #[test]
    fn cancelling_keeps_access_to_the_end_of_the_period() {
        given::<Billing>(&[trial(), customer(), started()])
            .when(BillingCommand::Cancel {
                now: at("12-10T00:00:00Z"),
            })
            .then_expect(&[BillingEvent::CancellationScheduled {
                effective_at: at("12-31T00:00:00Z"),
            }]);
        given::<Billing>(&[trial()])
            .when(BillingCommand::Cancel {
                now: at("12-10T00:00:00Z"),
            })
            .then_expect_error(BillingError::NoSubscription);
    }

    #[test]
    fn months_read_and_print_as_yyyy_mm() {
        let m = UsageMonth::parse("2026-12").unwrap();
        assert_eq!(m.to_string(), "2026-12");
        assert_eq!(
            m.bounds().1,
            "2027-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(UsageMonth::parse("2026-13"), None);
        assert_eq!(UsageMonth::parse("2026-1"), None);
    }
}
