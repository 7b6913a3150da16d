//! The caller of a tenant route: a user (access token) or an API key, of a tenant that is open
//! for business. The tenant always comes from the credential.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use domain::access::{Permission, Role};
use platform::problem::Problem;
use uuid::Uuid;

use crate::AppState;
use crate::cache::Gate;
use crate::exec::CommandContext;
use crate::secrets::sha256;

/// API keys are recognisable by this prefix (and so never mistaken for a JWT).
pub const API_KEY_PREFIX: &str = "bk_live_";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    User { id: Uuid, role: Role },
    ApiKey { id: Uuid, scopes: Vec<Permission> },
}

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
        let allowed = match &self.actor {
            Actor::User { role, .. } => role.can(permission),
            Actor::ApiKey { scopes, .. } => scopes.contains(&permission),
        };
        if allowed {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this credential may not {permission:?}"
            )))
        }
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
            actor: match &self.actor {
                Actor::User { id, .. } => format!("user:{id}"),
                Actor::ApiKey { id, .. } => format!("api_key:{id}"),
            },
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

/// The tenant and scopes of a live API key.
async fn api_key(app: &AppState, key: &str) -> Result<(Uuid, Actor), Problem> {
    let hash = sha256(key);
    let found: Option<(Uuid, Uuid)> =
        sqlx::query_as("select tenant_id, key_id from api_key_directory where key_hash = $1")
            .bind(&hash)
            .fetch_optional(app.store.pool())
            .await?;
    let (tenant_id, key_id) = found.ok_or_else(Problem::unauthorized)?;
    let mut tx = app.store.begin(tenant_id).await?;
    let row: Option<(Vec<String>, Option<DateTime<Utc>>, bool)> =
        sqlx::query_as("select scopes, expires_at, revoked_at is not null from api_keys where key_id = $1 and key_hash = $2")
            .bind(key_id)
            .bind(&hash)
            .fetch_optional(tx.conn())
            .await?;
    let Some((scopes, expires_at, revoked)) = row else {
        return Err(Problem::unauthorized());
    };
    if revoked || expires_at.is_some_and(|at| at <= Utc::now()) {
        return Err(Problem::unauthorized());
    }
    sqlx::query("update api_keys set last_used_at = now() where key_id = $1")
        .bind(key_id)
        .execute(tx.conn())
        .await?;
    tx.commit().await?;
    let scopes = scopes
        .iter()
        .filter_map(|s| serde_json::from_value(serde_json::Value::String(s.clone())).ok())
        .collect();
    Ok((tenant_id, Actor::ApiKey { id: key_id, scopes }))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(Problem::unauthorized)?;
        let (tenant_id, actor) = if bearer.starts_with(API_KEY_PREFIX) {
            api_key(app, bearer).await?
        } else {
            let claims = app.keys.verify(bearer).ok_or_else(Problem::unauthorized)?;
            (
                claims.tid,
                Actor::User {
                    id: claims.sub,
                    role: claims.role,
                },
            )
        };
        let subject = match &actor {
            Actor::User { id, .. } => format!("cred:user:{id}"),
            Actor::ApiKey { id, .. } => format!("cred:key:{id}"),
        };
        app.limit(&subject, crate::limits::PER_CREDENTIAL).await?;
        match app.tenant_status.gate(&app.store, tenant_id).await? {
            Gate::Open => {}
            Gate::Suspended { reason } => return Err(Problem::locked(reason)),
            Gate::Gone => return Err(Problem::unauthorized()),
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
            tenant_id,
            actor,
            request_id: header("x-request-id"),
            idempotency_key,
        })
    }
}
