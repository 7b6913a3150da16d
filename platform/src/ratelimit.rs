//! Rate limits by GCRA (the generic cell rate algorithm): one Redis key per subject holding its
//! theoretical arrival time, updated atomically by a Lua script on Redis's own clock, so every
//! instance shares the limit. If Redis does not answer (quickly), the limit is enforced
//! in-process instead: requests keep working, limits stay on (per instance). The in-process
//! state mirrors what Redis last said of each subject, so a Redis that stops answering midway
//! through a burst does not grant a fresh one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::redis_link::RedisLink;

/// `rate` requests per `period`, with bursts of up to `burst` at once.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub rate: u32,
    pub period: Duration,
    pub burst: u32,
}

impl Quota {
    pub const fn per_minute(rate: u32, burst: u32) -> Self {
        Self {
            rate,
            period: Duration::from_secs(60),
            burst,
        }
    }

    fn emission(&self) -> Duration {
        self.period / self.rate.max(1)
    }
}

/// Over the limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

const GCRA: &str = r#"
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
if KEYS[2] and not redis.call('SET', KEYS[2], 1, 'NX', 'PX', ARGV[3]) then
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission
if new_tat - now > tolerance then
  return new_tat - now - tolerance
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return now - new_tat
"#;

/// Whether a request of `KEYS[1]` would be allowed now, counting nothing: the wait, or 0.
const PEEK: &str = r#"
local emission = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local wait = tat + emission - now - tolerance
if wait > 0 then return wait end
return 0
"#;

/// What the script answers: positive, the wait of a refused request; negative, how far ahead of
/// now the subject's arrival time stands after an allowed one; zero, allowed (an occurrence
/// already counted).

#[derive(Clone, Debug)]
pub struct RateLimiter {
    redis: RedisLink,
    script: Arc<redis::Script>,
    peek: Arc<redis::Script>,
    local: Arc<Mutex<HashMap<String, Instant>>>,
}

impl RateLimiter {
    pub fn new(redis: RedisLink) -> Self {
        Self {
            redis,
            script: Arc::new(redis::Script::new(GCRA)),
            peek: Arc::new(redis::Script::new(PEEK)),
            local: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one request of `subject` against `quota`.
    pub async fn check(&self, subject: &str, quota: Quota) -> Result<(), Limited> {
        self.check_once(subject, None, quota).await
    }

    /// Whether a request of `subject` would be allowed now, without counting it: for limits
    /// that count only some outcomes (a login's failures), checked before and counted after.
    pub async fn peek(&self, subject: &str, quota: Quota) -> Result<(), Limited> {
        let key = self.redis.key(&format!("rl:{subject}"));
        let emission = quota.emission().as_micros() as u64;
        let tolerance = emission * u64::from(quota.burst.max(1));
        let script = self.peek.clone();
        let decided = self
            .redis
            .run(|mut conn| {
                let key = key.clone();
                async move {
                    script
                        .key(key)
                        .arg(emission)
                        .arg(tolerance)
                        .invoke_async::<i64>(&mut conn)
                        .await
                }
            })
            .await;
        let wait = match decided {
            Some(wait) => Duration::from_micros(wait.unsigned_abs()),
            None => {
                let now = Instant::now();
                let tats = self.local.lock().expect("the limiter's lock");
                let tat = tats.get(&key).copied().unwrap_or(now).max(now);
                (tat + quota.emission())
                    .saturating_duration_since(now + Duration::from_micros(tolerance))
            }
        };
        if wait.is_zero() {
            Ok(())
        } else {
            Err(Limited { retry_after: wait })
        }
    }

    /// Counts `occurrence` (a message id, say) of `subject` against `quota` once, however
    /// often it is asked about within ten minutes: a redelivered message is not a second
    /// message. Asked again, it is allowed.
    pub async fn check_once(
        &self,
        subject: &str,
        occurrence: Option<&str>,
        quota: Quota,
    ) -> Result<(), Limited> {
        const REMEMBERED_MS: u64 = 600_000;
        let key = self.redis.key(&format!("rl:{subject}"));
        let seen = occurrence.map(|o| self.redis.key(&format!("rl-seen:{subject}:{o}")));
        let emission = quota.emission().as_micros() as u64;
        let tolerance = emission * u64::from(quota.burst.max(1));
        let script = self.script.clone();
        let decided = self
            .redis
            .run(|mut conn| {
                let (key, seen) = (key.clone(), seen.clone());
                async move {
                    let mut invocation = script.key(key);
                    if let Some(seen) = seen {
                        invocation.key(seen);
                    }
                    invocation.arg(emission).arg(tolerance).arg(REMEMBERED_MS);
                    invocation.invoke_async::<i64>(&mut conn).await
                }
            })
            .await;
        let micros = |m: i64| Duration::from_micros(m.unsigned_abs());
        match decided {
            Some(0) => Ok(()),
            Some(ahead) if ahead < 0 => {
                self.mirror(&key, micros(ahead));
                Ok(())
            }
            Some(wait) => {
                let tolerance = Duration::from_micros(tolerance);
                let emission = Duration::from_micros(emission);
                self.mirror(&key, (tolerance + micros(wait)).saturating_sub(emission));
                Err(Limited {
                    retry_after: micros(wait),
                })
            }
            None => self.check_local(&key, quota),
        }
    }

    /// Keeps the in-process arrival time of `key` where Redis has it (`ahead` of now), should
    /// Redis stop answering.
    fn mirror(&self, key: &str, ahead: Duration) {
        let mut tats = self.local.lock().expect("the limiter's lock");
        Self::forget_the_past(&mut tats, Instant::now());
        tats.insert(key.to_owned(), Instant::now() + ahead);
    }

    fn forget_the_past(tats: &mut HashMap<String, Instant>, now: Instant) {
        if tats.len() > 100_000 {
            tats.retain(|_, tat| *tat > now);
        }
    }

    fn check_local(&self, key: &str, quota: Quota) -> Result<(), Limited> {
        let now = Instant::now();
        let emission = quota.emission();
        let tolerance = emission * quota.burst.max(1);
        let mut tats = self.local.lock().expect("the limiter's lock");
        Self::forget_the_past(&mut tats, now);
        let tat = tats.get(key).copied().unwrap_or(now).max(now);
        let new_tat = tat + emission;
        if new_tat - now > tolerance {
            return Err(Limited {
                retry_after: new_tat - now - tolerance,
            });
        }
        tats.insert(key.to_owned(), new_tat);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_process_limiter_allows_the_burst_then_limits() {
        let limiter = RateLimiter::new(RedisLink::new(None, "t:"));
        let quota = Quota::per_minute(6, 3);
        for _ in 0..3 {
            assert!(limiter.check("a", quota).await.is_ok());
        }
        let limited = limiter.check("a", quota).await.unwrap_err();
        assert!(
            limited.retry_after <= Duration::from_secs(10) && limited.retry_after > Duration::ZERO
        );
        assert!(
            limiter.check("b", quota).await.is_ok(),
            "subjects are independent"
        );
    }

    #[tokio::test]
    async fn a_peek_says_what_the_next_request_would_meet_and_counts_nothing() {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let prefix = format!("peek{}:", uuid::Uuid::new_v4().simple());
        for link in [
            RedisLink::new(None, "t:"),
            RedisLink::new(Some(client), &prefix),
        ] {
            let limiter = RateLimiter::new(link);
            let quota = Quota::per_minute(6, 3);
            for _ in 0..10 {
                assert!(
                    limiter.peek("a", quota).await.is_ok(),
                    "a peek counts nothing"
                );
            }
            for _ in 0..3 {
                assert!(limiter.check("a", quota).await.is_ok());
            }
            let peeked = limiter.peek("a", quota).await.unwrap_err();
            assert!(peeked.retry_after > Duration::ZERO);
            assert!(limiter.check("a", quota).await.is_err());
        }
    }
    #[tokio::test]
    async fn a_redis_that_stops_answering_midway_grants_no_fresh_burst() {
        let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
        let link = RedisLink::new(Some(client), &format!("t{}:", std::process::id()));
        let limiter = RateLimiter::new(link.clone());
        let quota = Quota::per_minute(6, 3);
        for _ in 0..3 {
            assert!(limiter.check("a", quota).await.is_ok());
        }
        assert!(limiter.check("a", quota).await.is_err(), "Redis limits");
        assert!(limiter.check("b", quota).await.is_ok());
        link.failed().await;
        assert!(
            limiter.check("a", quota).await.is_err(),
            "the in-process limit goes on from where Redis was"
        );
        assert!(limiter.check("b", quota).await.is_ok());
        assert!(limiter.check("b", quota).await.is_ok());
        assert!(limiter.check("b", quota).await.is_err(), "b had used one");
    }
}
