//! The queries. Each reads its tenant's read models in one read-only transaction; ids of
//! another tenant's objects find nothing under RLS and answer 404.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use domain::access::Permission;
use domain::agenda::Interval;
use domain::bot_config::{BotSettings, Service};
use domain::values::PhoneNumber;
use eventstore::{Position, RecordedEvent};
use platform::auth::Operator;
use platform::problem::Problem;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::reader::Reader;

const DEFAULT_PAGE: i64 = 50;
const MAX_PAGE: i64 = 200;

type Params = Query<HashMap<String, String>>;

/// `limit`: 1 to 200, 50 by default.
fn page_size(params: &HashMap<String, String>) -> Result<i64, Problem> {
    match params.get("limit") {
        None => Ok(DEFAULT_PAGE),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Problem::invalid("limit", format!("is a number from 1 to {MAX_PAGE}"))),
    }
}

/// An opaque cursor: the sort key of the last row of the previous page.
fn encode_cursor(at: DateTime<Utc>, key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{key}", at.to_rfc3339()))
}

fn decode_cursor(
    params: &HashMap<String, String>,
) -> Result<Option<(DateTime<Utc>, String)>, Problem> {
    let Some(raw) = params.get("cursor") else {
        return Ok(None);
    };
    let bad = || Problem::invalid("cursor", "is the next_cursor of a previous page");
    let text = URL_SAFE_NO_PAD
        .decode(raw)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(bad)?;
    let (at, key) = text.split_once('|').ok_or_else(bad)?;
    let at = DateTime::parse_from_rfc3339(at).map_err(|_| bad())?;
    Ok(Some((at.with_timezone(&Utc), key.to_owned())))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TenantView {
    pub tenant_id: Uuid,
    pub slug: String,
    pub business_name: String,
    pub contact_email: String,
    pub time_zone: String,
    pub plan: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub trial_ends_at: DateTime<Utc>,
    pub whatsapp_phone_number_id: Option<String>,
    pub whatsapp_display_number: Option<String>,
    pub whatsapp_credentials_valid: Option<bool>,
    pub onboarded_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/tenant`: the caller's tenant.
#[utoipa::path(
    get,
    path = "/v1/tenant",
    tag = "tenant",
    summary = "The caller's tenant: profile, status, plan, WhatsApp number",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write")
    ),
    responses(
        (status = 200, description = "The caller's tenant: profile, status, plan, WhatsApp number", body = TenantView),
        (status = 401, description = "No valid credential"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn tenant(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<TenantView>, Problem> {
    let mut tx = reader.begin(&app).await?;
    let view: Option<TenantView> = sqlx::query_as("select * from rm_tenants")
        .fetch_optional(&mut *tx)
        .await?;
    view.map(Json).ok_or_else(|| Problem::not_found("tenant"))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ServicesView {
    #[schema(value_type = Vec<Object>)]
    pub services: Vec<Service>,
}

/// `GET /v1/services`: every service, retired ones with `active: false`, in the order added.
#[utoipa::path(
    get,
    path = "/v1/services",
    tag = "catalog",
    summary = "Every service, retired ones inactive, in the order added",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write")
    ),
    responses(
        (status = 200, description = "Every service, retired ones inactive, in the order added", body = ServicesView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn services(
    State(app): State<AppState>,
    reader: Reader,
) -> Result<Json<ServicesView>, Problem> {
    reader.require(Permission::ReadConfig)?;
    let mut tx = reader.begin(&app).await?;
    let rows: Vec<(sqlx::types::Json<Service>,)> =
        sqlx::query_as("select service from rm_services order by position")
            .fetch_all(&mut *tx)
            .await?;
    Ok(Json(ServicesView {
        services: rows.into_iter().map(|(s,)| s.0).collect(),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BotConfigView {
    /// The configuration's version: `PUT /v1/bot-config` takes it in `If-Match`.
    pub version: i32,
    #[schema(value_type = Object)]
    pub settings: Option<Value>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /v1/bot-config`, with the version as its ETag.
#[utoipa::path(
    get,
    path = "/v1/bot-config",
    tag = "catalog",
    summary = "The bot configuration and its version (ETag)",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write")
    ),
    responses(
        (status = 200, description = "The bot configuration and its version (ETag)", body = BotConfigView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn bot_config(State(app): State<AppState>, reader: Reader) -> Result<Response, Problem> {
    reader.require(Permission::ReadConfig)?;
    let mut tx = reader.begin(&app).await?;
    let row: Option<(i32, Option<Value>, DateTime<Utc>)> =
        sqlx::query_as("select version, settings, updated_at from rm_bot_config")
            .fetch_optional(&mut *tx)
            .await?;
    let Some((version, settings, updated_at)) = row else {
        return Err(Problem::not_found("bot configuration"));
    };
    let mut response = Json(BotConfigView {
        version,
        settings,
        updated_at,
    })
    .into_response();
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{version}\"")) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    Ok(response)
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AvailabilityView {
    pub service_id: Uuid,
    #[schema(value_type = String, format = Date)]
    pub date: NaiveDate,
    pub time_zone: String,
    pub slots: Vec<SlotView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SlotView {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// The start on the business's wall clock.
    #[schema(value_type = String, example = "2026-12-01T10:00:00")]
    pub local_start: chrono::NaiveDateTime,
}

/// `GET /v1/availability?service_id=…&date=YYYY-MM-DD`: the free slots of a service on a
/// local date, by the same rules the bot offers them.
#[utoipa::path(
    get,
    path = "/v1/availability",
    tag = "catalog",
    summary = "Free slots of a service on a local date",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("service_id" = Uuid, Query, description = "The service"),
        ("date" = String, Query, description = "YYYY-MM-DD, the business's local date")
    ),
    responses(
        (status = 200, description = "Free slots of a service on a local date", body = AvailabilityView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 422, description = "A parameter is not valid (the field is named)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn availability(
    State(app): State<AppState>,
    reader: Reader,
    Query(params): Params,
) -> Result<Json<AvailabilityView>, Problem> {
    reader.require(Permission::ReadBookings)?;
    let service_id: Uuid = params
        .get("service_id")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Problem::invalid("service_id", "is a service's id"))?;
    let date: NaiveDate = params
        .get("date")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Problem::invalid("date", "is a date, YYYY-MM-DD"))?;
    let mut tx = reader.begin(&app).await?;
    let settings: Option<(Option<sqlx::types::Json<BotSettings>>,)> =
        sqlx::query_as("select settings from rm_bot_config")
            .fetch_optional(&mut *tx)
            .await?;
    let settings = settings
        .and_then(|(s,)| s)
        .ok_or_else(|| Problem::not_found("bot configuration"))?
        .0;
    let service: Option<(sqlx::types::Json<Service>,)> =
        sqlx::query_as("select service from rm_services where service_id = $1 and active")
            .bind(service_id)
            .fetch_optional(&mut *tx)
            .await?;
    let service = service.ok_or_else(|| Problem::not_found("service"))?.0.0;
    let holds: Vec<(DateTime<Utc>, DateTime<Utc>)> =
        sqlx::query_as("select starts_at, ends_at from rm_agenda where resource = $1 and day = $2")
            .bind(domain::ids::ResourceId::default_resource().as_str())
            .bind(date)
            .fetch_all(&mut *tx)
            .await?;
    let holds: Vec<Interval> = holds
        .into_iter()
        .filter_map(|(start, end)| Interval::new(start, end))
        .collect();
    let slots = domain::availability::free_slots(&settings, &service, date, &holds, Utc::now());
    Ok(Json(AvailabilityView {
        service_id,
        date,
        time_zone: settings.time_zone.as_str().to_owned(),
        slots: slots
            .into_iter()
            .map(|s| SlotView {
                start: s.appointment.start,
                end: s.appointment.end,
                local_start: s.local_start,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct BookingRow {
    pub booking_id: Uuid,
    pub reference: String,
    pub service_id: Uuid,
    pub service_name: String,
    pub resource: String,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: String,
    pub channel: String,
    pub customer_phone: String,
    pub customer_name: Option<String>,
    pub price_minor: i64,
    pub currency: String,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const BOOKING_COLUMNS: &str = "booking_id, reference, service_id, service_name, resource, \
    starts_at, ends_at, status, channel, customer_phone, customer_name, price_minor, currency, \
    version, created_at, updated_at";

const STATUSES: [&str; 5] = [
    "requested",
    "confirmed",
    "cancelled",
    "completed",
    "no_show",
];

fn instant(
    params: &HashMap<String, String>,
    field: &str,
) -> Result<Option<DateTime<Utc>>, Problem> {
    params
        .get(field)
        .map(|raw| {
            DateTime::parse_from_rfc3339(raw)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    raw.parse::<NaiveDate>()
                        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
                })
                .map_err(|_| Problem::invalid(field, "is an RFC 3339 time or a date"))
        })
        .transpose()
}

/// `GET /v1/bookings?status=&from=&to=&customer=&limit=&cursor=`: bookings by start time,
/// filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/bookings",
    tag = "bookings",
    summary = "Bookings by start time, filtered, a page at a time",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("status" = Option<String>, Query, description = "requested, confirmed, cancelled, completed or no_show"),
        ("from" = Option<String>, Query, description = "Starting at or after (RFC 3339 or a date)"),
        ("to" = Option<String>, Query, description = "Starting before"),
        ("customer" = Option<String>, Query, description = "The customer's phone, E.164"),
        ("limit" = Option<i64>, Query, description = "1 to 200, 50 by default"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
    ),
    responses(
        (status = 200, description = "Bookings by start time, filtered, a page at a time", body = Page<BookingRow>),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 422, description = "A parameter is not valid (the field is named)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn bookings(
    State(app): State<AppState>,
    reader: Reader,
    Query(params): Params,
) -> Result<Json<Page<BookingRow>>, Problem> {
    reader.require(Permission::ReadBookings)?;
    let limit = page_size(&params)?;
    let status = match params.get("status") {
        Some(s) if !STATUSES.contains(&s.as_str()) => {
            return Err(Problem::invalid(
                "status",
                format!("is one of {}", STATUSES.join(", ")),
            ));
        }
        other => other.cloned(),
    };
    let from = instant(&params, "from")?;
    let to = instant(&params, "to")?;
    let customer = params
        .get("customer")
        .map(|raw| {
            PhoneNumber::parse(raw)
                .map(|p| p.as_str().to_owned())
                .map_err(|e| Problem::invalid("customer", e.to_string()))
        })
        .transpose()?;
    let cursor = decode_cursor(&params)?;
    let (after_at, after_id) = match &cursor {
        Some((at, id)) => (
            Some(*at),
            Some(id.parse::<Uuid>().map_err(|_| {
                Problem::invalid("cursor", "is the next_cursor of a previous page")
            })?),
        ),
        None => (None, None),
    };
    let mut tx = reader.begin(&app).await?;
    let mut rows: Vec<BookingRow> = sqlx::query_as(&format!(
        "select {BOOKING_COLUMNS} from rm_bookings
         where ($1::text is null or status = $1)
           and ($2::timestamptz is null or starts_at >= $2)
           and ($3::timestamptz is null or starts_at < $3)
           and ($4::text is null or customer_phone = $4)
           and ($5::timestamptz is null or (starts_at, booking_id) > ($5, $6))
         order by starts_at, booking_id
         limit $7"
    ))
    .bind(status)
    .bind(from)
    .bind(to)
    .bind(customer)
    .bind(after_at)
    .bind(after_id)
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| encode_cursor(r.starts_at, &r.booking_id.to_string()))
    } else {
        None
    };
    Ok(Json(Page {
        items: rows,
        next_cursor,
    }))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub version: i32,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub actor: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BookingDetail {
    #[serde(flatten)]
    pub booking: BookingRow,
    pub history: Vec<HistoryEntry>,
}

/// `GET /v1/bookings/{id}`: one booking and everything that happened to it.
#[utoipa::path(
    get,
    path = "/v1/bookings/{id}",
    tag = "bookings",
    summary = "One booking and everything that happened to it",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("id" = Uuid, Path, description = "The booking")
    ),
    responses(
        (status = 200, description = "One booking and everything that happened to it", body = BookingDetail),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn booking(
    State(app): State<AppState>,
    reader: Reader,
    Path(id): Path<String>,
) -> Result<Json<BookingDetail>, Problem> {
    reader.require(Permission::ReadBookings)?;
    let id: Uuid = id.parse().map_err(|_| Problem::not_found("booking"))?;
    let mut tx = reader.begin(&app).await?;
    let booking: Option<BookingRow> = sqlx::query_as(&format!(
        "select {BOOKING_COLUMNS} from rm_bookings where booking_id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(booking) = booking else {
        tracing::info!(target: "security", tenant_id = %reader.tenant_id, booking_id = %id, "a booking id not of this tenant was asked for");
        return Err(Problem::not_found("booking"));
    };
    let history: Vec<HistoryEntry> = sqlx::query_as(
        "select version, event_type, payload, actor, correlation_id, recorded_at
         from rm_booking_history where booking_id = $1 order by version",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(BookingDetail { booking, history }))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct ConversationRow {
    pub customer_phone: String,
    pub profile_name: Option<String>,
    pub last_message_at: DateTime<Utc>,
    pub last_direction: String,
    pub last_preview: String,
    pub handed_off: bool,
    pub messages: i32,
}

/// `GET /v1/conversations?limit=&cursor=`: the inbox, latest first.
#[utoipa::path(
    get,
    path = "/v1/conversations",
    tag = "conversations",
    summary = "The inbox, latest first",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("limit" = Option<i64>, Query, description = "1 to 200, 50 by default"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")
    ),
    responses(
        (status = 200, description = "The inbox, latest first", body = Page<ConversationRow>),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 422, description = "A parameter is not valid (the field is named)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn conversations(
    State(app): State<AppState>,
    reader: Reader,
    Query(params): Params,
) -> Result<Json<Page<ConversationRow>>, Problem> {
    reader.require(Permission::ReadConversations)?;
    let limit = page_size(&params)?;
    let cursor = decode_cursor(&params)?;
    let mut tx = reader.begin(&app).await?;
    let mut rows: Vec<ConversationRow> = sqlx::query_as(
        "select customer_phone, profile_name, last_message_at, last_direction, last_preview,
             handed_off, messages
         from rm_conversations
         where $1::timestamptz is null or (last_message_at, customer_phone) < ($1, $2)
         order by last_message_at desc, customer_phone desc
         limit $3",
    )
    .bind(cursor.as_ref().map(|c| c.0))
    .bind(cursor.as_ref().map(|c| c.1.clone()))
    .bind(limit + 1)
    .fetch_all(&mut *tx)
    .await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|r| encode_cursor(r.last_message_at, &r.customer_phone))
    } else {
        None
    };
    Ok(Json(Page {
        items: rows,
        next_cursor,
    }))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
}

#[derive(sqlx::FromRow)]
struct ConversationWithState {
    #[sqlx(flatten)]
    conversation: ConversationRow,
    bot_state: Option<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
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
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("phone" = String, Path, description = "The customer's phone, E.164 (+ as %2B)")
    ),
    responses(
        (status = 200, description = "One conversation: messages with delivery status, and the bot's state", body = ConversationDetail),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
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
    let row: Option<ConversationWithState> = sqlx::query_as(
        "select customer_phone, profile_name, last_message_at, last_direction, last_preview,
             handed_off, messages, bot_state
         from rm_conversations where customer_phone = $1",
    )
    .bind(phone.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Err(Problem::not_found("conversation"));
    };
    let messages: Vec<MessageRow> = sqlx::query_as(
        "select message_id, direction, content, at, wamid, status, error_code, error_reason
         from rm_messages where customer_phone = $1 order by version",
    )
    .bind(phone.as_str())
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(ConversationDetail {
        conversation: row.conversation,
        bot_state: row.bot_state,
        messages,
    }))
}

#[derive(Debug, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct UsageView {
    pub period: String,
    pub messages_in: i64,
    pub messages_out: i64,
    pub bookings_created: i64,
    pub bookings_cancelled: i64,
}

/// `GET /v1/usage?period=YYYY-MM` (this month by default, UTC).
#[utoipa::path(
    get,
    path = "/v1/usage",
    tag = "usage",
    summary = "Messages and bookings of a month",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("period" = Option<String>, Query, description = "YYYY-MM, this month by default")
    ),
    responses(
        (status = 200, description = "Messages and bookings of a month", body = UsageView),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 422, description = "A parameter is not valid (the field is named)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn usage(
    State(app): State<AppState>,
    reader: Reader,
    Query(params): Params,
) -> Result<Json<UsageView>, Problem> {
    reader.require(Permission::ReadAudit)?;
    let period = match params.get("period") {
        Some(p) => {
            NaiveDate::parse_from_str(&format!("{p}-01"), "%Y-%m-%d")
                .map_err(|_| Problem::invalid("period", "is a month, YYYY-MM"))?;
            p.clone()
        }
        None => Utc::now().format("%Y-%m").to_string(),
    };
    let mut tx = reader.begin(&app).await?;
    let row: Option<UsageView> = sqlx::query_as(
        "select period, messages_in, messages_out, bookings_created, bookings_cancelled
         from rm_usage where period = $1",
    )
    .bind(&period)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(Json(row.unwrap_or(UsageView {
        period,
        messages_in: 0,
        messages_out: 0,
        bookings_created: 0,
        bookings_cancelled: 0,
    })))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// Pass as `after` to read on from here.
    pub position: String,
    pub stream: String,
    pub version: u32,
    pub event_id: Uuid,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub actor: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub causation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// The position of the last entry: pass it as `after`.
    pub next_after: Option<String>,
}

impl From<RecordedEvent> for AuditEntry {
    fn from(e: RecordedEvent) -> Self {
        AuditEntry {
            position: e.position.to_string(),
            stream: e.stream.to_string(),
            version: e.version,
            event_id: e.event_id,
            event_type: e.event_type,
            payload: e.payload,
            actor: e.metadata.actor,
            correlation_id: e.metadata.correlation_id,
            causation_id: e.metadata.causation_id,
            recorded_at: e.recorded_at,
        }
    }
}

fn audit_page(events: Vec<RecordedEvent>) -> AuditPage {
    let items: Vec<AuditEntry> = events.into_iter().map(AuditEntry::from).collect();
    AuditPage {
        next_after: items.last().map(|e| e.position.clone()),
        items,
    }
}

fn after(params: &HashMap<String, String>) -> Result<Position, Problem> {
    params
        .get("after")
        .map(|raw| {
            raw.parse::<Position>()
                .map_err(|_| Problem::invalid("after", "is the next_after of a previous page"))
        })
        .transpose()
        .map(|p| p.unwrap_or(Position::START))
}

/// `GET /v1/audit?after=&limit=`: the tenant's own events in commit order, with who caused
/// them (admins and owners).
#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "audit",
    summary = "The tenant's own events in commit order, with actor and correlation",
    params(
        ("x-consistency-token" = Option<String>, Header, description = "Wait (up to 2 s) until the read models include this write"),
        ("after" = Option<String>, Query, description = "next_after of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 200, 50 by default")
    ),
    responses(
        (status = 200, description = "The tenant's own events in commit order, with actor and correlation", body = AuditPage),
        (status = 401, description = "No valid credential"),
        (status = 403, description = "The credential's role or scopes do not allow it"),
        (status = 422, description = "A parameter is not valid (the field is named)"),
        (status = 423, description = "The tenant is suspended"),
        (status = 429, description = "Over the credential's rate limit"),
        (status = 503, description = "The read models have not reached the consistency token yet (Retry-After)")
    ),
    security(("bearer" = []))
)]
pub async fn audit(
    State(app): State<AppState>,
    reader: Reader,
    Query(params): Params,
) -> Result<Json<AuditPage>, Problem> {
    reader.require(Permission::ReadAudit)?;
    let limit = page_size(&params)?;
    let events = app
        .store
        .read_tenant(reader.tenant_id, after(&params)?, limit as usize)
        .await?;
    Ok(Json(audit_page(events)))
}

/// `GET /v1/operator/tenants/{id}/audit?after=&limit=`: any tenant's events, for the platform
/// operator only, through the operator role.
#[utoipa::path(
    get,
    path = "/v1/operator/tenants/{id}/audit",
    tag = "operator",
    summary = "Any tenant's events, for the platform operator",
    params(
        ("id" = Uuid, Path, description = "The tenant"),
        ("after" = Option<String>, Query, description = "next_after of the previous page"),
        ("limit" = Option<i64>, Query, description = "1 to 200, 50 by default")
    ),
    responses(
        (status = 200, description = "Any tenant's events, for the platform operator", body = AuditPage),
        (status = 401, description = "No valid credential"),
        (status = 404, description = "Not found (or another tenant's)"),
        (status = 422, description = "A parameter is not valid (the field is named)")
    ),
    security(("bearer" = []))
)]
pub async fn operator_audit(
    State(app): State<AppState>,
    operator: Operator,
    Path(tenant): Path<String>,
    Query(params): Params,
    headers: HeaderMap,
) -> Result<Json<AuditPage>, Problem> {
    let tenant: Uuid = tenant.parse().map_err(|_| Problem::not_found("tenant"))?;
    let limit = page_size(&params)?;
    tracing::info!(target: "security", operator = %operator.id, tenant_id = %tenant, request_id = ?headers.get("x-request-id"), "operator read a tenant's audit log");
    let events = app
        .log
        .read_tenant(tenant, after(&params)?, limit as usize)
        .await?;
    Ok(Json(audit_page(events)))
}
