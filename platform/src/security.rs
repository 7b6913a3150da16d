//! Security events: every request a business's route refuses for who is asking or what they
//! ask for (401, 403, 404, 423), with the route (its template, never the query), the status,
//! the request id and, when the credential was genuine, the tenant and the credential that
//! asked; failed and throttled sign-ins; a customer's data exported or erased. A run of 404s
//! from one tenant's credential on ids it does not have is what probing for another tenant's
//! data looks like; the event says who did it.
//!
//! Each is logged on the `security` target and kept in `security_events` by a [`SecurityLog`]:
//! a bounded queue the request hands the event to (it never waits on the database), and a
//! writer that inserts what queued in one statement. A flood of refusals fills the queue and
//! what does not fit is counted (`security_events_dropped_total`) and logged, not kept; the
//! requests are not slowed. The writer also deletes events older than [`RETENTION`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use sqlx::PgPool;
use tokio::sync::mpsc;

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

/// How long security events are kept.
pub const RETENTION: chrono::Duration = chrono::Duration::days(180);

/// Events waiting for the writer, at most.
const QUEUE: usize = 10_000;

/// Events written in one statement, at most.
const BATCH: usize = 500;

/// One security event.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityEvent {
    /// `refused`, `login_failed`, `login_throttled`, `customer_exported`, `customer_erased`.
    pub kind: &'static str,
    pub tenant_id: Option<Uuid>,
    /// The credential that asked, when it was genuine: `user:<id>`, `api_key:<id>`.
    pub actor: Option<String>,
    /// The client's address, when known.
    pub source: Option<String>,
    pub detail: Value,
}

/// Where a service's security events go: see the module's documentation. Cloned into every
/// handler; the writer stops once every clone is gone, after writing what queued.
#[derive(Clone)]
pub struct SecurityLog {
    queue: Option<mpsc::Sender<(chrono::DateTime<chrono::Utc>, SecurityEvent)>>,
    dropped: Arc<AtomicU64>,
}

impl SecurityLog {
    /// A log whose writer inserts into `security_events` as `pool` connects (the service's
    /// own, as `booking_app`), on one connection of its own, started on the current runtime.
    pub fn spawn(pool: PgPool) -> Self {
        // A connection of its own: keeping events never takes one a request waits for.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with((*pool.connect_options()).clone());
        let (queue, received) = mpsc::channel(QUEUE);
        tokio::spawn(write(pool, received));
        Self {
            queue: Some(queue),
            dropped: Arc::default(),
        }
    }

    /// A log that only logs (tools and tests without a database).
    pub fn disabled() -> Self {
        Self {
            queue: None,
            dropped: Arc::default(),
        }
    }

    /// Logs `event` on the `security` target and queues it to be kept.
    pub fn record(&self, event: SecurityEvent) {
        tracing::info!(
            target: "security",
            kind = event.kind,
            tenant_id = event.tenant_id.map(|t| t.to_string()),
            actor = event.actor.as_deref(),
            source = event.source.as_deref(),
            detail = %event.detail,
            "{}",
            event.kind
        );
        let Some(queue) = &self.queue else { return };
        if queue.try_send((chrono::Utc::now(), event)).is_err() {
            metrics::counter!("security_events_dropped_total").increment(1);
            // Said once per thousand, not once per event of a flood.
            if self
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
            {
                tracing::warn!(target: "security", "security events are arriving faster than they are kept; some are only logged");
            }
        }
    }
}

/// The writer: what queued, in batches, until every sender is gone; an hourly sweep of what is
/// past [`RETENTION`]. A batch the database refuses is tried again a few times, then logged
/// and counted as dropped.
async fn write(
    pool: PgPool,
    mut received: mpsc::Receiver<(chrono::DateTime<chrono::Utc>, SecurityEvent)>,
) {
    let mut swept_at: Option<std::time::Instant> = None;
    let mut batch = Vec::with_capacity(BATCH);
    while received.recv_many(&mut batch, BATCH).await > 0 {
        let mut attempt = 0;
        loop {
            match insert(&pool, &batch).await {
                Ok(()) => break,
                Err(err) if attempt < 5 => {
                    attempt += 1;
                    tracing::warn!(error = %err, attempt, "cannot keep security events; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(err) => {
                    tracing::error!(error = %err, events = batch.len(), "security events not kept");
                    metrics::counter!("security_events_dropped_total")
                        .increment(batch.len() as u64);
                    break;
                }
            }
        }
        metrics::counter!("security_events_kept_total").increment(batch.len() as u64);
        batch.clear();
        if swept_at.is_none_or(|at| at.elapsed() > Duration::from_secs(3600)) {
            swept_at = Some(std::time::Instant::now());
            if let Err(err) = sqlx::query!(
                "delete from security_events where at < now() - make_interval(days => $1)",
                RETENTION.num_days() as i32
            )
            .execute(&pool)
            .await
            {
                tracing::warn!(error = %err, "cannot sweep old security events");
            }
        }
    }
}

async fn insert(
    pool: &PgPool,
    batch: &[(chrono::DateTime<chrono::Utc>, SecurityEvent)],
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        "insert into security_events (at, kind, tenant_id, actor, source, detail)
         select * from unnest($1::timestamptz[], $2::text[], $3::uuid[], $4::text[], $5::text[],
                              $6::jsonb[])",
        &batch.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        &batch
            .iter()
            .map(|(_, e)| e.kind.to_owned())
            .collect::<Vec<_>>(),
        &batch.iter().map(|(_, e)| e.tenant_id).collect::<Vec<_>>() as _,
        &batch
            .iter()
            .map(|(_, e)| e.actor.clone())
            .collect::<Vec<_>>() as _,
        &batch
            .iter()
            .map(|(_, e)| e.source.clone())
            .collect::<Vec<_>>() as _,
        &batch
            .iter()
            .map(|(_, e)| e.detail.clone())
            .collect::<Vec<_>>()
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Records every refusal as a security event. A layer of both APIs' routers:
/// `router.layer(axum::middleware::from_fn_with_state(log, platform::security::log_refusals))`.
pub async fn log_refusals(
    axum::extract::State(log): axum::extract::State<SecurityLog>,
    mut request: Request,
    next: Next,
) -> Response {
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
        log.record(SecurityEvent {
            kind: "refused",
            tenant_id,
            actor: credential,
            source: None,
            detail: serde_json::json!({
                "status": status,
                "method": method.as_str(),
                "route": route,
                "request_id": request_id,
            }),
        });
    }
    response
}
