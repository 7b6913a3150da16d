//! Per-key mutual exclusion inside one process: webhooks for the same conversation (a
//! customer's quick messages, the status callbacks of the replies) take turns instead of
//! racing on the stream's version and retrying. Across instances the event store's optimistic
//! concurrency still decides; this only keeps one instance from fighting itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::OwnedMutexGuard;

/// Idle keys are forgotten once the map grows past this.
const PRUNE_AT: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct KeyedLocks {
    locks: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

impl KeyedLocks {
    /// Waits for `key`'s turn; the turn lasts as long as the guard.
    pub async fn lock(&self, key: String) -> OwnedMutexGuard<()> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
            if locks.len() >= PRUNE_AT {
                locks.retain(|_, weak| weak.strong_count() > 0);
            }
            match locks.get(&key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    locks.insert(key, Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_key_at_a_time_other_keys_meanwhile() {
        let locks = KeyedLocks::default();
        let held = locks.lock("a".into()).await;
        let other =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("b".into()))
                .await;
        assert!(other.is_ok(), "another key is free");
        let same =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a".into()))
                .await;
        assert!(same.is_err(), "the same key waits");
        drop(held);
        let again =
            tokio::time::timeout(std::time::Duration::from_millis(50), locks.lock("a".into()))
                .await;
        assert!(again.is_ok(), "released");
    }
}
