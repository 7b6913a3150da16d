//! Caches of the command API: in Redis, each tenant's status (shared with the projector's
//! reactors, in `platform::tenant_gate`) and which tenant a WhatsApp number routes to; in the
//! process, each tenant's WhatsApp app secret, opened.

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

/// Each tenant's WhatsApp app secret, opened, kept in this process for a minute so that a
/// webhook (a customer's message, and the three statuses of each reply) does not read and open
/// the sealed secret every time. Bounded in entries; never in Redis (a secret stays inside the
/// process that opened it). The connect command drops the tenant's entry in this process; in
/// the others, a changed secret is used at most [`SECRET_TTL`] after it changed (until then
/// Meta's notifications signed with the new one answer 401, and Meta delivers them again).
#[derive(Clone)]
pub struct SecretCache {
    secrets: mini_moka::sync::Cache<Uuid, std::sync::Arc<[u8]>>,
}

pub const SECRET_TTL: Duration = Duration::from_secs(60);

impl SecretCache {
    pub fn new(capacity: u64) -> Self {
        Self {
            secrets: mini_moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(SECRET_TTL)
                .build(),
        }
    }

    /// The tenant's app secret: from the cache, or opened from the vault and kept.
    pub async fn app_secret(
        &self,
        app: &app::App,
        tenant_id: Uuid,
    ) -> Result<std::sync::Arc<[u8]>, app::AppError> {
        if let Some(secret) = self.secrets.get(&tenant_id) {
            return Ok(secret);
        }
        let secret: std::sync::Arc<[u8]> = app::whatsapp::app_secret(app, tenant_id).await?.into();
        self.secrets.insert(tenant_id, secret.clone());
        Ok(secret)
    }

    pub fn forget(&self, tenant_id: Uuid) {
        self.secrets.invalidate(&tenant_id);
    }
}

impl std::fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretCache")
            .field("entries", &self.secrets.entry_count())
            .finish()
    }
}
