//! The caller of a tenant route: a user (access token) or an API key, of a tenant that is open
//! for business. The tenant always comes from the credential.

use app::CommandContext;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::access::{Permission, Role};
use platform::problem::Problem;
use uuid::Uuid;

use crate::AppState;

pub use platform::credentials::Actor;

/// A suspended tenant answers 423 with its reason; a closed one 401.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: Uuid,
    pub actor: Actor,
    request_id: Option<String>,
    idempotency_key: Option<String>,
}

impl Caller {
    /// 403 unless the user's role, or the key's scopes, allow it.
    pub fn require(&self, permission: Permission) -> Result<(), Problem> {
        Ok(self.actor.require(permission)?)
    }

    /// The command context: actor, request id, and the client's idempotency key or a fresh one.
    pub fn context(&self) -> CommandContext {
        let key = self
            .idempotency_key
            .clone()
            .unwrap_or_else(|| Uuid::new_v4().to_string());
        CommandContext::new(self.tenant_id, self.actor.label(), key)
            .with_request_id(self.request_id.clone())
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = platform::credentials::bearer(parts).ok_or_else(Problem::unauthorized)?;
        let (tenant_id, actor) =
            platform::credentials::authenticate(&state.app.store, &state.keys, bearer).await?;
        platform::security::identified(parts, tenant_id, &actor);
        state
            .limit(
                &platform::credentials::limit_subject(&actor),
                state.credential_quota,
            )
            .await?;
        state
            .tenant_status
            .require_open(&state.app.store, tenant_id)
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
/// second factor's endpoints. Its session must still be live, as for [`Caller`].
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let principal = platform::auth::Principal::from_request_parts(parts, state).await?;
        platform::credentials::require_live(
            &state.app.store,
            principal.tenant_id,
            principal.user_id,
            principal.session,
        )
        .await?;
        platform::security::identified(
            parts,
            principal.tenant_id,
            &app::Actor::User {
                id: principal.user_id,
                role: principal.role,
            },
        );
        state
            .tenant_status
            .require_open(&state.app.store, principal.tenant_id)
            .await?;
        Ok(SignedIn {
            tenant_id: principal.tenant_id,
            user_id: principal.user_id,
            role: principal.role,
        })
    }
}
