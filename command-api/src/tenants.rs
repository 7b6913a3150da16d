//! Self-service onboarding: a business signs up and gets its owner's tokens.

use axum::Json;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use chrono::{Duration, Utc};
use domain::access::{Role, UserEvent};
use domain::ids::{TenantId, UserId};
use domain::plan::Plan;
use domain::tenant::TenantEvent;
use domain::values::{BusinessName, Email, IanaTimeZone, TenantSlug};
use eventstore::{AppendError, EventMetadata, ExpectedVersion, StreamAppend};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{TokenPair, issue_tokens};
use crate::exec::{new_events, stream};
use crate::{AppState, request_id};

pub const TRIAL_DAYS: i64 = 14;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardRequest {
    pub business_name: String,
    pub slug: String,
    pub owner_email: String,
    pub owner_password: String,
    pub time_zone: String,
}

/// The request, parsed: every field checked, each failure naming its field.
struct Onboarding {
    business_name: BusinessName,
    slug: TenantSlug,
    owner_email: Email,
    owner_password: String,
    time_zone: IanaTimeZone,
}

impl TryFrom<OnboardRequest> for Onboarding {
    type Error = Problem;

    fn try_from(r: OnboardRequest) -> Result<Self, Problem> {
        let mut problem: Option<Problem> = None;
        let mut fail = |field: &str, message: String| {
            problem = Some(
                problem
                    .take()
                    .unwrap_or_else(|| {
                        Problem::new(
                            StatusCode::UNPROCESSABLE_ENTITY,
                            "invalid-field",
                            "Some fields are not valid",
                        )
                    })
                    .field(field, message),
            );
        };
        let business_name = BusinessName::parse(&r.business_name)
            .map_err(|e| fail("business_name", e.to_string()))
            .ok();
        let slug = TenantSlug::parse(&r.slug)
            .map_err(|e| fail("slug", e.to_string()))
            .ok();
        let owner_email = Email::parse(&r.owner_email)
            .map_err(|e| fail("owner_email", e.to_string()))
            .ok();
        let time_zone = IanaTimeZone::parse(&r.time_zone)
            .map_err(|e| fail("time_zone", e.to_string()))
            .ok();
        let length = r.owner_password.chars().count();
        if !(10..=128).contains(&length) {
            fail(
                "owner_password",
                "a password is 10 to 128 characters".into(),
            );
        }
        match (problem, business_name, slug, owner_email, time_zone) {
            (None, Some(business_name), Some(slug), Some(owner_email), Some(time_zone)) => {
                Ok(Onboarding {
                    business_name,
                    slug,
                    owner_email,
                    owner_password: r.owner_password,
                    time_zone,
                })
            }
            (Some(problem), ..) => Err(problem),
            _ => Err(Problem::internal("a field failed without a problem")),
        }
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
    pub trial_ends_at: chrono::DateTime<Utc>,
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
        (status = 201, description = "Sign up a business: its tenant, a trial, the owner and their tokens", body = OnboardResponse),
        (status = 400, description = "The body is not valid JSON"),
        (status = 409, description = "A conflicting change (e.g. the slot was just taken, a taken slug)"),
        (status = 422, description = "A field is not valid (the field is named); or an Idempotency-Key reused for another body"),
        (status = 429, description = "Over a rate limit (Retry-After)")
    )
)]
pub async fn onboard(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiJson(request): ApiJson<OnboardRequest>,
) -> Result<impl IntoResponse, Problem> {
    // Unauthenticated and worth an argon2 hash: limited per address.
    app.limit(&format!("onboard-ip:{}", peer.ip()), app.onboard_quota)
        .await?;
    let o = Onboarding::try_from(request)?;
    let tenant_id = Uuid::new_v4();
    let owner_id = Uuid::new_v4();
    let trial_ends_at = Utc::now() + Duration::days(TRIAL_DAYS);
    let password_hash = crate::secrets::hash_password(o.owner_password).await?;

    let metadata = EventMetadata {
        actor: Some(format!("user:{owner_id}")),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: None,
        request_id: request_id(&headers),
    };
    let tenant_stream = stream::<TenantEvent>(tenant_id);
    let user_stream = stream::<UserEvent>(owner_id);
    let tenant_events = [TenantEvent::TenantOnboarded {
        tenant_id: TenantId::from_uuid(tenant_id),
        business_name: o.business_name.clone(),
        slug: o.slug.clone(),
        contact_email: o.owner_email.clone(),
        time_zone: o.time_zone,
        plan: Plan::Starter,
        trial_ends_at,
    }];
    let user_events = [UserEvent::UserInvited {
        user_id: UserId::from_uuid(owner_id),
        email: o.owner_email.clone(),
        role: Role::Owner,
        invited_by: None,
    }];

    let mut tx = app.store.begin(tenant_id).await?;
    let reserved = sqlx::query("insert into tenant_directory (slug, tenant_id) values ($1, $2)")
        .bind(o.slug.as_str())
        .bind(tenant_id)
        .execute(tx.conn())
        .await;
    match reserved {
        Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            return Err(Problem::conflict("that slug is taken").field("slug", "already in use"));
        }
        other => other?,
    };
    sqlx::query(
        "insert into user_credentials (tenant_id, user_id, email, password_hash, role)
         values ($1, $2, $3, $4, 'owner')",
    )
    .bind(tenant_id)
    .bind(owner_id)
    .bind(o.owner_email.as_str())
    .bind(&password_hash)
    .execute(tx.conn())
    .await?;
    let outcome = app
        .store
        .append_in(
            &mut tx,
            vec![
                StreamAppend {
                    stream: tenant_stream.clone(),
                    expected: ExpectedVersion::NoStream,
                    events: new_events(
                        tenant_id,
                        "onboard",
                        &tenant_stream,
                        &tenant_events,
                        &metadata,
                    ),
                },
                StreamAppend {
                    stream: user_stream.clone(),
                    expected: ExpectedVersion::NoStream,
                    events: new_events(tenant_id, "onboard", &user_stream, &user_events, &metadata),
                },
            ],
        )
        .await
        .map_err(|e| match e {
            AppendError::Database(db) => Problem::from(db),
            other => Problem::internal(other),
        })?;
    let tokens = issue_tokens(&app, &mut tx, tenant_id, owner_id, Role::Owner, None).await?;
    tx.commit().await?;

    let body = OnboardResponse {
        tenant: TenantView {
            id: tenant_id,
            slug: o.slug.to_string(),
            business_name: o.business_name.to_string(),
            time_zone: o.time_zone.to_string(),
            plan: Plan::Starter,
            status: "active",
            trial_ends_at,
        },
        owner_id,
        tokens,
        consistency_token: outcome.last_position.to_string(),
    };
    Ok((StatusCode::CREATED, Json(body)))
}
