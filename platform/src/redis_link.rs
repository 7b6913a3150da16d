//! One Redis connection shared by a service's limits and caches, which must never make a
//! request wait on a Redis that is down: calls have a short timeout, and after a failure Redis
//! is left alone for a few seconds (callers fall back: limits in-process, caches bypassed).

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;
use tokio::sync::Mutex;

/// How long a Redis round trip may take before the caller's fallback decides instead.
pub const TIMEOUT: Duration = Duration::from_millis(100);
/// After a failure, how long to leave Redis alone before trying again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct RedisLink {
    client: Option<redis::Client>,
    prefix: String,
    state: Arc<Mutex<State>>,
}

enum State {
    Idle,
    Up(ConnectionManager),
    Down(Instant),
}

impl std::fmt::Debug for RedisLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLink")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLink {
    /// `None` for no Redis at all (everything falls back).
    pub fn new(client: Option<redis::Client>, prefix: &str) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            state: Arc::new(Mutex::new(State::Idle)),
        }
    }

    /// A key in this service's namespace.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A connection, unless Redis is (recently) down.
    pub async fn connection(&self) -> Option<ConnectionManager> {
        let client = self.client.as_ref()?;
        let mut state = self.state.lock().await;
        match &*state {
            State::Up(c) => return Some(c.clone()),
            State::Down(since) if since.elapsed() < RETRY_AFTER => {
                fell_back();
                return None;
            }
            _ => {}
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(0);
        match tokio::time::timeout(
            TIMEOUT * 2,
            ConnectionManager::new_with_config(client.clone(), config),
        )
        .await
        {
            Ok(Ok(c)) => {
                *state = State::Up(c.clone());
                metrics::gauge!("redis_up").set(1.0);
                Some(c)
            }
            _ => {
                tracing::warn!("Redis unavailable: limits in-process, caches bypassed");
                *state = State::Down(Instant::now());
                metrics::gauge!("redis_up").set(0.0);
                fell_back();
                None
            }
        }
    }

    /// Records a failed call: Redis is left alone for a while.
    pub async fn failed(&self) {
        tracing::warn!("Redis did not answer: limits in-process, caches bypassed");
        *self.state.lock().await = State::Down(Instant::now());
        metrics::gauge!("redis_up").set(0.0);
        fell_back();
    }

    /// Runs `call` with a timeout; `None` (and Redis marked down) if it fails.
    pub async fn run<T, F, Fut>(&self, call: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let conn = self.connection().await?;
        match tokio::time::timeout(TIMEOUT, call(conn)).await {
            Ok(Ok(value)) => Some(value),
            _ => {
                self.failed().await;
                None
            }
        }
    }
}

/// A call that went without Redis (its limit kept in-process, its cache bypassed):
/// `redis_fallbacks_total`.
fn fell_back() {
    metrics::counter!("redis_fallbacks_total").increment(1);
}
