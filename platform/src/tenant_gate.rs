//! A cache of each tenant's status (active, suspended with its reason, closed) in Redis, so
//! that authenticating a request does not read the tenant's stream every time. The command
//! side may cache for routing and gating; it still decides from the stream. Entries expire after
//! a minute and are dropped by whatever changed a tenant's status (an operator's command, a
//! payment, the billing scheduler); with Redis down the cache is bypassed. The command API
//! and the projector's reactors share it through Redis.

use std::time::Duration;

use crate::problem::Problem;
use crate::redis_link::RedisLink;
use app::tenants::Gate;
use eventstore::EventStore;
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
