//! A customer's right of access (GDPR article 15): everything the platform holds about one
//! customer of a business, as one JSON document. Read under the tenant's row-level security
//! like every read, by owners and admins (`read_audit`), and logged as a security event.
//!
//! What is held: the bookings (with their histories), the conversation (every message and the
//! bot's state), the analytics facts that name them, and the log's own events about them: their
//! conversation's stream, their bookings' streams and their entries in the services' waitlists.
//! Copies of those events sent on (the public events feed, webhook deliveries) are the same
//! events and are not listed again.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use domain::access::Permission;
use domain::event::DomainEvent as _;
use domain::values::PhoneNumber;
use eventstore::StreamRef;
use platform::answers::{ConsistencyToken, Forbidden, NotFound, TenantReader};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::AppState;
use crate::audit::AuditEntry;
use crate::bookings::{BookingDetail, bookings_of};
use crate::conversations::{ConversationDetail, conversation_of};
use crate::reader::Reader;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CustomerExport {
    /// The customer's phone, E.164.
    pub phone: String,
    pub exported_at: DateTime<Utc>,
    /// Every name the customer was known by: their WhatsApp profile's, their bookings'.
    pub names: Vec<String>,
    pub bookings: Vec<BookingDetail>,
    /// `None`: they never wrote.
    pub conversation: Option<ConversationDetail>,
    /// The analytics facts that name them: one row a booking, one row a conversation session.
    #[schema(value_type = Object)]
    pub analytics: Value,
    /// The log's events about them, in commit order.
    pub events: Vec<AuditEntry>,
}

/// `GET /v1/customers/{phone}/export`: everything held about one customer.
#[utoipa::path(
    get,
    path = "/v1/customers/{phone}/export",
    tag = "customers",
    summary = "Everything held about one customer (their right of access)",
    description = "The customer's bookings with their histories, their conversation, the \
        analytics facts that name them and the log's events about them, as one document. \
        Owners and admins (`read_audit`); each export is logged as a security event. A phone \
        the business never met is a 404.",
    params(
        ConsistencyToken,
        ("phone" = String, Path, pattern = r"^\+[1-9][0-9]{7,14}$", description = "The customer's phone, E.164 (+ as %2B)")
    ),
    responses(
        (status = 200, description = "Everything held about the customer", body = CustomerExport),
        TenantReader, Forbidden, NotFound
    ),
    security(("bearer" = []))
)]
pub async fn export(
    State(app): State<AppState>,
    reader: Reader,
    Path(phone): Path<String>,
    headers: HeaderMap,
) -> Result<Json<CustomerExport>, Problem> {
    reader.require(Permission::ReadAudit)?;
    let phone = PhoneNumber::parse(&phone).map_err(|_| Problem::not_found("customer"))?;
    let mut tx = reader.begin(&app).await?;
    let bookings = bookings_of(&mut tx, &phone).await?;
    let conversation = conversation_of(&mut tx, &phone).await?;
    // Their conversation's stream and their analytics sessions are theirs by subject id.
    let subject = eventstore::personal::subject_of(&mut tx, reader.tenant_id, phone.as_str())
        .await?
        .map(|s| s.to_string());
    let analytics = sqlx::query_scalar!(
        r#"select jsonb_build_object(
                  'bookings', coalesce((select jsonb_agg(to_jsonb(b) - 'tenant_id' order by b.booked_at)
                                          from analytics.bookings b where b.customer_phone = $1), '[]'),
                  'sessions', coalesce((select jsonb_agg(to_jsonb(s) - 'tenant_id' order by s.started_at)
                                          from analytics.sessions s where s.subject = $2), '[]')
              ) as "facts!""#,
        phone.as_str(),
        subject
    )
    .fetch_one(&mut *tx)
    .await?;
    let services: Vec<String> =
        sqlx::query_scalar!("select service_id::text as \"id!\" from rm_services")
            .fetch_all(&mut *tx)
            .await?;
    tx.rollback().await?;

    let mut streams: Vec<StreamRef> = subject
        .into_iter()
        .map(|s| StreamRef::new(domain::conversation::ConversationEvent::STREAM_TYPE, s))
        .collect();
    streams.extend(bookings.iter().map(|b| {
        StreamRef::new(
            domain::booking::BookingEvent::STREAM_TYPE,
            b.booking.booking_id.to_string(),
        )
    }));
    streams.extend(
        services
            .into_iter()
            .map(|id| StreamRef::new(domain::waitlist::WaitlistEvent::STREAM_TYPE, id)),
    );
    let mut events: Vec<_> = app
        .store
        .read_streams(reader.tenant_id, &streams)
        .await?
        .into_values()
        .flatten()
        // A waitlist holds everyone waiting for its service: only this customer's entries.
        .filter(|e| {
            e.stream.stream_type != domain::waitlist::WaitlistEvent::STREAM_TYPE
                || e.payload["phone"] == phone.as_str()
        })
        .collect();
    events.sort_by_key(|e| e.position);
    if bookings.is_empty() && conversation.is_none() && events.is_empty() {
        return Err(Problem::not_found("customer"));
    }

    let mut names: Vec<String> = conversation
        .iter()
        .filter_map(|c| c.conversation.profile_name.clone())
        .chain(
            bookings
                .iter()
                .filter_map(|b| b.booking.customer_name.clone()),
        )
        .collect();
    names.sort();
    names.dedup();
    app.security.record(platform::security::SecurityEvent {
        kind: "customer_exported",
        tenant_id: Some(reader.tenant_id),
        actor: Some(reader.actor.label()),
        source: None,
        detail: serde_json::json!({
            "request_id": headers.get("x-request-id").and_then(|v| v.to_str().ok()),
        }),
    });
    Ok(Json(CustomerExport {
        phone: phone.as_str().to_owned(),
        exported_at: Utc::now(),
        names,
        bookings,
        conversation,
        analytics,
        events: events.into_iter().map(AuditEntry::from).collect(),
    }))
}
