//! The caller of a tenant route: a user (access token) or an API key, of a tenant that is open
//! for business. The tenant always comes from the credential.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::access::{Permission, Role};
use platform::problem::Problem;
use uuid::Uuid;

use crate::AppState;
use crate::exec::CommandContext;

pub use platform::credentials::{API_KEY_PREFIX, Actor};

/// A suspended tenant answers 423 with its reason; a closed one 401.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: Uuid,
    pub actor: Actor,
    request_id: Option<String>,
    idempotency_key: Option<String>,
}

impl Caller {
    pub fn tenant_id(&self) -> Uuid {
        self.tenant_id
    }

    /// 403 unless the user's role, or the key's scopes, allow it.
    pub fn require(&self, permission: Permission) -> Result<(), Problem> {
        self.actor.require(permission)
    }

    pub fn user_id(&self) -> Option<Uuid> {
        match self.actor {
            Actor::User { id, .. } => Some(id),
            Actor::ApiKey { .. } => None,
        }
    }

    pub fn role(&self) -> Option<Role> {
        match self.actor {
            Actor::User { role, .. } => Some(role),
            Actor::ApiKey { .. } => None,
        }
    }

    /// The command context: actor, request id, and the client's idempotency key or a fresh one.
    pub fn context(&self) -> CommandContext {
        CommandContext {
            tenant_id: self.tenant_id,
            actor: self.actor.label(),
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
        let bearer = platform::credentials::bearer(parts).ok_or_else(Problem::unauthorized)?;
        let (tenant_id, actor) =
            platform::credentials::authenticate(app.store.pool(), &app.keys, bearer).await?;
        app.limit(&actor.limit_subject(), crate::limits::PER_CREDENTIAL)
            .await?;
        app.tenant_status
            .require_open(&app.store, tenant_id)
            .await?;
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
            tenant_id,
            actor,
            request_id: header("x-request-id"),
            idempotency_key,
        })
    }
}

/// A user's own access token (API keys are not accepted) for a tenant open for business: the
/// session endpoints (`/v1/me`, the second factor).
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: domain::access::Role,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = platform::auth::Principal::from_request_parts(parts, app).await?;
        app.tenant_status
            .require_open(&app.store, principal.tenant_id)
            .await?;
        Ok(SignedIn {
            tenant_id: principal.tenant_id,
            user_id: principal.user_id,
            role: principal.role,
        })
    }
}
