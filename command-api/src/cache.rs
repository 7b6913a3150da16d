//! A cache of each tenant's status (active, suspended with its reason, closed) in Redis, so
//! that authenticating a request does not read the tenant's stream every time. The command
//! side may cache for routing and gating; it still decides from the stream. Entries expire after
//! a minute and are dropped by the commands that change a tenant's status; with Redis down the
//! cache is bypassed.

use std::collections::HashMap;
use std::time::Duration;

use app::tenants::Gate;
use eventstore::EventStore;
use platform::problem::Problem;
use platform::redis_link::RedisLink;
use redis::AsyncCommands as _;
use uuid::Uuid;

const TTL: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
pub struct TenantStatusCache {
    redis: RedisLink,
}

impl TenantStatusCache {
    pub fn new(redis: RedisLink) -> Self {
        Self { redis }
    }

    fn key(&self, tenant_id: Uuid) -> String {
        self.redis.key(&format!("tenant-status:{tenant_id}"))
    }

    pub async fn gate(&self, store: &EventStore, tenant_id: Uuid) -> Result<Gate, Problem> {
        let key = self.key(tenant_id);
        let cached: Option<Option<String>> = self
            .redis
            .run(|mut c| {
                let key = key.clone();
                async move { c.get(key).await }
            })
            .await;
        if let Some(cached) = cached
            .flatten()
            .and_then(|json| serde_json::from_str::<Gate>(&json).ok())
        {
            return Ok(cached);
        }
        let gate = app::tenants::gate(store, tenant_id).await?;
        let json = serde_json::to_string(&gate).expect("a gate serializes");
        self.redis
            .run(|mut c| {
                let key = key.clone();
                async move { c.set_ex::<_, _, ()>(key, json, TTL.as_secs()).await }
            })
            .await;
        Ok(gate)
    }

    /// Refuses a closed (401) or suspended (423, with the reason) tenant.
    pub async fn require_open(&self, store: &EventStore, tenant_id: Uuid) -> Result<(), Problem> {
        Ok(self.gate(store, tenant_id).await?.require_open()?)
    }

    /// After a command changed the tenant's status.
    pub async fn forget(&self, tenant_id: Uuid) {
        let key = self.key(tenant_id);
        self.redis
            .run(|mut c| async move { c.del::<_, ()>(key).await })
            .await;
    }
}

/// Which tenant a WhatsApp `phone_number_id` belongs to, cached in Redis for five minutes so a
/// webhook does not read `whatsapp_routes` each time; the connect command drops the entries of
/// the numbers it changes. Unknown numbers are not cached. With Redis down, the table is read.
#[derive(Clone, Debug)]
pub struct RouteCache {
    redis: RedisLink,
}

const ROUTE_TTL: Duration = Duration::from_secs(300);

impl RouteCache {
    pub fn new(redis: RedisLink) -> Self {
        Self { redis }
    }

    fn key(&self, phone_number_id: &str) -> String {
        self.redis.key(&format!("wa-route:{phone_number_id}"))
    }

    pub async fn tenants_of(
        &self,
        store: &EventStore,
        ids: &[String],
    ) -> Result<HashMap<String, Uuid>, Problem> {
        let mut found = HashMap::new();
        if ids.is_empty() {
            return Ok(found);
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        let cached: Option<Vec<Option<String>>> = self
            .redis
            .run(|mut c| {
                let keys = keys.clone();
                async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await }
            })
            .await;
        let mut missing = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            match cached
                .as_ref()
                .and_then(|c| c.get(i).cloned().flatten())
                .and_then(|t| t.parse().ok())
            {
                Some(tenant) => {
                    found.insert(id.clone(), tenant);
                }
                None => missing.push(id.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        for (id, tenant) in app::whatsapp::tenants_of_numbers(store, &missing).await? {
            let key = self.key(&id);
            self.redis
                .run(|mut c| async move {
                    c.set_ex::<_, _, ()>(key, tenant.to_string(), ROUTE_TTL.as_secs())
                        .await
                })
                .await;
            found.insert(id, tenant);
        }
        Ok(found)
    }

    /// After a number was connected, replaced or disconnected.
    pub async fn forget(&self, ids: &[&str]) {
        let keys: Vec<String> = ids.iter().map(|id| self.key(id)).collect();
        self.redis
            .run(|mut c| async move { c.del::<_, ()>(keys).await })
            .await;
    }
}
