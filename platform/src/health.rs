//! `/healthz` (the process is up), `/readyz` (its dependencies answer) and `/metrics`
//! (Prometheus, [`crate::metrics`]).
//!
//! Readiness probes each dependency concurrently with a short timeout and answers 503 with the
//! failing ones named, so an orchestrator stops routing to the instance without restarting it.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::join_all;
use secrecy::ExposeSecret as _;
use serde_json::json;
use sqlx::PgPool;

use crate::settings::RedisSettings;

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a service depends on. Each present dependency must answer for the service to be ready.
#[derive(Clone, Default)]
pub struct Dependencies {
    pub postgres: Vec<(&'static str, PgPool)>,
    pub nats: Option<async_nats::Client>,
    pub redis: Option<redis::Client>,
}

impl Dependencies {
    pub fn redis_client(settings: &RedisSettings) -> anyhow::Result<redis::Client> {
        Ok(redis::Client::open(settings.url.expose_secret())?)
    }
}

pub fn router(deps: Dependencies) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(deps)
}

/// `/metrics`, with each database pool's connections as they are at the scrape
/// (`db_pool_connections{pool, state}`, `db_pool_max_connections{pool}`).
async fn metrics(State(deps): State<Dependencies>) -> Response {
    for (name, pool) in &deps.postgres {
        let (size, idle) = (f64::from(pool.size()), pool.num_idle() as f64);
        metrics::gauge!("db_pool_connections", "pool" => *name, "state" => "in_use")
            .set(size - idle);
        metrics::gauge!("db_pool_connections", "pool" => *name, "state" => "idle").set(idle);
        metrics::gauge!("db_pool_max_connections", "pool" => *name)
            .set(f64::from(pool.options().get_max_connections()));
    }
    crate::metrics::render().await
}

async fn readyz(State(deps): State<Dependencies>) -> Response {
    let postgres = join_all(deps.postgres.iter().map(|(name, pool)| async move {
        let check = async {
            sqlx::query!("select 1 as alive")
                .fetch_one(pool)
                .await
                .map(|_| ())
        };
        (*name, probe(check).await)
    }));
    let nats = async {
        match &deps.nats {
            Some(client) => Some(probe(client.flush()).await),
            None => None,
        }
    };
    let redis = async {
        match &deps.redis {
            Some(client) => Some(probe(ping_redis(client)).await),
            None => None,
        }
    };
    let (postgres, nats, redis) = tokio::join!(postgres, nats, redis);

    let mut checks = serde_json::Map::new();
    let mut ready = true;
    let mut record = |name: &str, result: Result<(), String>| {
        ready &= result.is_ok();
        checks.insert(
            name.to_owned(),
            json!(result.err().unwrap_or_else(|| "ok".to_owned())),
        );
    };
    for (name, result) in postgres {
        record(name, result);
    }
    if let Some(result) = nats {
        record("nats", result);
    }
    if let Some(result) = redis {
        record("redis", result);
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "status": if ready { "ready" } else { "unavailable" }, "checks": checks });
    (status, Json(body)).into_response()
}

async fn ping_redis(client: &redis::Client) -> redis::RedisResult<()> {
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("PING").query_async::<String>(&mut conn).await?;
    Ok(())
}

async fn probe<E: std::fmt::Display>(
    check: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(format!("down: {err}")),
        Err(_) => Err(format!("down: no answer within {PROBE_TIMEOUT:?}")),
    }
}
