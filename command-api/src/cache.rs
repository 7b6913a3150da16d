//! A cache of each tenant's status (active, suspended with its reason, closed) in Redis, so
//! that authenticating a request does not read the tenant's stream every time. The command
//! side may cache for routing and gating; it still decides from the stream. Entries expire after
//! a minute and are dropped by the commands that change a tenant's status; with Redis down the
//! cache is bypassed.

use std::time::Duration;

use domain::tenant::{Tenant, TenantEvent, TenantStatus};
use eventstore::EventStore;
use platform::problem::Problem;
use platform::redis_link::RedisLink;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::exec::{load, stream};

const TTL: Duration = Duration::from_secs(60);

/// What a request needs to know about its tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Gate {
    Open,
    Suspended {
        reason: String,
    },
    /// Closed, or no such tenant.
    Gone,
}

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
        if let Some(gate) = cached
            .flatten()
            .and_then(|json| serde_json::from_str(&json).ok())
        {
            return Ok(gate);
        }
        let (tenant, _) =
            load::<Tenant>(store, tenant_id, &stream::<TenantEvent>(tenant_id)).await?;
        let gate = match tenant.onboarded {
            Some(t) if t.status == TenantStatus::Active => Gate::Open,
            Some(t) if t.status == TenantStatus::Suspended => Gate::Suspended {
                reason: t
                    .suspension_reason
                    .map(|r| r.to_string())
                    .unwrap_or_default(),
            },
            _ => Gate::Gone,
        };
        let json = serde_json::to_string(&gate).expect("a gate serializes");
        self.redis
            .run(|mut c| {
                let key = key.clone();
                async move { c.set_ex::<_, _, ()>(key, json, TTL.as_secs()).await }
            })
            .await;
        Ok(gate)
    }

    /// After a command changed the tenant's status.
    pub async fn forget(&self, tenant_id: Uuid) {
        let key = self.key(tenant_id);
        self.redis
            .run(|mut c| async move { c.del::<_, ()>(key).await })
            .await;
    }
}
