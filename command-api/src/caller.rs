//! The caller of a tenant route: an authenticated principal whose tenant is open for business.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::access::Permission;
use domain::tenant::{Tenant, TenantEvent, TenantStatus};
use platform::auth::Principal;
use platform::problem::Problem;
use uuid::Uuid;

use crate::AppState;
use crate::exec::{CommandContext, load, stream};

/// A principal of an active tenant. A suspended tenant answers 423 with its reason; a closed
/// one 401 (its credentials are no longer good for anything).
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    request_id: Option<String>,
    idempotency_key: Option<String>,
}

impl Caller {
    pub fn tenant_id(&self) -> Uuid {
        self.principal.tenant_id
    }

    pub fn require(&self, permission: Permission) -> Result<(), Problem> {
        self.principal.require(permission)
    }

    /// The command context: actor, request id, and the client's idempotency key or a fresh one.
    pub fn context(&self) -> CommandContext {
        CommandContext {
            tenant_id: self.principal.tenant_id,
            actor: format!("user:{}", self.principal.user_id),
            request_id: self.request_id.clone(),
            idempotency_key: self
                .idempotency_key
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
        }
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        self.idempotency_key.as_deref()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = Principal::from_request_parts(parts, app).await?;
        let tenant_id = principal.tenant_id;
        let (tenant, _) =
            load::<Tenant>(&app.store, tenant_id, &stream::<TenantEvent>(tenant_id)).await?;
        match tenant.onboarded {
            Some(t) if t.status == TenantStatus::Active => {}
            Some(t) if t.status == TenantStatus::Suspended => {
                return Err(Problem::locked(
                    t.suspension_reason
                        .map(|r| r.to_string())
                        .unwrap_or_default(),
                ));
            }
            _ => return Err(Problem::unauthorized()),
        }
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.chars().take(200).collect::<String>())
        };
        let idempotency_key = header("idempotency-key");
        if idempotency_key
            .as_ref()
            .is_some_and(|k| k.trim().is_empty())
        {
            return Err(Problem::invalid("Idempotency-Key", "must not be empty"));
        }
        Ok(Caller {
            principal,
            request_id: header("x-request-id"),
            idempotency_key,
        })
    }
}
