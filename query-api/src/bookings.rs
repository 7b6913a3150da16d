//! The bookings read model (`rm_bookings`, `rm_booking_history`): bookings filtered by status,
//! time and customer, a page at a time; one booking with everything that happened to it.

use axum::Json;
use axum::extract::{Path, State};
use chrono::{DateTime, Utc};
use domain::access::Permission;
use domain::booking::BookingStatus;
use domain::ids::ResourceId;
use domain::values::PhoneNumber;
use platform::answers::{ConsistencyToken, Forbidden, NotFound, TenantReader};
use platform::params::{Params, from_text};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::paging::{Cursor, Page, PageParams, fetch_size};
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// When the customer confirmed they will come (a reminder's Confirm); none yet.
    pub attendance_confirmed_at: Option<DateTime<Utc>>,
    /// When the next reminder goes; none when none is due.
    pub next_reminder_at: Option<DateTime<Utc>>,
    /// When the customer came in (the front desk marked them arrived); none yet.
    pub arrived_at: Option<DateTime<Utc>>,
}

/// A time: RFC 3339, or a date (its midnight, UTC).
#[derive(Debug, Clone, Copy)]
pub struct Instant(pub DateTime<Utc>);

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        from_text(
            d,
            |s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .ok()
                    .or_else(|| {
                        let day = platform::params::full_date(s)?;
                        Some(day.and_hms_opt(0, 0, 0)?.and_utc())
                    })
                    .map(Instant)
            },
            "is an RFC 3339 time or a date",
        )
    }
}

/// The filters of the bookings list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BookingFilter {
    /// requested, confirmed, cancelled, completed or no_show.
    #[param(value_type = Option<String>, pattern = "^(requested|confirmed|cancelled|completed|no_show)$")]
    pub status: Option<BookingStatus>,
    /// Starting at or after (RFC 3339 or a date).
    #[param(value_type = Option<String>, format = "date-or-date-time")]
    pub from: Option<Instant>,
    /// Starting before (RFC 3339 or a date).
    #[param(value_type = Option<String>, format = "date-or-date-time")]
    pub to: Option<Instant>,
    /// The customer's phone, E.164.
    #[param(value_type = Option<String>, pattern = r"^\+[1-9][0-9]{7,14}$")]
    pub customer: Option<PhoneNumber>,
    /// Who it is with: a staff member's id (`main` when the business has no staff list).
    /// With `from` and `to`, one column of the calendar.
    #[serde(default, deserialize_with = "crate::catalog::resource")]
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,64}$")]
    pub resource: Option<ResourceId>,
}

/// `GET /v1/bookings?status=&from=&to=&customer=&resource=&limit=&cursor=`: bookings by start
/// time, filtered, a page at a time.
#[utoipa::path(
    get,
    path = "/v1/bookings",
    tag = "bookings",
    summary = "Bookings by start time, filtered, a page at a time",
    params(ConsistencyToken, BookingFilter, PageParams),
    responses(
        (status = 200, description = "A page of bookings", body = Page<BookingRow>),
        TenantReader, Forbidden
    ),
    security(("bearer" = []))
)]
pub async fn bookings(
    State(app): State<AppState>,
    reader: Reader,
    Params(filter): Params<BookingFilter>,
    Params(page): Params<PageParams>,
) -> Result<Json<Page<BookingRow>>, Problem> {
    reader.require(Permission::ReadBookings)?;
    let after = page
        .cursor
        .map(|c| {
            c.uuid_key()
                .map(|id| (c.at, id))
                .ok_or_else(|| Problem::invalid("cursor", "is the next_cursor of a previous page"))
        })
        .transpose()?;
    let mut tx = reader.begin(&app).await?;
    let rows = sqlx::query_as!(
        BookingRow,
        "select booking_id, reference, service_id, service_name, resource, starts_at, ends_at,
                status, channel, customer_phone, customer_name, price_minor, currency, version,
                created_at, updated_at, attendance_confirmed_at, next_reminder_at, arrived_at
           from rm_bookings
          where ($1::text is null or status = $1)
            and ($2::timestamptz is null or starts_at >= $2)
            and ($3::timestamptz is null or starts_at < $3)
            and ($4::text is null or customer_phone = $4)
            and ($5::timestamptz is null or (starts_at, booking_id) > ($5, $6))
            and ($8::text is null or resource = $8)
          order by starts_at, booking_id
          limit $7",
        filter.status.map(BookingStatus::as_str),
        filter.from.map(|t| t.0),
        filter.to.map(|t| t.0),
        filter.customer.as_ref().map(PhoneNumber::as_str),
        after.map(|a| a.0),
        after.map(|a| a.1),
        fetch_size(page.limit),
        filter.resource.as_ref().map(ResourceId::as_str)
    )
    .fetch_all(&mut *tx)
    .await?;
    Ok(Json(Page::of(rows, page.limit, |r| {
        Cursor::new(r.starts_at, r.booking_id)
    })))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    pub version: i32,
    pub event_type: String,
    #[schema(value_type = Object)]
    pub payload: Value,
    pub actor: Option<String>,
    pub correlation_id: Option<Uuid>,
    pub recorded_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
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
        ConsistencyToken,
        ("id" = Uuid, Path, description = "The booking")
    ),
    responses(
        (status = 200, description = "The booking and its history", body = BookingDetail),
        TenantReader, Forbidden, NotFound
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
    let booking = sqlx::query_as!(
        BookingRow,
        "select booking_id, reference, service_id, service_name, resource, starts_at, ends_at,
                status, channel, customer_phone, customer_name, price_minor, currency, version,
                created_at, updated_at, attendance_confirmed_at, next_reminder_at, arrived_at
           from rm_bookings where booking_id = $1",
        id
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(booking) = booking else {
        tracing::info!(target: "security", tenant_id = %reader.tenant_id, booking_id = %id, "a booking id not of this tenant was asked for");
        return Err(Problem::not_found("booking"));
    };
    let history = history_of(&mut tx, id).await?;
    Ok(Json(BookingDetail { booking, history }))
}

async fn history_of(
    tx: &mut sqlx::PgConnection,
    booking: Uuid,
) -> Result<Vec<HistoryEntry>, sqlx::Error> {
    sqlx::query_as!(
        HistoryEntry,
        "select version, event_type, payload, actor, correlation_id, recorded_at
           from rm_booking_history where booking_id = $1 order by version",
        booking
    )
    .fetch_all(&mut *tx)
    .await
}

/// Every booking of one customer, oldest first, each with its history.
pub(crate) async fn bookings_of(
    tx: &mut sqlx::PgConnection,
    phone: &PhoneNumber,
) -> Result<Vec<BookingDetail>, sqlx::Error> {
    let rows = sqlx::query_as!(
        BookingRow,
        "select booking_id, reference, service_id, service_name, resource, starts_at, ends_at,
                status, channel, customer_phone, customer_name, price_minor, currency, version,
                created_at, updated_at, attendance_confirmed_at, next_reminder_at, arrived_at
           from rm_bookings where customer_phone = $1 order by created_at, booking_id",
        phone.as_str()
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut bookings = Vec::with_capacity(rows.len());
    for booking in rows {
        let history = history_of(tx, booking.booking_id).await?;
        bookings.push(BookingDetail { booking, history });
    }
    Ok(bookings)
}
