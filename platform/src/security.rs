//! Security events: every request a business's route refuses for who is asking or what they
//! ask for (401, 403, 404, 423) is logged on the `security` target, with the route (its
//! template, never the query), the status, the request id and, when the credential was
//! genuine, the tenant and the credential that asked. A run of 404s from one tenant's
//! credential on ids it does not have is what probing for another tenant's data looks like;
//! the log says who did it.

use std::sync::{Arc, Mutex};

use app::Actor;
use axum::extract::{MatchedPath, Request};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use uuid::Uuid;

/// Who asked, once their credential was verified: filled by the APIs' caller extractors.
#[derive(Clone, Default)]
struct Asker(Arc<Mutex<Option<(Uuid, String)>>>);

/// Records, for the request's security event, that the credential of `actor` in `tenant_id`
/// is genuine.
pub fn identified(parts: &Parts, tenant_id: Uuid, actor: &Actor) {
    if let Some(asker) = parts.extensions.get::<Asker>() {
        let credential = match actor {
            Actor::User { id, .. } => format!("user:{id}"),
            Actor::ApiKey { id, .. } => format!("api_key:{id}"),
        };
        *asker.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((tenant_id, credential));
    }
}

/// A refusal of who asks or what they ask for.
pub fn is_refusal(status: u16) -> bool {
    matches!(status, 401 | 403 | 404 | 423)
}

/// Logs every refusal as a security event. A layer of both APIs' routers:
/// `router.layer(axum::middleware::from_fn(platform::security::log_refusals))`.
pub async fn log_refusals(mut request: Request, next: Next) -> Response {
    let asker = Asker::default();
    request.extensions_mut().insert(asker.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let status = response.status().as_u16();
    if let Some(route) = route.filter(|_| is_refusal(status)) {
        let who = asker.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        let (tenant_id, credential) = who.unzip();
        tracing::info!(
            target: "security",
            status,
            %method,
            route,
            tenant_id = tenant_id.map(|t| t.to_string()),
            credential,
            request_id,
            "refused"
        );
    }
    response
}
