//! The caller of a read: authenticated like the command API (access token or API key), rate
//! limited per credential, refused while its tenant is suspended, and, when it carries a
//! consistency token, held until the projections have applied that far.
//!
//! With a hot standby configured (`database.replica_url`), a read goes to the standby where it
//! allows it: always without a consistency token; with one, when the standby has replayed the
//! projections' progress past it (its `rm_positions` rows are the primary's, replayed in the
//! same transactions as the read models they describe). Otherwise the token is waited for on the
//! primary and the read is the primary's, so a token never reads older than the write it came
//! from. A standby that cannot be reached leaves the primary to answer.

use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::access::Permission;
use domain::tenant::TenantStatus;
use eventstore::Position;
use platform::credentials::Actor;
use platform::problem::Problem;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use crate::AppState;

/// The header a client sends the token of its last write in (the command API's
/// `consistency_token`). `?consistency_token=` works too.
pub const CONSISTENCY_HEADER: &str = "x-consistency-token";

const POLL: Duration = Duration::from_millis(5);

#[derive(Debug, Clone)]
pub struct Reader {
    pub tenant_id: Uuid,
    pub actor: Actor,
    /// The consistency token the request carried, already waited for.
    pub consistency: Option<Position>,
    /// Where this read is answered from.
    pub source: Source,
}

/// The database a read is answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Primary,
    /// The hot standby (`database.replica_url`).
    Replica,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Primary => "primary",
            Source::Replica => "replica",
        }
    }
}

impl Reader {
    pub fn require(&self, permission: Permission) -> Result<(), Problem> {
        Ok(self.actor.require(permission)?)
    }

    /// A read-only transaction that sees only this tenant's rows, on the standby when the
    /// read goes there and it answers, on the primary otherwise.
    pub async fn begin(&self, app: &AppState) -> Result<Transaction<'static, Postgres>, Problem> {
        if let (Source::Replica, Some(replica)) = (self.source, &app.replica) {
            match tenant_read(replica, self.tenant_id).await {
                Ok(tx) => return Ok(tx),
                Err(err) if unreachable(&err) => {
                    tracing::warn!(error = %err, "the standby does not answer: reading the primary");
                    metrics::counter!("query_replica_fallbacks_total").increment(1);
                }
                Err(err) => return Err(err.into()),
            }
        }
        Ok(tenant_read(&app.pool, self.tenant_id).await?)
    }
}

/// Whether `err` says the database could not be reached (rather than refusing a statement).
fn unreachable(err: &sqlx::Error) -> bool {
    matches!(
        err,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)
    )
}

/// A read-only transaction on `pool` that sees only `tenant_id`'s rows (for work that outlives
/// the request's [`Reader`], such as an event stream).
pub async fn tenant_read(
    pool: &sqlx::PgPool,
    tenant_id: Uuid,
) -> sqlx::Result<Transaction<'static, Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        r#"select set_config('app.tenant_id', $1, true) as "tenant",
                  set_config('transaction_read_only', 'on', true) as "read_only""#,
        tenant_id.to_string()
    )
    .fetch_one(&mut *tx)
    .await?;
    Ok(tx)
}

impl FromRequestParts<AppState> for Reader {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let bearer = platform::credentials::bearer(parts).ok_or_else(Problem::unauthorized)?;
        let (tenant_id, actor) =
            platform::credentials::authenticate(&app.store, &app.keys, bearer).await?;
        platform::security::identified(parts, tenant_id, &actor);
        app.limiter
            .check(
                &platform::credentials::limit_subject(&actor),
                app.credential_quota,
            )
            .await
            .map_err(|l| Problem::too_many_requests(l.retry_after.as_secs().max(1)))?;
        let consistency = consistency_token(parts)?;
        let source = match consistency {
            Some(token) => consistent_source(app, token).await?,
            None if app.replica.is_some() => Source::Replica,
            None => Source::Primary,
        };
        metrics::counter!("query_reads_total", "source" => source.label()).increment(1);
        let reader = Reader {
            tenant_id,
            actor,
            consistency,
            source,
        };
        let mut tx = reader.begin(app).await?;
        gate(&mut tx).await?;
        Ok(reader)
    }
}

/// Where a read carrying `token` is answered, once it can be: the standby when it has replayed
/// that far, else the primary once its projections have (see [`wait_for`]).
#[tracing::instrument(name = "consistency_wait", skip(app), fields(%token, source))]
async fn consistent_source(app: &AppState, token: Position) -> Result<Source, Problem> {
    let source = match &app.replica {
        Some(replica) if replica_reached(replica, token).await => Source::Replica,
        _ => {
            wait_for(app, token).await?;
            Source::Primary
        }
    };
    tracing::Span::current().record("source", source.label());
    Ok(source)
}

/// Whether the standby has replayed every projection's progress up to `token` (false when it
/// cannot say, e.g. it is down: the primary then answers).
async fn replica_reached(replica: &sqlx::PgPool, token: Position) -> bool {
    match progress(replica, token).await {
        Ok(progress) => progress.reached,
        Err(err) => {
            tracing::warn!(error = %err, "the standby does not answer: the token waits on the primary");
            false
        }
    }
}

/// How far the read models on `pool` are from `token`.
struct Progress {
    /// Every projection (as `rm_tables` lists them) is at or past the token.
    reached: bool,
    /// The token's transaction has begun (on a standby: as far as it has replayed).
    begun: bool,
}

async fn progress(pool: &sqlx::PgPool, token: Position) -> sqlx::Result<Progress> {
    let row = sqlx::query!(
        r#"select (select count(*) from rm_positions
                        where (transaction_id, global_position) >= ($1::text::xid8, $2))
                    >= (select count(distinct projection) from rm_tables) as "reached!",
                      $1::text::xid8 < pg_snapshot_xmax(pg_current_snapshot()) as "begun!""#,
        token.transaction_id.to_string(),
        token.global_position as i64
    )
    .fetch_one(pool)
    .await?;
    Ok(Progress {
        reached: row.reached,
        begun: row.begun,
    })
}

fn consistency_token(parts: &Parts) -> Result<Option<Position>, Problem> {
    let from_header = parts
        .headers
        .get(CONSISTENCY_HEADER)
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let from_query = parts.uri.query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "consistency_token")
            .map(|(_, v)| v.to_owned())
    });
    match from_header.or(from_query) {
        None => Ok(None),
        Some(raw) => raw.trim().parse().map(Some).map_err(|_| {
            Problem::invalid(
                "consistency_token",
                "is the consistency_token a write answered with",
            )
        }),
    }
}

/// Waits until every projection has applied the log up to `token`, or answers 503. A token
/// no write can have answered with (its transaction has not even begun) is refused at once,
/// so a made-up one cannot hold requests open.
async fn wait_for(app: &AppState, token: Position) -> Result<(), Problem> {
    let deadline = Instant::now() + app.max_wait;
    loop {
        let row = progress(&app.pool, token).await?;
        if row.reached {
            return Ok(());
        }
        if !row.begun {
            tracing::info!(target: "security", ?token, "a consistency token ahead of the log");
            return Err(Problem::invalid(
                "consistency_token",
                "is ahead of the log: not a consistency_token a write answered with",
            ));
        }
        if Instant::now() >= deadline {
            return Err(Problem::unavailable(
                "the read models have not caught up with this consistency token yet",
                1,
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// A suspended tenant answers 423 with its reason, a closed one 401. A tenant not projected
/// yet (its credential is genuine) reads what there is.
async fn gate(conn: &mut PgConnection) -> Result<(), Problem> {
    let row = sqlx::query!("select status, status_reason from rm_tenants")
        .fetch_optional(conn)
        .await?;
    match row.and_then(|r| Some((TenantStatus::parse(&r.status)?, r.status_reason))) {
        Some((TenantStatus::Suspended, reason)) => Err(Problem::locked(reason.unwrap_or_default())),
        Some((TenantStatus::Closed, _)) => Err(Problem::unauthorized()),
        _ => Ok(()),
    }
}
