//! A business's subscription from its owner: subscribe through Stripe Checkout, change the
//! plan or cycle, cancel at the end of the period. Stripe's account of the subscription
//! arrives at `/webhooks/stripe`; a plan change or a cancellation reaches Stripe through the
//! billing reactor, so Stripe being down never blocks them.

use app::Committed;
use axum::Json;
use axum::extract::State;
use domain::access::Permission;
use domain::billing::{BillingState, BillingStatus};
use domain::plan::{Cycle, Plan};
use platform::answers::{
    Busy, Conflict, Forbidden, InvalidOrKeyReused, JsonBody, NotFound, TenantCaller,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::caller::Caller;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePlanRequest {
    /// `starter`, `growth` or `pro`.
    #[schema(schema_with = platform::schemas::plan)]
    pub plan: Plan,
    /// `monthly` or `yearly`; the current cycle by default.
    #[serde(default)]
    #[schema(schema_with = platform::schemas::optional_cycle)]
    pub cycle: Option<Cycle>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    pub plan: String,
    pub cycle: Option<String>,
    pub status: String,
    pub cancel_at_period_end: bool,
    pub period_end: Option<chrono::DateTime<chrono::Utc>>,
    pub consistency_token: String,
}

impl From<Committed<BillingState>> for SubscriptionView {
    fn from(done: Committed<BillingState>) -> Self {
        let consistency_token = done.consistency_token();
        let state = done.value;
        let subscription = state.subscription.as_ref();
        Self {
            plan: state.plan.unwrap_or(Plan::Starter).as_str().to_owned(),
            cycle: state.cycle.map(|c| c.as_str().to_owned()),
            status: state.status.as_str().to_owned(),
            cancel_at_period_end: subscription.is_some_and(|s| s.cancel_at_period_end),
            period_end: subscription.map(|s| s.period_end),
            consistency_token,
        }
    }
}

/// `POST /v1/billing/plan`
#[utoipa::path(
    post,
    path = "/v1/billing/plan",
    tag = "billing",
    summary = "Change the plan or cycle: at once, prorated; a downgrade this month's usage exceeds is refused (409 naming the limit)",
    request_body = ChangePlanRequest,
    responses(
        (status = 200, description = "The subscription on its new plan", body = SubscriptionView),
        JsonBody, TenantCaller, Forbidden, NotFound, Conflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn change_plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<ChangePlanRequest>,
) -> Result<Json<SubscriptionView>, Problem> {
    caller.require(Permission::ManageBilling)?;
    let done =
        app::billing::change_plan(&state.app, &caller.context(), request.plan, request.cycle)
            .await?;
    Ok(Json(done.into()))
}

/// `POST /v1/billing/cancel`
#[utoipa::path(
    post,
    path = "/v1/billing/cancel",
    tag = "billing",
    summary = "Cancel at the end of the period paid for; then bookings stop and nothing is deleted",
    responses(
        (status = 200, description = "The subscription, ending at period_end", body = SubscriptionView),
        TenantCaller, Forbidden, NotFound, Conflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SubscriptionView>, Problem> {
    caller.require(Permission::ManageBilling)?;
    let done = app::billing::cancel(&state.app, &caller.context()).await?;
    Ok(Json(done.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckoutRequest {
    /// `starter`, `growth` or `pro`.
    #[schema(schema_with = platform::schemas::plan)]
    pub plan: Plan,
    /// `monthly` (default) or `yearly`.
    #[serde(default = "monthly")]
    #[schema(schema_with = platform::schemas::cycle)]
    pub cycle: Cycle,
}

fn monthly() -> Cycle {
    Cycle::Monthly
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckoutView {
    /// Stripe's hosted page: the owner enters a card there.
    pub checkout_url: String,
    pub session_id: String,
    pub consistency_token: String,
}

#[derive(utoipa::IntoResponses)]
#[response(
    status = 503,
    description = "Stripe did not answer (Retry-After), or too many concurrent changes"
)]
pub struct StripeDown;

/// `POST /v1/billing/checkout`
#[utoipa::path(
    post,
    path = "/v1/billing/checkout",
    tag = "billing",
    summary = "Subscribe: a Stripe Checkout Session URL where the owner enters a card",
    request_body = CheckoutRequest,
    responses(
        (status = 200, description = "Where to send the owner", body = CheckoutView),
        JsonBody, TenantCaller, Forbidden, NotFound, Conflict, InvalidOrKeyReused, StripeDown
    ),
    security(("bearer" = []))
)]
pub async fn checkout(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CheckoutRequest>,
) -> Result<Json<CheckoutView>, Problem> {
    caller.require(Permission::ManageBilling)?;
    let ctx = caller.context();
    let app = &state.app;
    let billing = app::billing::state(&app.store, ctx.tenant_id).await?;
    if !billing.started {
        return Err(Problem::not_found("subscription"));
    }
    if billing.subscription.is_some() && billing.status != BillingStatus::Cancelled {
        return Err(Problem::conflict(
            "the business already has a subscription; change its plan instead",
        ));
    }
    let stripe = &state.stripe;
    let down = |e: ::billing::GatewayError| match e {
        ::billing::GatewayError::Unavailable(reason) => {
            Problem::unavailable(format!("Stripe did not answer: {reason}"), 30)
        }
        other => Problem::internal(other),
    };
    let customer = match billing.customer_id {
        Some(customer) => customer,
        None => {
            let (name, email) = app::tenants::profile(&app.store, ctx.tenant_id).await?;
            let customer = stripe
                .gateway
                .create_customer(ctx.tenant_id, &name, &email)
                .await
                .map_err(down)?;
            let recorded = app::CommandContext::new(
                ctx.tenant_id,
                ctx.actor.clone(),
                format!("stripe-customer|{customer}"),
            );
            app::billing::record_customer(app, &recorded, customer.clone()).await?;
            customer
        }
    };
    let (session_id, url) = stripe
        .gateway
        .create_checkout(
            ctx.tenant_id,
            &customer,
            request.plan,
            request.cycle,
            &stripe.success_url,
            &stripe.cancel_url,
            &ctx.idempotency_key,
        )
        .await
        .map_err(down)?;
    let done = app::billing::record_checkout(
        app,
        &ctx,
        session_id.clone(),
        url.clone(),
        request.plan,
        request.cycle,
    )
    .await?;
    Ok(Json(CheckoutView {
        checkout_url: url,
        session_id,
        consistency_token: done.consistency_token(),
    }))
}
