//! Caches of the command API in Redis: each tenant's status (shared with the projector's
//! reactors, in `platform::tenant_gate`) and which tenant a WhatsApp number routes to.

use std::collections::HashMap;
use std::time::Duration;

use eventstore::EventStore;
use platform::problem::Problem;
use platform::redis_link::RedisLink;
use redis::AsyncCommands as _;
use uuid::Uuid;

pub use platform::tenant_gate::TenantStatusCache;

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
