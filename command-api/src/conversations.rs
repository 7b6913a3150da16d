//! A person of the business in a customer's WhatsApp conversation: taking it over (the bot
//! pauses for that customer), replying as the business, handing it back to the bot. The use
//! cases are `app::conversation`; the sender delivers a person's reply like the bot's, and the
//! query API shows the thread with its delivery ticks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use domain::access::Permission;
use domain::values::PhoneNumber;
use platform::answers::{
    Busy, Conflict, Forbidden, InvalidOrKeyReused, JsonBody, KeyedConflict, NotFound, TenantCaller,
};
use platform::problem::{ApiJson, Problem};
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::caller::Caller;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Changed {
    pub consistency_token: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyRequest {
    /// What the customer reads (at most 4,096 characters).
    #[schema(
        min_length = 1,
        max_length = 4096,
        pattern = r"\S",
        example = "Hi Ana, we can fit you in at 10:30 tomorrow."
    )]
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplyQueued {
    /// The reply's id in the conversation's messages (its delivery status is read there).
    pub message_id: String,
    /// The 24-hour window had closed: the reply goes as the business's follow-up template,
    /// with the text as its parameter.
    pub as_template: bool,
    pub consistency_token: String,
}

/// The customer of the path, or no such conversation (`+` may come as `%2B` or a space).
fn customer(phone: &str) -> Result<PhoneNumber, Problem> {
    phone_in_path(phone, "conversation")
}

/// The phone of a path, or no such `what`.
fn phone_in_path(phone: &str, what: &'static str) -> Result<PhoneNumber, Problem> {
    PhoneNumber::parse(phone)
        .or_else(|_| PhoneNumber::parse(&format!("+{}", phone.trim_start())))
        .map_err(|_| Problem::not_found(what))
}

/// `POST /v1/conversations/{phone}/handoff`.
#[utoipa::path(
    post,
    path = "/v1/conversations/{phone}/handoff",
    tag = "conversations",
    summary = "Take a conversation over: the bot pauses for this customer",
    description = "From now on the bot does not answer this customer; a person of the business does (`/messages`). The bot answers again once the conversation is handed back (`/release`), or when the customer asks for the menu. Taking over a conversation already taken by the caller changes nothing. Members with `reply_conversations` (owners, admins, staff) and API keys with that scope.",
    params(("phone" = String, Path, description = "The customer's phone, E.164 (+ as %2B)")),
    responses(
        (status = 200, description = "Taken over", body = Changed),
        TenantCaller, Forbidden, NotFound, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn take_over(
    State(state): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
) -> Result<Json<Changed>, Problem> {
    caller.require(Permission::ReplyConversations)?;
    let done =
        app::conversation::take_over(&state.app, &caller.context(), &customer(&phone)?).await?;
    Ok(Json(Changed {
        consistency_token: done.consistency_token(),
    }))
}

/// `POST /v1/conversations/{phone}/messages`.
#[utoipa::path(
    post,
    path = "/v1/conversations/{phone}/messages",
    tag = "conversations",
    summary = "Reply to the customer as the business (takes the conversation over)",
    description = "The reply is sent on WhatsApp like the bot's, once (a retry with the same Idempotency-Key is the same reply); its delivery status shows in the conversation's messages. Within 24 hours of the customer's last message it goes as text. After that WhatsApp accepts only an approved template: the reply goes as the business's follow-up template (`messaging.follow_up_template` of the bot configuration) with the text as its parameter, and without one it is refused (409, field `text`). Replying takes the conversation over if nobody had.",
    params(("phone" = String, Path, description = "The customer's phone, E.164 (+ as %2B)")),
    request_body = ReplyRequest,
    responses(
        (status = 202, description = "Queued for sending", body = ReplyQueued),
        JsonBody, TenantCaller, Forbidden, NotFound, Conflict, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
    ApiJson(request): ApiJson<ReplyRequest>,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Permission::ReplyConversations)?;
    let done = app::conversation::reply(
        &state.app,
        &caller.context(),
        &customer(&phone)?,
        &request.text,
    )
    .await?;
    let consistency_token = done.consistency_token();
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplyQueued {
            message_id: done.value.reply_id,
            as_template: done.value.as_template,
            consistency_token,
        }),
    ))
}

/// `POST /v1/conversations/{phone}/release`.
#[utoipa::path(
    post,
    path = "/v1/conversations/{phone}/release",
    tag = "conversations",
    summary = "Hand a conversation back to the bot",
    description = "The bot answers this customer again from the start of its flow (it remembers their name). Releasing a conversation the bot already has changes nothing.",
    params(("phone" = String, Path, description = "The customer's phone, E.164 (+ as %2B)")),
    responses(
        (status = 200, description = "Handed back", body = Changed),
        TenantCaller, Forbidden, NotFound, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn release(
    State(state): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
) -> Result<Json<Changed>, Problem> {
    caller.require(Permission::ReplyConversations)?;
    let done =
        app::conversation::hand_back(&state.app, &caller.context(), &customer(&phone)?).await?;
    Ok(Json(Changed {
        consistency_token: done.consistency_token(),
    }))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerErased {
    /// The customer's bookings: kept, with no one behind them, so the business's counts and
    /// revenue hold.
    pub bookings: usize,
    pub consistency_token: String,
}

/// `POST /v1/customers/{phone}/erase`.
#[utoipa::path(
    post,
    path = "/v1/customers/{phone}/erase",
    tag = "customers",
    summary = "Erase a customer: their right to erasure",
    description = "Everything the business holds of this customer that names them (their phone, their names, what they wrote and were sent, the bot's memory of them) is erased: the key their data is sealed with in the log is deleted, so from this answer on every read, rebuild and new consumer of the log sees stand-ins (a `+999` number, `[erased]` texts), and the read models scrub what they showed once they reach the token. Their bookings stay, with no one behind them: counts and revenue hold. If the customer writes again, theirs is a new conversation. Owners and admins (`erase_customers`); each erasure is logged as a security event. A phone the business never met (or erased already) is not found.",
    params(("phone" = String, Path, description = "The customer's phone, E.164 (+ as %2B)")),
    responses(
        (status = 200, description = "Erased", body = CustomerErased),
        TenantCaller, Forbidden, NotFound, KeyedConflict, InvalidOrKeyReused, Busy
    ),
    security(("bearer" = []))
)]
pub async fn erase(
    State(state): State<AppState>,
    caller: Caller,
    Path(phone): Path<String>,
) -> Result<Json<CustomerErased>, Problem> {
    caller.require(Permission::EraseCustomers)?;
    let customer = phone_in_path(&phone, "customer")?;
    let done = app::customers::erase(&state.app, &caller.context(), &customer).await?;
    state.security.record(platform::security::SecurityEvent {
        kind: "customer_erased",
        tenant_id: Some(caller.tenant_id),
        actor: Some(caller.actor.label()),
        source: None,
        detail: serde_json::json!({ "bookings": done.value.bookings }),
    });
    Ok(Json(CustomerErased {
        bookings: done.value.bookings,
        consistency_token: done.consistency_token(),
    }))
}
