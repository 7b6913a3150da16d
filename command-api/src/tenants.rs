//! Self-service onboarding: a business signs up and gets its owner's tokens.

use app::onboarding::Onboarding;
use app::{AppError, FieldError};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use domain::plan::Plan;
use domain::values::{BusinessName, Email, IanaTimeZone, TenantSlug};
use platform::answers::{Invalid, JsonBody, RateLimited, Taken};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{TokenPair, tokens};
use crate::client::ClientIp;
use crate::{AppState, request_id};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    #[schema(
        format = "visible-text",
        min_length = 1,
        max_length = 100,
        example = "Demo Salon"
    )]
    pub business_name: String,
    #[schema(schema_with = platform::schemas::slug)]
    pub slug: String,
    #[schema(schema_with = platform::schemas::email)]
    pub owner_email: String,
    #[schema(schema_with = platform::schemas::password)]
    pub owner_password: String,
    #[schema(schema_with = platform::schemas::time_zone)]
    pub time_zone: String,
}

/// Every field checked, each failure naming its field.
fn parse(r: OnboardRequest) -> Result<Onboarding, AppError> {
    let mut errors = Vec::new();
    let mut field = |name: &str, message: String| errors.push(FieldError::new(name, message));
    let business_name = BusinessName::parse(&r.business_name)
        .map_err(|e| field("business_name", e.to_string()))
        .ok();
    let slug = TenantSlug::parse(&r.slug)
        .map_err(|e| field("slug", e.to_string()))
        .ok();
    let owner_email = Email::parse(&r.owner_email)
        .map_err(|e| field("owner_email", e.to_string()))
        .ok();
    let time_zone = IanaTimeZone::parse(&r.time_zone)
        .map_err(|e| field("time_zone", e.to_string()))
        .ok();
    if let Err(AppError::Invalid(mut password)) =
        app::team::check_password("owner_password", &r.owner_password)
    {
        errors.append(&mut password);
    }
    match (business_name, slug, owner_email, time_zone) {
        (Some(business_name), Some(slug), Some(owner_email), Some(time_zone))
            if errors.is_empty() =>
        {
            Ok(Onboarding {
                business_name,
                slug,
                owner_email,
                owner_password: r.owner_password,
                time_zone,
            })
        }
        _ => Err(AppError::Invalid(errors)),
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub slug: String,
    pub business_name: String,
    pub time_zone: String,
    #[schema(value_type = String, example = "starter")]
    pub plan: Plan,
    pub status: &'static str,
    pub trial_ends_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OnboardResponse {
    pub tenant: TenantView,
    pub owner_id: Uuid,
    #[serde(flatten)]
    pub tokens: TokenPair,
    pub consistency_token: String,
}

/// `POST /v1/tenants`: the tenant, its owner and the owner's first session, in one transaction.
#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "tenants",
    summary = "Sign up a business: its tenant, a trial, the owner and their tokens",
    request_body = OnboardRequest,
    responses(
        (status = 201, description = "The business, its trial and the owner's tokens", body = OnboardResponse),
        JsonBody, Taken, Invalid, RateLimited
    )
)]
pub async fn onboard(
    State(state): State<AppState>,
    ClientIp(client): ClientIp,
    headers: HeaderMap,
    ApiJson(request): ApiJson<OnboardRequest>,
) -> Result<impl IntoResponse, Problem> {
    // Unauthenticated and worth an argon2 hash: limited per address, and all together.
    state
        .limit(&format!("onboard-ip:{client}"), state.onboard_quota)
        .await?;
    if let Err(limited) = state.limit("onboard-all", state.onboard_global_quota).await {
        state.security.record(platform::security::SecurityEvent {
            kind: "signups_capped",
            tenant_id: None,
            actor: None,
            source: Some(client.to_string()),
            detail: serde_json::json!({}),
        });
        return Err(limited);
    }
    let onboarding = parse(request)?;
    let (slug, business_name, time_zone) = (
        onboarding.slug.to_string(),
        onboarding.business_name.to_string(),
        onboarding.time_zone.to_string(),
    );
    let done = app::onboarding::onboard(&state.app, request_id(&headers), onboarding).await?;
    let onboarded = &done.value;
    let body = OnboardResponse {
        tenant: TenantView {
            id: onboarded.tenant_id,
            slug,
            business_name,
            time_zone,
            plan: onboarded.plan,
            status: "active",
            trial_ends_at: onboarded.trial_ends_at,
        },
        owner_id: onboarded.session.user_id,
        tokens: tokens(&state, &onboarded.session)?,
        consistency_token: done.consistency_token(),
    };
    Ok((StatusCode::CREATED, Json(body)))
}
