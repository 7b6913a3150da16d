//! The WhatsApp webhook. `GET` answers Meta's verification; `POST` takes messages and statuses.
//!
//! A POST is trusted only after its signature checks out, over the raw bytes, with the app
//! secret of every tenant it concerns (found by `phone_number_id`); otherwise 401 and nothing
//! changes. Whatever cannot be verified answers the same 401: no signature or a malformed one
//! (checked before the body is read), a body that is not a notification, numbers no tenant
//! has connected. So the answer never tells which numbers are connected, and Meta redelivers
//! what was refused (a number connected meanwhile gets it). NUL characters are taken out as
//! the body is read (`Notification::parse`). Then each message is one turn of its
//! conversation (`app::conversation::take_turn`) and each status is recorded
//! (`app::conversation::record_status`), one conversation at a time in this process. 200 is
//! answered only once every turn is durable: Meta redelivers anything else, and a redelivered
//! message changes nothing.

use std::collections::{HashMap, HashSet};

use app::conversation::{Answer, AnswerPolicy};
use app::{AppError, Rejection};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use domain::conversation::{DeliveryStatus, InboundMessage};
use domain::values::PhoneNumber;
use platform::answers::{Busy, Unauthenticated};
use platform::params::Params;
use platform::problem::Problem;
use serde::Deserialize;
use uuid::Uuid;
use whatsapp::webhook::{ChangeValue, Message, Notification, Status};

use crate::AppState;

/// Meta's verification request.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Verification {
    /// `subscribe`
    #[serde(rename = "hub.mode")]
    mode: String,
    /// The verify token the tenant connected its number with.
    #[serde(rename = "hub.verify_token")]
    verify_token: String,
    /// Echoed back.
    #[serde(rename = "hub.challenge")]
    challenge: String,
}

#[derive(utoipa::IntoResponses)]
#[response(status = 403, description = "Not a verification of a connected number")]
pub struct NotOurs;

/// `GET /webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`
#[utoipa::path(
    get,
    path = "/webhooks/whatsapp",
    tag = "whatsapp",
    summary = "Meta's webhook verification: echoes hub.challenge for the right verify token",
    params(Verification),
    responses(
        (status = 200, description = "hub.challenge, as text"),
        NotOurs
    )
)]
pub async fn verify(
    State(state): State<AppState>,
    params: Result<Params<Verification>, Problem>,
) -> Result<Response, Problem> {
    let not_ours = || Problem::forbidden("not a verification of a connected number");
    let Ok(Params(params)) = params else {
        return Err(not_ours());
    };
    let known = app::whatsapp::verify_token_known(&state.app.store, &params.verify_token).await?;
    if params.mode == "subscribe" && known {
        Ok((
            StatusCode::OK,
            [("content-type", "text/plain")],
            params.challenge,
        )
            .into_response())
    } else {
        Err(not_ours())
    }
}

#[derive(utoipa::IntoResponses)]
#[response(status = 413, description = "The body is too large")]
pub struct TooLarge;

/// `POST /webhooks/whatsapp`
#[utoipa::path(
    post,
    path = "/webhooks/whatsapp",
    tag = "whatsapp",
    summary = "Meta's notifications (messages, statuses), signed; 200 once durable",
    request_body = Object,
    params(
        ("X-Hub-Signature-256" = String, Header, description = "sha256=<HMAC of the raw body with the app secret>")
    ),
    responses(
        (status = 200, description = "Every message and status is recorded"),
        Unauthenticated, TooLarge, Busy
    )
)]
pub async fn receive(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<StatusCode, Problem> {
    let body = body.map_err(|rejection| {
        Problem::new(
            rejection.status(),
            "unreadable-body",
            "The body cannot be read",
        )
        .detail(rejection.body_text())
    })?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok())
        .filter(|s| whatsapp::is_well_formed_signature(s))
        .ok_or_else(|| {
            tracing::warn!("security: webhook without a well-formed signature");
            Problem::unauthorized()
        })?;
    let notification = Notification::parse(&body).map_err(|e| {
        tracing::warn!(error = %e, "security: a signed-looking webhook that is not a notification");
        Problem::unauthorized()
    })?;
    let routes = signed_routes(&state, &notification, &body, signature).await?;

    for change in notification.changes() {
        let Some(&tenant_id) = routes.get(&change.metadata.phone_number_id) else {
            continue;
        };
        for message in &change.messages {
            take_turn(&state, tenant_id, change, message).await?;
        }
        for status in &change.statuses {
            record_status(&state, tenant_id, status).await?;
        }
    }
    Ok(StatusCode::OK)
}

/// The tenant of each number the notification concerns, once every one of those tenants'
/// app secrets has signed this exact body; 401 otherwise, and when no number is connected
/// (nothing could verify it).
async fn signed_routes(
    state: &AppState,
    notification: &Notification,
    body: &[u8],
    signature: &str,
) -> Result<HashMap<String, Uuid>, Problem> {
    let ids = notification.phone_number_ids();
    let routes = state.routes.tenants_of(&state.app.store, &ids).await?;
    if routes.len() < ids.len() {
        tracing::warn!(unknown = ?ids.iter().filter(|i| !routes.contains_key(*i)).collect::<Vec<_>>(), "webhook for numbers no tenant has connected");
    }
    if routes.is_empty() {
        return Err(Problem::unauthorized());
    }
    let tenants: HashSet<Uuid> = routes.values().copied().collect();
    for tenant_id in tenants {
        let secret = state.secrets.app_secret(&state.app, tenant_id).await?;
        if !whatsapp::verify_signature(&secret, body, signature) {
            tracing::warn!(tenant = %tenant_id, "security: webhook with a bad signature");
            return Err(Problem::unauthorized());
        }
    }
    Ok(routes)
}

/// A customer writing faster than the limit is answered later: told once, then the latest
/// message when the limit allows.
struct MessageLimit<'a>(&'a AppState);

impl AnswerPolicy for MessageLimit<'_> {
    async fn may_answer(&self, tenant_id: Uuid, message: &InboundMessage) -> Answer {
        let subject = format!("wa:{tenant_id}:{}", message.from.wa_id());
        // Meta redelivers what was not acknowledged: a message counts once.
        match self
            .0
            .limiter
            .check_once(&subject, Some(&message.wamid), self.0.webhook_phone_quota)
            .await
        {
            Ok(()) => Answer::Now,
            Err(limited) => {
                tracing::warn!(%tenant_id, retry_after_ms = limited.retry_after.as_millis() as u64, "security: a customer is over the message limit; answering later");
                let wait = chrono::Duration::from_std(limited.retry_after)
                    .unwrap_or(chrono::Duration::minutes(1));
                Answer::Later {
                    at: Utc::now() + wait,
                }
            }
        }
    }
}

async fn take_turn(
    state: &AppState,
    tenant_id: Uuid,
    change: &ChangeValue,
    message: &Message,
) -> Result<(), Problem> {
    let Ok(from) = PhoneNumber::from_wa_id(&message.from) else {
        tracing::warn!(%tenant_id, from = %message.from, "message from an unusable number; ignored");
        return Ok(());
    };
    let started = std::time::Instant::now();
    let _turn = state
        .conversations
        .lock(format!("{tenant_id}/{}", from.as_str()))
        .await;
    let inbound = InboundMessage {
        wamid: message.id.clone(),
        profile_name: change.profile_name(&message.from),
        content: message.content(),
        received_at: Utc::now(),
        from,
    };
    let taken =
        app::conversation::take_turn(&state.app, tenant_id, inbound, &MessageLimit(state)).await;
    // A turn: from the message's arrival (its wait for the conversation's previous turn
    // included) to its events committed.
    metrics::histogram!("whatsapp_turn_duration_seconds").record(started.elapsed().as_secs_f64());
    metrics::counter!("whatsapp_turns_total", "outcome" => if taken.is_ok() { "taken" } else { "failed" })
        .increment(1);
    taken?;
    Ok(())
}

async fn record_status(state: &AppState, tenant_id: Uuid, status: &Status) -> Result<(), Problem> {
    let (Ok(to), Some(delivery)) = (
        PhoneNumber::from_wa_id(&status.recipient_id),
        DeliveryStatus::parse(&status.status),
    ) else {
        return Ok(()); // not a customer's number, or a status we do not track
    };
    let _turn = state
        .conversations
        .lock(format!("{tenant_id}/{}", to.as_str()))
        .await;
    let recorded =
        app::conversation::record_status(&state.app, tenant_id, &to, &status.id, delivery).await;
    metrics::counter!("whatsapp_statuses_total", "status" => delivery.as_str(), "outcome" => if recorded.is_ok() { "recorded" } else { "refused" })
        .increment(1);
    match recorded {
        Ok(_) => Ok(()),
        // Redelivering cannot change the domain's answer: say so in the log and acknowledge.
        Err(AppError::Rejected(Rejection::Conversation(refused))) => {
            tracing::warn!(%tenant_id, wamid = %status.id, status = %status.status, %refused, "a status the conversation does not take; acknowledged");
            Ok(())
        }
        Err(other) => Err(other.into()),
    }
}
