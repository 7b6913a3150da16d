//! The tenants read model (`rm_tenants`): the caller's business, its status, plan and number.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use platform::answers::{ConsistencyToken, NotFound, TenantReader};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::AppState;
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantView {
    pub tenant_id: Uuid,
    pub slug: String,
    pub business_name: String,
    pub contact_email: String,
    pub time_zone: String,
    pub plan: String,
    pub status: String,
    pub status_reason: Option<String>,
    /// Whether the contact email is verified: until it is, the business cannot connect
    /// WhatsApp or take bookings.
    pub email_verified: bool,
    pub trial_ends_at: DateTime<Utc>,
    pub whatsapp_phone_number_id: Option<String>,
    pub whatsapp_display_number: Option<String>,
    pub whatsapp_credentials_valid: Option<bool>,
    pub onboarded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/tenant`: the caller's tenant.
#[utoipa::path(
    get,
    path = "/v1/tenant",
    tag = "tenant",
    summary = "The caller's tenant: profile, status, plan, whether its email is verified, WhatsApp number",
    params(ConsistencyToken),
    responses(
        (status = 200, description = "The caller's tenant", body = TenantView),
        TenantReader, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn tenant(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<TenantView>, Problem> {
    let mut tx = reader.begin(&app).await?;
    let view = sqlx::query_as!(
        TenantView,
        r#"select tenant_id, slug, business_name, contact_email, time_zone,
                coalesce((select b.plan from rm_billing b), plan) as "plan!", status,
                status_reason, email_verified, trial_ends_at, whatsapp_phone_number_id, whatsapp_display_number,
                whatsapp_credentials_valid, onboarded_at, updated_at
           from rm_tenants"#
    )
    .fetch_optional(&mut *tx)
    .await?;
    view.map(Json).ok_or_else(|| Problem::not_found("tenant"))
}
