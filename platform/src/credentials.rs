//! Who a tenant request comes from: a user's access token or an API key. Both services
//! authenticate the same way; the tenant always comes from the credential.

use axum::http::header;
use axum::http::request::Parts;
use eventstore::EventStore;
use uuid::Uuid;

use crate::auth::JwtKeys;
use crate::problem::Problem;

pub use app::Actor;
pub use app::api_keys::API_KEY_PREFIX;

/// The rate-limit subject of a credential.
pub fn limit_subject(actor: &Actor) -> String {
    match actor {
        Actor::User { id, .. } => format!("cred:user:{id}"),
        Actor::ApiKey { id, .. } => format!("cred:key:{id}"),
    }
}

/// The bearer token of a request.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110 section 11.1).
            let (scheme, token) = v.trim_start().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
}

/// 401 unless the session of a member's access token still speaks for them: the very next
/// request after a logout, a deactivation or a change of role is refused.
pub async fn require_live(
    store: &EventStore,
    tenant_id: Uuid,
    user_id: Uuid,
    session: crate::auth::SessionRef,
) -> Result<(), Problem> {
    if app::sessions::is_live(store, tenant_id, user_id, session.epoch, session.id).await? {
        return Ok(());
    }
    tracing::info!(target: "security", %tenant_id, %user_id, "an access token of an ended session was refused");
    Err(Problem::unauthorized())
}

/// The tenant and actor of a bearer token: a valid access token of a live session (see
/// [`crate::auth::SessionRef`]), or a live API key. 401 otherwise.
pub async fn authenticate(
    store: &EventStore,
    keys: &JwtKeys,
    bearer: &str,
) -> Result<(Uuid, Actor), Problem> {
    if bearer.starts_with(API_KEY_PREFIX) {
        app::api_keys::authenticate(store, bearer)
            .await?
            .ok_or_else(Problem::unauthorized)
    } else {
        let claims = keys.verify(bearer).ok_or_else(Problem::unauthorized)?;
        require_live(store, claims.tid, claims.sub, claims.session()).await?;
        Ok((
            claims.tid,
            Actor::User {
                id: claims.sub,
                role: claims.role,
            },
        ))
    }
}
