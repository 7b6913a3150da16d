//! A business's subscription from its owner: change the plan or cycle, cancel at the end of
//! the period. (Subscribing goes through Stripe Checkout; Stripe's account of the
//! subscription arrives at `/webhooks/stripe`.)

use app::Committed;
use axum::Json;
use axum::extract::State;
use domain::access::Permission;
use domain::billing::BillingState;
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
    #[schema(value_type = String, example = "growth")]
    pub plan: Plan,
    /// `monthly` or `yearly`; the current cycle by default.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "monthly")]
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
