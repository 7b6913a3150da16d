//! The conversations read model (`rm_conversations`, `rm_messages`): the inbox, latest first
//! (or only those waiting for a person), and one conversation with its messages (outbound ones
//! with their delivery status and who sent them) and the bot's state.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use domain::access::Permission;
use domain::values::PhoneNumber;
use platform::answers::{ConsistencyToken, Forbidden, NotFound, TenantReader};
use platform::params::Params;
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::paging::{Cursor, Page, PageParams, fetch_size};
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationRow {
    pub customer_phone: String,
    pub profile_name: Option<String>,
    pub last_message_at: DateTime<Utc>,
    pub last_direction: String,
    pub last_preview: String,
    /// A person of the business answers this customer (the customer asked, or someone took
    /// the conversation over): the bot is quiet.
    pub handed_off: bool,
    /// Who of the business took it over (an actor: `user:<id>`, `api_key:<id>`).
    pub taken_over_by: Option<String>,
    /// When WhatsApp's window to reply freely closes: 24 hours after the customer last wrote.
    /// After it only the business's follow-up template can be sent. `None`: never wrote.
    pub window_closes_at: Option<DateTime<Utc>>,
    /// How many messages the conversation has (named apart from a conversation's `messages`,
    /// the list, which its detail carries beside these fields).
    pub message_count: i32,
    /// When the customer asked on WhatsApp to have their data deleted, while the business has
    /// not erased them (`POST /v1/customers/{phone}/erase` on the command API).
    pub erasure_requested_at: Option<DateTime<Utc>>,
}

/// The inbox's filter.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Only conversations waiting for a person: handed off, or with a request to delete the
    /// customer's data.
    #[serde(default)]
    pub waiting: bool,
}

/// `GET /v1/conversations?limit=&cursor=&waiting=`: the inbox, latest first.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "conversations",
    summary = "The inbox, latest first",
    params(ConsistencyToken, PageParams, InboxParams),
    responses(
        (status = 200, description = "A page of conversations", body = Page<ConversationRow>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn conversations(
    State(app): State<AppState>,
    reader: Reader,
    Params(page): Params<PageParams>,
    Params(filter): Params<InboxParams>,
) -> Result<Json<Page<ConversationRow>>, Problem> {
    reader.require(Permission::ReadConversations)?;
    let mut tx = reader.begin(&app).await?;
    let rows = sqlx::query_as!(
        ConversationRow,
        r#"select customer_phone, profile_name, last_message_at, last_direction, last_preview,
                handed_off, taken_over_by, last_inbound_at + $5::interval as window_closes_at,
                messages as message_count, erasure_requested_at
           from rm_conversations
          where ($1::timestamptz is null or (last_message_at, customer_phone) < ($1, $2))
            and (handed_off or erasure_requested_at is not null or not $4)
          order by last_message_at desc, customer_phone desc
          limit $3"#,
        page.cursor.as_ref().map(|c| c.at),
        page.cursor.as_ref().map(|c| c.key.clone()),
        fetch_size(page.limit),
        filter.waiting,
        window()
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(Page::of(rows, page.limit, |r| {
        Cursor::new(r.last_message_at, &r.customer_phone)
    })))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageRow {
    pub message_id: String,
    pub direction: String,
    #[schema(value_type = Object)]
    pub content: Value,
    pub at: DateTime<Utc>,
    pub wamid: Option<String>,
    pub status: Option<String>,
    pub error_code: Option<i64>,
    pub error_reason: Option<String>,
    /// Who of the business wrote it (an actor); `None` for the bot's and the customer's.
    pub sent_by: Option<String>,
}

/// WhatsApp's customer-service window, as Postgres reads an interval.
fn window() -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: domain::conversation::SERVICE_WINDOW
            .num_microseconds()
            .unwrap_or_default(),
    }
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ConversationDetail {
    #[serde(flatten)]
    pub conversation: ConversationRow,
    /// Where the bot is in its flow with this customer (the bot state lookup).
    #[schema(value_type = Object)]
    pub bot_state: Option<Value>,
    pub messages: Vec<MessageRow>,
}

/// `GET /v1/conversations/{phone}`: one customer's conversation, its messages (outbound ones
/// with their delivery status) and the bot's state.
#[utoipa::path(
    get,
    path = "/v1/conversations/{phone}",
    tag = "conversations",
    summary = "One conversation: messages with delivery status, and the bot's state",
    params(
        ConsistencyToken,
        ("phone" = String, Path, pattern = r"^\+[1-9][0-9]{7,14}$", description = "The customer's phone, E.164 (+ as %2B)")
    ),
    responses(
        (status = 200, description = "The conversation", body = ConversationDetail),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn conversation(
    State(app): State<AppState>,
    reader: Reader,
    Path(phone): Path<String>,
) -> Result<Json<ConversationDetail>, Problem> {
    reader.require(Permission::ReadConversations)?;
    let phone = PhoneNumber::parse(&phone)
        .or_else(|_| PhoneNumber::parse(&format!("+{}", phone.trim_start_matches(' '))))
        .map_err(|_| Problem::not_found("conversation"))?;
    let mut tx = reader.begin(&app).await?;
    conversation_of(&mut tx, &phone)
        .await?
        .map(Json)
        .ok_or_else(|| Problem::not_found("conversation"))
}

/// One customer's conversation as the read model holds it; `None` if they never wrote.
pub(crate) async fn conversation_of(
    tx: &mut sqlx::PgConnection,
    phone: &PhoneNumber,
) -> Result<Option<ConversationDetail>, sqlx::Error> {
    let row = sqlx::query!(
        "select customer_phone, profile_name, last_message_at, last_direction, last_preview,
                handed_off, taken_over_by, last_inbound_at + $2::interval as window_closes_at,
                messages, bot_state, erasure_requested_at
           from rm_conversations where customer_phone = $1",
        phone.as_str(),
        window()
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let messages = sqlx::query_as!(
        MessageRow,
        "select message_id, direction, content, at, wamid, status, error_code, error_reason,
                sent_by
           from rm_messages where customer_phone = $1 order by version",
        phone.as_str()
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Some(ConversationDetail {
        conversation: ConversationRow {
            customer_phone: row.customer_phone,
            profile_name: row.profile_name,
            last_message_at: row.last_message_at,
            last_direction: row.last_direction,
            last_preview: row.last_preview,
            handed_off: row.handed_off,
            taken_over_by: row.taken_over_by,
            window_closes_at: row.window_closes_at,
            message_count: row.messages,
            erasure_requested_at: row.erasure_requested_at,
        },
        bot_state: row.bot_state,
        messages,
    }))
}
