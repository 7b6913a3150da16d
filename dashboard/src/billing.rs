//! Billing (owners): the plan and where the subscription stands, the month's usage against the
//! plan's limits, the plans to subscribe to (through Stripe's checkout) or switch to, ending
//! the subscription, and the invoices.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use query_api::billing::{BillingView, InvoiceView};
use query_api::paging::Page;
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::api::Failure;
use crate::pages::{Member, after_write, failed, member_form, money, render, see_other};
use crate::session::random_token;

/// A usage line: what, used, the limit (or none), and how full it is, for a `<meter>`.
pub struct Usage {
    pub what: &'static str,
    pub used: i64,
    pub limit: Option<u32>,
    pub state: String,
}

pub struct PlanCard {
    pub plan: String,
    pub name: String,
    pub monthly: String,
    pub yearly: String,
    pub limits: String,
    pub current: bool,
}

pub struct InvoiceLine {
    pub number: String,
    pub period: String,
    pub amount: String,
    pub status: String,
    pub url: Option<String>,
}

#[derive(Template)]
#[template(path = "billing.html")]
pub struct BillingPage {
    pub business: String,
    pub csrf: String,
    pub key: String,
    pub plan: String,
    pub status: String,
    /// Where the subscription stands, in a sentence.
    pub standing: String,
    /// Subscribing goes through Stripe's checkout (trial, or ended); otherwise plans switch.
    pub subscribe: bool,
    pub can_cancel: bool,
    pub usage: Vec<Usage>,
    pub plans: Vec<PlanCard>,
    pub invoices: Vec<InvoiceLine>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct BillingQuery {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
    /// Stripe sends the owner back with `checkout=done` once they paid.
    #[serde(default)]
    pub checkout: Option<String>,
}

fn date(t: Option<chrono::DateTime<chrono::Utc>>, m: &Member) -> String {
    t.map(|t| t.with_timezone(&m.tz).format("%-d %B %Y").to_string())
        .unwrap_or_default()
}

async fn billing_page(
    state: &AppState,
    m: &mut Member,
    after: Option<&str>,
) -> Result<BillingPage, Response> {
    let billing: BillingView = m
        .read_after(state, "/v1/billing", after)
        .await
        .map_err(failed)?;
    let plans: Value = m.read(state, "/v1/plans").await.map_err(failed)?;
    let invoices: Page<InvoiceView> = m
        .read(state, "/v1/billing/invoices?limit=24")
        .await
        .map_err(failed)?;
    let standing = match billing.status.as_str() {
        "trialing" => format!(
            "Free trial until {}: subscribe to keep taking bookings after it.",
            date(billing.trial_ends_at, m)
        ),
        "active" if billing.cancel_at_period_end => format!(
            "Ends on {}: nothing more is charged.",
            date(billing.period_end, m)
        ),
        "active" => format!(
            "Renews on {}{}.",
            date(billing.period_end, m),
            billing
                .next_invoice
                .as_ref()
                .map(|e| format!(" for {}", e.amount.display))
                .unwrap_or_default()
        ),
        "past_due" => format!(
            "The last payment failed: pay the invoice before {} or the business is suspended.",
            date(billing.grace_ends_at, m)
        ),
        "suspended" => "Suspended for an unpaid invoice: pay it to take bookings again.".into(),
        "cancelled" => "The subscription has ended: subscribe again to take bookings.".into(),
        other => other.replace('_', " "),
    };
    let limit = |l: &Value| match l.as_u64() {
        Some(n) => n.to_string(),
        None => "unlimited".into(),
    };
    let cards = plans["plans"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| PlanCard {
            plan: p["plan"].as_str().unwrap_or_default().to_owned(),
            name: p["name"].as_str().unwrap_or_default().to_owned(),
            monthly: p["monthly"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            yearly: p["yearly"]["display"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            limits: format!(
                "{} bookings, {} messages a month, {} seats",
                limit(&p["limits"]["bookings"]),
                limit(&p["limits"]["messages"]),
                limit(&p["limits"]["staff_seats"])
            ),
            current: p["plan"] == billing.plan.as_str(),
        })
        .collect();
    let u = &billing.usage;
    Ok(BillingPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        key: random_token(),
        subscribe: matches!(billing.status.as_str(), "trialing" | "cancelled"),
        can_cancel: matches!(billing.status.as_str(), "active" | "past_due")
            && !billing.cancel_at_period_end,
        plan: billing.plan.clone(),
        status: billing.status.replace('_', " "),
        standing,
        usage: [
            ("Bookings", &u.bookings),
            ("WhatsApp messages", &u.messages),
            ("Team seats", &u.staff_seats),
        ]
        .into_iter()
        .map(|(what, line)| Usage {
            what,
            used: line.used,
            limit: line.limit,
            state: line.state.replace('_', " "),
        })
        .collect(),
        plans: cards,
        invoices: invoices
            .items
            .into_iter()
            .map(|i| InvoiceLine {
                number: i.number.unwrap_or(i.invoice_id),
                period: format!(
                    "{} – {}",
                    date(Some(i.period_start), m),
                    date(Some(i.period_end), m)
                ),
                amount: money(i.amount_due, &i.currency),
                status: i.status.replace('_', " "),
                url: i.hosted_url,
            })
            .collect(),
        notice: None,
        error: None,
    })
}

/// `GET /billing?after=&notice=`.
pub async fn billing(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BillingQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let mut page = billing_page(&state, &mut m, query.after.as_deref()).await?;
    page.notice = match query.checkout.as_deref() {
        Some("done") => Some(
            "Thank you: the subscription starts as soon as Stripe confirms the payment.".into(),
        ),
        _ => query.notice.filter(|n| n.len() <= 200),
    };
    Ok(render(&page, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct BillingForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub plan: String,
    #[serde(default)]
    pub cycle: String,
}

/// `POST /billing`: subscribe (to Stripe's checkout page), switch plan, or end the
/// subscription at the period's end.
pub async fn act(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, form) = match member_form::<BillingForm>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let cycle = if form.cycle == "yearly" {
        "yearly"
    } else {
        "monthly"
    };
    let (path, body, done) = match form.action.as_str() {
        "subscribe" => (
            "/v1/billing/checkout",
            serde_json::json!({"plan": form.plan, "cycle": cycle}),
            "",
        ),
        "switch" => (
            "/v1/billing/plan",
            serde_json::json!({"plan": form.plan}),
            "The plan is changed.",
        ),
        "cancel" => (
            "/v1/billing/cancel",
            serde_json::json!({}),
            "The subscription ends at the end of this period.",
        ),
        _ => return StatusCode::UNPROCESSABLE_ENTITY.into_response(),
    };
    let key = if form.key.is_empty() {
        random_token()
    } else {
        format!(
            "{}-{}",
            form.key.chars().take(150).collect::<String>(),
            form.action
        )
    };
    match state
        .api
        .write(&state.sessions, &m.id, &mut m.session, path, body, &key)
        .await
    {
        Ok(answer) => match answer["checkout_url"].as_str() {
            // Stripe's page, where the owner enters a card; Stripe sends them back.
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                see_other(url)
            }
            _ => after_write("/billing", &answer, done),
        },
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = match billing_page(&state, &mut m, None).await {
                Ok(page) => page,
                Err(response) => return response,
            };
            let Failure::Refused { status, detail, .. } = failure else {
                unreachable!("matched above")
            };
            page.error = Some(detail);
            render(
                &page,
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
            )
        }
        Err(failure) => failed(failure),
    }
}
