//! `GET /v1/events/stream`: the business's public events (`domain::integration`) as
//! server-sent events, for its own systems.
//!
//! Each event's SSE id is its number in the tenant's feed (`rm_public_events`, 1, 2, ... in the
//! log's commit order). A client that reconnects with `Last-Event-ID: n` gets every event after
//! `n`, none skipped and none twice; without it, the stream starts with the next event (`0`
//! replays the feed from its first event). The feed is a read model, so an event arrives once
//! the projector has applied it (milliseconds behind its command).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use domain::access::Permission;
use futures::Stream;
use platform::answers::{BadParameter, Forbidden, RateLimited, Unauthenticated};
use platform::problem::Problem;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use crate::AppState;
use crate::reader::{Reader, tenant_read};

/// How often an idle stream looks for new events.
const POLL: Duration = Duration::from_millis(250);
/// The most events read at once.
const PAGE: i64 = 200;

/// `GET /v1/events/stream`
/// One server-sent event of the stream, as a client's SSE parser hands it over.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // documents the wire format; the stream writes it with axum's `Event`
pub struct SseEvent {
    /// The event's number in the business's feed: `Last-Event-ID` resumes after it.
    #[schema(pattern = "^[0-9]+$")]
    id: String,
    /// The public event's type, e.g. `booking.created`.
    event: String,
    /// The public event as JSON (see `/asyncapi.json`).
    data: String,
}

#[utoipa::path(
    get,
    path = "/v1/events/stream",
    tag = "integrations",
    summary = "The business's public events, as server-sent events",
    description = "Every public event (booking.created, booking.cancelled, ..., conversation.handed_off; see the query API's /asyncapi.json) of the business, in order, as `text/event-stream`: each SSE event has the event's number in the business's feed as its `id`, its type as its `event`, and the JSON body as its `data`. Reconnect with `Last-Event-ID` to resume after the last event seen, without gaps; `Last-Event-ID: 0` replays the feed from the start; without it the stream starts with the next event. A comment is sent every 15 s while idle. The server ends a stream after a while (10 minutes as shipped): reconnect with the last id seen and nothing is lost. API keys with the `read_events` scope, owners and admins.",
    params(
        ("Last-Event-ID" = Option<String>, Header, pattern = "^[0-9]{1,18}$", description = "The last event seen: the stream resumes after it")
    ),
    responses(
        (status = 200, description = "The stream (text/event-stream), open until the client leaves or the server's limit: one server-sent event per public event", content_type = "text/event-stream", body = SseEvent),
        Unauthenticated, Forbidden, BadParameter, RateLimited
    ),
    security(("bearer" = []))
)]
pub async fn stream(
    State(app): State<AppState>,
    reader: Reader,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Problem> {
    reader.require(Permission::ReadEvents)?;
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| {
                Problem::invalid(
                    "Last-Event-ID",
                    "is the id of an event of this stream (a whole number)",
                )
            })? as i64,
        None => head(&app.pool, reader.tenant_id).await?,
    };
    let feed = Feed {
        pool: app.pool.clone(),
        tenant_id: reader.tenant_id,
        after,
        ready: VecDeque::new(),
        closing: app.closing.clone(),
        until: Instant::now() + app.stream_lifetime,
    };
    let events = futures::stream::unfold(feed, |mut feed| async move {
        let (seq, topic, body) = feed.next().await?;
        let event = Event::default()
            .id(seq.to_string())
            .event(topic)
            .data(body.to_string());
        Some((Ok(event), feed))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Feed {
    pool: PgPool,
    tenant_id: Uuid,
    after: i64,
    ready: VecDeque<(i64, String, serde_json::Value)>,
    /// The service is stopping: the stream ends (the client reconnects elsewhere).
    closing: tokio_util::sync::CancellationToken,
    /// The stream's end of life (`limits.stream_max_seconds`): the client reconnects.
    until: Instant,
}

impl Feed {
    /// The next event, waiting for one; `None` when the service stops or the stream's time is
    /// up (the events not yet sent stay for the reconnection, which resumes after the last
    /// one sent).
    async fn next(&mut self) -> Option<(i64, String, serde_json::Value)> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                self.after = event.0;
                return Some(event);
            }
            if self.closing.is_cancelled() || Instant::now() >= self.until {
                return None;
            }
            match page(&self.pool, self.tenant_id, self.after).await {
                Ok(events) if !events.is_empty() => self.ready.extend(events),
                Ok(_) => {}
                // A database blip: the stream stays open and tries again.
                Err(err) => tracing::warn!(error = %err, "could not read the public events feed"),
            }
            if self.ready.is_empty() {
                tokio::select! {
                    _ = self.closing.cancelled() => return None,
                    _ = tokio::time::sleep_until(self.until.min(Instant::now() + POLL)) => {}
                }
            }
        }
    }
}

/// The tenant's events after `after`, in order (its transaction sees only its rows).
async fn page(
    pool: &PgPool,
    tenant_id: Uuid,
    after: i64,
) -> sqlx::Result<Vec<(i64, String, serde_json::Value)>> {
    let mut tx = tenant_read(pool, tenant_id).await?;
    let rows = sqlx::query!(
        "select seq, topic, body from rm_public_events
         where tenant_id = $1 and seq > $2 order by seq limit $3",
        tenant_id,
        after,
        PAGE
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|r| (r.seq, r.topic, r.body)).collect())
}

/// The number of the tenant's last event so far (0 before its first).
async fn head(pool: &PgPool, tenant_id: Uuid) -> Result<i64, Problem> {
    let mut tx = tenant_read(pool, tenant_id).await?;
    let last = sqlx::query_scalar!(
        "select last_seq from rm_public_event_heads where tenant_id = $1",
        tenant_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(last.unwrap_or(0))
}
