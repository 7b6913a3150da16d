//! The billing read models: the plans on sale (public), a business's subscription with its
//! month's usage against each limit and the next invoice's estimate (`rm_billing`,
//! `rm_usage`, `rm_users`, `rm_billing_alerts`), and its invoices (`rm_invoices`).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use domain::billing::{BillingStatus, UsageMonth};
use domain::plan::{Cycle, Feature, Plan, PlanSpec};
use domain::values::Money;
use platform::answers::{ConsistencyToken, Forbidden, NotFound, TenantReader};
use platform::params::Params;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::paging::{Cursor, Page, PageParams, fetch_size};
use crate::reader::Reader;

/// An amount of money: minor units (cents) and the currency, and how it reads.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Amount {
    pub minor: i64,
    pub currency: String,
    /// `29.00 EUR`.
    pub display: String,
}

impl From<Money> for Amount {
    fn from(m: Money) -> Self {
        Self {
            minor: m.minor(),
            currency: m.currency().as_str().to_owned(),
            display: m.to_string(),
        }
    }
}

/// A plan's limits per calendar month (UTC); `null` is unlimited.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitsView {
    pub bookings: Option<u32>,
    pub messages: Option<u32>,
    pub staff_seats: Option<u32>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlanView {
    /// `starter`, `growth` or `pro`.
    pub plan: &'static str,
    pub name: &'static str,
    pub monthly: Amount,
    /// Paid once a year: two months free.
    pub yearly: Amount,
    pub limits: LimitsView,
    /// Each WhatsApp message over the month's limit (never cut off, billed as overage).
    pub message_overage: Amount,
    #[schema(value_type = Vec<String>)]
    pub features: &'static [Feature],
}

impl From<PlanSpec> for PlanView {
    fn from(p: PlanSpec) -> Self {
        Self {
            plan: p.plan.as_str(),
            name: p.name,
            monthly: p.monthly.into(),
            yearly: p.yearly.into(),
            limits: LimitsView {
                bookings: p.limits.bookings,
                messages: p.limits.messages,
                staff_seats: p.limits.staff_seats,
            },
            message_overage: p.message_overage.into(),
            features: p.features,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlansView {
    pub plans: Vec<PlanView>,
    /// Days of free trial a new business gets.
    pub trial_days: i64,
}

/// `GET /v1/plans`: what the platform sells. Public.
#[utoipa::path(
    get,
    path = "/v1/plans",
    tag = "billing",
    summary = "The plans on sale: prices, limits, features",
    responses((status = 200, description = "Cheapest first", body = PlansView))
)]
pub async fn plans(State(app): State<AppState>) -> Json<PlansView> {
    Json(PlansView {
        plans: domain::plan::catalogue()
            .into_iter()
            .map(PlanView::from)
            .collect(),
        trial_days: app.trial_days,
    })
}

/// One limit of the plan and the month's use of it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageLine {
    pub used: i64,
    /// `null`: unlimited.
    pub limit: Option<u32>,
    /// `within`, `near_limit` (80 % or more) or `reached`.
    pub state: String,
}

impl UsageLine {
    fn new(used: i64, limit: Option<u32>) -> Self {
        use domain::plan::LimitStatus as L;
        let state = match domain::plan::limit_status(u32::try_from(used).unwrap_or(u32::MAX), limit)
        {
            L::Within => "within",
            L::NearLimit => "near_limit",
            L::Reached => "reached",
        };
        Self {
            used,
            limit,
            state: state.to_owned(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UsageLines {
    /// The calendar month (UTC) counted, `YYYY-MM`.
    pub month: String,
    pub bookings: UsageLine,
    /// WhatsApp messages in and out.
    pub messages: UsageLine,
    /// Members who can sign in, pending invitations included.
    pub staff_seats: UsageLine,
}

/// A usage threshold the month reached (the dashboard's banner).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertView {
    pub metric: String,
    /// 80 or 100 (percent of the limit).
    pub threshold: i16,
    pub used: i32,
    pub limit: i32,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Estimate {
    /// The plan's price for its cycle plus this month's message overage so far.
    pub amount: Amount,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BillingView {
    pub plan: String,
    /// `monthly` or `yearly`; `null` until subscribed.
    pub cycle: Option<String>,
    /// `trialing`, `active`, `past_due`, `suspended` or `cancelled`.
    pub status: String,
    pub trial_ends_at: Option<DateTime<Utc>>,
    pub period_start: Option<DateTime<Utc>>,
    pub period_end: Option<DateTime<Utc>>,
    /// The subscription ends at `period_end`.
    pub cancel_at_period_end: bool,
    /// While `past_due`: when the business is suspended unless a payment arrives.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// A Checkout Session started and not completed yet.
    pub checkout_url: Option<String>,
    pub usage: UsageLines,
    pub alerts: Vec<AlertView>,
    /// `null` when no invoice is coming (cancelled, suspended, ending).
    pub next_invoice: Option<Estimate>,
}

/// `GET /v1/billing`: the business's plan, status, period, usage and next invoice.
#[utoipa::path(
    get,
    path = "/v1/billing",
    tag = "billing",
    summary = "The subscription: plan, status, trial, period, usage against each limit, next invoice",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "The business's billing", body = BillingView),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn billing(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<BillingView>, Problem> {
    reader.require(Permission::ReadUsage)?;
    let now = Utc::now();
    let month = UsageMonth::of(now).to_string();
    let mut tx = reader.begin(&app).await?;
    let Some(row) = sqlx::query!(
        "select status, plan, cycle, trial_ends_at, period_start, period_end,
                cancel_at_period_end, grace_ends_at, checkout_url
           from rm_billing"
    )
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Err(Problem::not_found("billing"));
    };
    let used = sqlx::query!(
        r#"select coalesce((select bookings_created from rm_usage where period = $1), 0) as "bookings!",
                  coalesce((select messages_in + messages_out from rm_usage where period = $1), 0)
                      as "messages!",
                  (select count(*) from rm_users where active) as "seats!""#,
        &month
    )
    .fetch_one(&mut *tx)
    .await?;
    let alerts = sqlx::query_as!(
        AlertView,
        r#"select metric, threshold, used, "limit", at from rm_billing_alerts
            where month = $1 order by metric"#,
        &month
    )
    .fetch_all(&mut *tx)
    .await?;
    let plan = Plan::parse(&row.plan).ok_or_else(|| Problem::internal("an unknown plan"))?;
    let spec = plan.spec();
    let status = BillingStatus::parse(&row.status);
    let cycle = row.cycle.as_deref().and_then(Cycle::parse);
    let messages = u32::try_from(used.messages).unwrap_or(u32::MAX);
    let estimate = |at| {
        let base = spec.price(cycle.unwrap_or(Cycle::Monthly));
        let overage = spec.overage(messages);
        Money::parse(base.minor() + overage.minor(), base.currency().as_str())
            .ok()
            .map(|amount| Estimate {
                amount: amount.into(),
                at,
            })
    };
    let next_invoice = match status {
        Some(BillingStatus::Trialing) => row.trial_ends_at.and_then(estimate),
        Some(BillingStatus::Active | BillingStatus::PastDue) if !row.cancel_at_period_end => {
            row.period_end.and_then(estimate)
        }
        _ => None,
    };
    Ok(Json(BillingView {
        plan: row.plan,
        cycle: row.cycle,
        status: row.status,
        trial_ends_at: row.trial_ends_at,
        period_start: row.period_start,
        period_end: row.period_end,
        cancel_at_period_end: row.cancel_at_period_end,
        grace_ends_at: row.grace_ends_at,
        checkout_url: row.checkout_url,
        usage: UsageLines {
            month,
            bookings: UsageLine::new(used.bookings, spec.limits.bookings),
            messages: UsageLine::new(used.messages, spec.limits.messages),
            staff_seats: UsageLine::new(used.seats, spec.limits.staff_seats),
        },
        alerts,
        next_invoice,
    }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InvoiceView {
    pub invoice_id: String,
    pub number: Option<String>,
    pub period_start: DateTime<Utc>,
    pub period_end: DateTime<Utc>,
    pub amount_due: i64,
    pub amount_paid: i64,
    pub currency: String,
    /// `paid`, `failed` or `action_required`.
    pub status: String,
    /// Stripe's page where the invoice is read and paid.
    pub hosted_url: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/billing/invoices?limit=&cursor=`: newest period first.
#[utoipa::path(
    get,
    path = "/v1/billing/invoices",
    tag = "billing",
    summary = "The business's invoices, newest first",
    params(ConsistencyToken, PageParams),
    responses(
        (status = 200, description = "A page of invoices", body = Page<InvoiceView>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn invoices(
    State(app): State<AppState>,
    reader: Reader,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<InvoiceView>>, Problem> {
    reader.require(Permission::ManageBilling)?;
    let after = page.cursor.map(|c| (c.at, c.key));
    let mut tx = reader.begin(&app).await?;
    let rows = sqlx::query_as!(
        InvoiceView,
        "select invoice_id, number, period_start, period_end, amount_due, amount_paid, currency,
                status, hosted_url, updated_at
           from rm_invoices
          where ($1::timestamptz is null or (period_start, invoice_id) < ($1, $2))
          order by period_start desc, invoice_id desc
          limit $3",
        after.as_ref().map(|a| a.0),
        after.as_ref().map(|a| a.1.as_str()),
        fetch_size(page.limit)
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(Page::of(rows, page.limit, |r| {
        Cursor::new(r.period_start, &r.invoice_id)
    })))
}
