//! The webhook deliverer: a reactor that posts each business's public events
//! (`rm_public_events`) to the endpoints it registered, signed with each endpoint's secret.
//!
//! **In order, at least once.** Each endpoint has a cursor (`webhook_cursors`): the next
//! public event to deliver. The deliverer posts that event and moves on only once the receiver
//! answered 2xx, so an endpoint gets its events in the order they happened; a receiver that is
//! down for a while gets everything once it is back. Events of a topic the endpoint did not
//! ask for are passed over. A run's successful deliveries are logged together, with the cursor
//! past them, in one transaction (a crash before then posts them again). A delivery that fails (no answer within the timeout, a refused
//! connection, any status but 2xx) is tried again after an exponential backoff with jitter
//! (30 s, 1 min, 2 min, ... at most 6 h apart), for up to `give_up_after` (3 days); then the
//! endpoint is disabled through the application layer (`app::webhooks::disable_failing`), which
//! emails the business's owners and admins. Enabling it again resumes at the same event.
//!
//! **The delivery log** (`webhook_deliveries`): one row per endpoint and event, with its
//! attempts, the receiver's last status or error and when it was delivered. A business may ask
//! for any event to be delivered again (`WebhookRedeliveryRequested`, projected into
//! `rm_webhook_redeliveries`): it is posted once more, out of turn; if it was the event being
//! retried, the cursor moves on.
//!
//! **Several instances.** Each run finds the endpoints with something due across tenants (the
//! operator role's reads), and takes each with a lease on its cursor, in the tenant's own
//! transaction; another instance passes over a leased endpoint. A lease outlives a crash by at
//! most `lease`, after which the event is posted again: at least once, and each delivery
//! carries the event's id for the receiver to recognise a repeat.
//!
//! **The signature** (`Booking-Signature: t=<unix seconds>,v1=<hex>`): HMAC-SHA256, keyed with
//! the endpoint's whole secret (`whsec_...`), of `<t>.<body>`; as Stripe signs. A receiver
//! checks it over the raw body and refuses a `t` too far from its clock (replays).
//!
//! **Where it may post.** Unless `allow_private_networks` (development and tests), a URL whose
//! host is or resolves to a loopback, private, link-local or otherwise non-public address is
//! refused at each delivery (the check is on the addresses connected to, so a name that
//! resolves elsewhere later cannot reach the platform's own network), and redirects are not
//! followed.
//!
//! Time is an input ([`Deliverer::run_once`] takes `now`): tests move it past the backoff and
//! past the three days.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The header of the signature.
pub const SIGNATURE_HEADER: &str = "Booking-Signature";

#[derive(Debug, Clone)]
pub struct DelivererConfig {
    /// How often due deliveries are looked for.
    pub every: Duration,
    /// Events posted to one endpoint per run (the next run goes on).
    pub batch: i64,
    /// Endpoints delivered to at once.
    pub concurrency: usize,
    /// How long a receiver has to answer.
    pub timeout: Duration,
    /// The first retry's delay, doubled each time up to `max_backoff`.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
    /// How long an event is retried before its endpoint is disabled.
    pub give_up_after: Duration,
    /// An endpoint taken by an instance is left to it for this long.
    pub lease: Duration,
    /// Whether receivers on loopback and private networks may be posted to.
    pub allow_private_networks: bool,
}

impl Default for DelivererConfig {
    fn default() -> Self {
        Self {
            every: Duration::from_millis(250),
            batch: 100,
            concurrency: 32,
            timeout: Duration::from_secs(10),
            first_backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(6 * 3600),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            lease: Duration::from_secs(120),
            allow_private_networks: false,
        }
    }
}

#[derive(Debug, Default)]
pub struct DelivererStats {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
    pub disabled: AtomicU64,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ticked {
    pub delivered: usize,
    pub failed: usize,
    /// Endpoints disabled after failing for too long.
    pub disabled: usize,
    pub redelivered: usize,
}

impl std::ops::AddAssign for Ticked {
    fn add_assign(&mut self, other: Self) {
        self.delivered += other.delivered;
        self.failed += other.failed;
        self.disabled += other.disabled;
        self.redelivered += other.redelivered;
    }
}

#[derive(Clone)]
pub struct Deliverer {
    pub app: app::App,
    /// Cross-tenant reads of what is due (the operator role).
    pub operator: PgPool,
    pub config: DelivererConfig,
    pub stats: Arc<DelivererStats>,
    client: reqwest::Client,
}

/// An endpoint with something due, and the cursor it had when taken.
#[derive(Debug, Clone)]
struct Taken {
    tenant_id: Uuid,
    endpoint_id: Uuid,
    url: String,
    topics: Vec<String>,
    next_seq: i64,
    attempts: i32,
    failing_since: Option<DateTime<Utc>>,
}

/// One public event as it is posted.
#[derive(Debug, Clone)]
struct Public {
    seq: i64,
    event_id: Uuid,
    topic: String,
    body: String,
}

/// How one post went.
#[derive(Debug, Clone)]
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    took: Duration,
}

impl Outcome {
    fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn describe(&self) -> String {
        match (&self.error, self.status) {
            (Some(err), _) => err.clone(),
            (None, Some(status)) => format!("HTTP {status}"),
            (None, None) => "no answer".into(),
        }
    }
}

/// The signature header's value for `body` posted at `t` (unix seconds) with `secret`.
pub fn sign(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` signs `body` with `secret` at a time within `tolerance` of `now` (what a
/// receiver checks; constant time).
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance: i64) -> bool {
    let mut t = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.extend(hex::decode(v).ok()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance {
        return false;
    }
    signatures.iter().any(|signature| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(t.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.verify_slice(signature).is_ok()
    })
}

/// Whether an address is one a public receiver cannot have: loopback, private, link-local,
/// shared (CGNAT), unspecified, multicast, broadcast, documentation, unique local.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_multicast()
                || v4.is_broadcast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (b == 18 || b == 19))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || first == 0x2001 && v6.segments()[1] == 0x0db8
        }
    }
}

/// A resolver that gives only public addresses: a name that resolves to none is an error.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| !is_non_public(a.ip()))
                .collect();
            if addresses.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Deliverer {
    pub fn new(app: app::App, operator: PgPool, config: DelivererConfig) -> anyhow::Result<Self> {
        let mut client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("BookingPlatform-Webhooks/1");
        if !config.allow_private_networks {
            client = client.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Self {
            app,
            operator,
            config,
            stats: Arc::default(),
            client: client.build()?,
        })
    }

    pub async fn run(self, stop: CancellationToken) -> anyhow::Result<()> {
        loop {
            if let Err(err) = self.run_once(Utc::now()).await {
                tracing::warn!(error = %format!("{err:#}"), "webhook deliverer run failed");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(self.config.every) => {}
            }
        }
    }

    /// Delivers what is due at `now`: each endpoint's next events, and the redeliveries asked
    /// for. One endpoint's failure does not hold up the others.
    pub async fn run_once(&self, now: DateTime<Utc>) -> anyhow::Result<Ticked> {
        let due = sqlx::query!(
            r#"select e.tenant_id, e.endpoint_id
               from rm_webhook_endpoints e
               join rm_public_event_heads h on h.tenant_id = e.tenant_id
               left join webhook_cursors c
                 on c.tenant_id = e.tenant_id and c.endpoint_id = e.endpoint_id
               where e.status = 'enabled'
                 and coalesce(c.next_seq, e.start_seq) <= h.last_seq
                 and coalesce(c.next_attempt_at, '-infinity') <= $1
                 and coalesce(c.lease_until, '-infinity') < $1
               order by c.next_attempt_at nulls first
               limit 1000"#,
            now
        )
        .fetch_all(&self.operator)
        .await?;
        let mut ticked = Ticked::default();
        let mut runs = futures::stream::iter(due)
            .map(|row| self.deliver_endpoint(row.tenant_id, row.endpoint_id, now))
            .buffer_unordered(self.config.concurrency);
        while let Some(result) = runs.next().await {
            match result {
                Ok(t) => ticked += t,
                Err(err) => tracing::warn!(error = %format!("{err:#}"), "webhook delivery failed"),
            }
        }
        drop(runs);

        let asked = sqlx::query!(
            r#"select r.tenant_id, r.endpoint_id, r.seq
               from rm_webhook_redeliveries r
               join rm_webhook_endpoints e
                 on e.tenant_id = r.tenant_id and e.endpoint_id = r.endpoint_id
               left join webhook_deliveries d
                 on d.tenant_id = r.tenant_id and d.endpoint_id = r.endpoint_id and d.seq = r.seq
               where e.status = 'enabled'
                 and r.requested_at > coalesce(d.last_attempt_at, '-infinity')
               limit 1000"#
        )
        .fetch_all(&self.operator)
        .await?;
        for row in asked {
            match self
                .redeliver(row.tenant_id, row.endpoint_id, row.seq, now)
                .await
            {
                Ok(true) => ticked.redelivered += 1,
                Ok(false) => {}
                Err(err) => {
                    tracing::warn!(error = %format!("{err:#}"), "webhook redelivery failed")
                }
            }
        }
        Ok(ticked)
    }

    /// Takes the endpoint (a lease on its cursor, made at its first event if new), unless
    /// another instance holds it or nothing is due any more.
    async fn take(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<Taken>> {
        let lease_until = now + chrono::Duration::from_std(self.config.lease)?;
        let mut tx = self.app.store.begin(tenant_id).await?;
        let Some(endpoint) = sqlx::query!(
            "select url, topics, start_seq from rm_webhook_endpoints
             where endpoint_id = $1 and status = 'enabled'",
            endpoint_id
        )
        .fetch_optional(tx.conn())
        .await?
        else {
            return Ok(None);
        };
        sqlx::query!(
            "insert into webhook_cursors (tenant_id, endpoint_id, next_seq) values ($1, $2, $3)
             on conflict do nothing",
            tenant_id,
            endpoint_id,
            endpoint.start_seq
        )
        .execute(tx.conn())
        .await?;
        let cursor = sqlx::query!(
            "update webhook_cursors set lease_until = $2
             where endpoint_id = $1 and lease_until < $3 and next_attempt_at <= $3
             returning next_seq, attempts, failing_since",
            endpoint_id,
            lease_until,
            now
        )
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(cursor.map(|c| Taken {
            tenant_id,
            endpoint_id,
            url: endpoint.url,
            topics: endpoint.topics,
            next_seq: c.next_seq,
            attempts: c.attempts,
            failing_since: c.failing_since,
        }))
    }

    async fn deliver_endpoint(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Ticked> {
        let Some(mut taken) = self.take(tenant_id, endpoint_id, now).await? else {
            return Ok(Ticked::default());
        };
        let result = self.deliver_taken(&mut taken, now).await;
        // The lease is given back whatever happened (a crash leaves it to run out).
        let mut tx = self.app.store.begin(tenant_id).await?;
        sqlx::query!(
            "update webhook_cursors set lease_until = '-infinity' where endpoint_id = $1",
            endpoint_id
        )
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        result
    }

    async fn deliver_taken(&self, taken: &mut Taken, now: DateTime<Utc>) -> anyhow::Result<Ticked> {
        let mut ticked = Ticked::default();
        let events = self
            .events(taken.tenant_id, taken.next_seq, self.config.batch)
            .await?;
        if events.is_empty() {
            return Ok(ticked);
        }
        let secret = app::webhooks::secret(&self.app, taken.tenant_id, taken.endpoint_id).await?;
        // Successes are recorded together, with the cursor past them, when the run stops: a
        // crash before then posts them again (at least once; each carries its event's id).
        let mut delivered: Vec<(Public, Outcome)> = Vec::new();
        let mut next_seq = taken.next_seq;
        for event in events {
            if !taken.topics.is_empty() && !taken.topics.contains(&event.topic) {
                next_seq = event.seq + 1;
                continue;
            }
            let outcome = self.post(&taken.url, &secret, &event, now).await;
            if outcome.ok() {
                next_seq = event.seq + 1;
                delivered.push((event, outcome));
                ticked.delivered += 1;
                self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("webhook_deliveries_total", "outcome" => "delivered")
                    .increment(1);
                continue;
            }
            self.flush(taken, &delivered, next_seq, now).await?;
            delivered.clear();
            ticked.failed += 1;
            self.stats.failed.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("webhook_deliveries_total", "outcome" => "failed").increment(1);
            let failing_since = taken.failing_since.unwrap_or(now);
            let given_up =
                now - failing_since >= chrono::Duration::from_std(self.config.give_up_after)?;
            if given_up {
                self.record_failure(taken, &event, &outcome, now, None)
                    .await?;
                app::webhooks::disable_failing(
                    &self.app,
                    taken.tenant_id,
                    taken.endpoint_id,
                    failing_since,
                    &outcome.describe(),
                )
                .await?;
                ticked.disabled += 1;
                self.stats.disabled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(tenant_id = %taken.tenant_id, endpoint_id = %taken.endpoint_id, "webhook endpoint disabled after failing since {failing_since}");
            } else {
                let next = now + self.backoff(taken.attempts + 1);
                self.record_failure(taken, &event, &outcome, now, Some(next))
                    .await?;
            }
            return Ok(ticked);
        }
        self.flush(taken, &delivered, next_seq, now).await?;
        Ok(ticked)
    }

    /// Records `delivered` in the log and moves the cursor to `next_seq` (past them and any
    /// event passed over), clearing a failure, in one transaction. Nothing to do if the cursor
    /// is already there.
    async fn flush(
        &self,
        taken: &mut Taken,
        delivered: &[(Public, Outcome)],
        next_seq: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        if next_seq == taken.next_seq {
            return Ok(());
        }
        let mut tx = self.app.store.begin(taken.tenant_id).await?;
        for (event, outcome) in delivered {
            log_attempt(tx.conn(), taken, event, outcome, now, "delivered", None).await?;
        }
        sqlx::query!(
            "update webhook_cursors
             set next_seq = $2, attempts = 0, failing_since = null, next_attempt_at = '-infinity'
             where endpoint_id = $1",
            taken.endpoint_id,
            next_seq
        )
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        taken.next_seq = next_seq;
        taken.attempts = 0;
        taken.failing_since = None;
        Ok(())
    }

    /// The delay before the `n`th retry: doubled each time from `first_backoff`, at most
    /// `max_backoff`, less up to a tenth at random (so that endpoints that failed together do
    /// not come back together).
    fn backoff(&self, n: i32) -> chrono::Duration {
        let exp = u32::try_from(n.saturating_sub(1)).unwrap_or(0).min(20);
        let full = self
            .config
            .first_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.max_backoff);
        let jitter = full.mul_f64(rand::random::<f64>() / 10.0);
        chrono::Duration::from_std(full - jitter).unwrap_or(chrono::Duration::MAX)
    }

    /// Up to `limit` public events of the tenant from `from` on.
    async fn events(&self, tenant_id: Uuid, from: i64, limit: i64) -> anyhow::Result<Vec<Public>> {
        let mut tx = self.app.store.begin(tenant_id).await?;
        let rows = sqlx::query!(
            "select seq, event_id, topic, body::text as \"body!\" from rm_public_events
             where seq >= $1 order by seq limit $2",
            from,
            limit
        )
        .fetch_all(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(rows
            .into_iter()
            .map(|r| Public {
                seq: r.seq,
                event_id: r.event_id,
                topic: r.topic,
                body: r.body,
            })
            .collect())
    }

    async fn post(&self, url: &str, secret: &str, event: &Public, now: DateTime<Utc>) -> Outcome {
        let started = Instant::now();
        if let Err(refused) = self.allowed(url) {
            return Outcome {
                status: None,
                error: Some(refused),
                took: started.elapsed(),
            };
        }
        let signature = sign(secret, now.timestamp(), event.body.as_bytes());
        let sent = self
            .client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header("Booking-Event-Id", event.event_id.to_string())
            .header("Booking-Event-Seq", event.seq.to_string())
            .header("Booking-Topic", &event.topic)
            .body(event.body.clone())
            .send()
            .await;
        match sent {
            Ok(response) => Outcome {
                status: Some(response.status().as_u16()),
                error: None,
                took: started.elapsed(),
            },
            Err(err) => Outcome {
                status: None,
                error: Some(describe(&err)),
                took: started.elapsed(),
            },
        }
    }

    /// A URL whose host is an address (the resolver sees only names) must be public unless
    /// private networks are allowed.
    fn allowed(&self, url: &str) -> Result<(), String> {
        if self.config.allow_private_networks {
            return Ok(());
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if is_non_public(ip) {
            return Err(format!("{ip} is not a public address"));
        }
        Ok(())
    }

    /// Records a failed attempt at the cursor's event in the log, and when to try it again
    /// (`retry_at`), or none: given up, the endpoint is being disabled, and enabling it starts
    /// a fresh count at this event.
    async fn record_failure(
        &self,
        taken: &mut Taken,
        event: &Public,
        outcome: &Outcome,
        now: DateTime<Utc>,
        retry_at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        let mut tx = self.app.store.begin(taken.tenant_id).await?;
        let status = if retry_at.is_some() {
            "retrying"
        } else {
            "failed"
        };
        log_attempt(tx.conn(), taken, event, outcome, now, status, retry_at).await?;
        match retry_at {
            None => {
                sqlx::query!(
                    "update webhook_cursors
                     set attempts = 0, failing_since = null, next_attempt_at = '-infinity'
                     where endpoint_id = $1",
                    taken.endpoint_id
                )
                .execute(tx.conn())
                .await?;
                taken.attempts = 0;
                taken.failing_since = None;
            }
            Some(next) => {
                let since = taken.failing_since.unwrap_or(now);
                sqlx::query!(
                    "update webhook_cursors
                     set attempts = attempts + 1, failing_since = $2,
                         next_attempt_at = $3
                     where endpoint_id = $1",
                    taken.endpoint_id,
                    since,
                    next
                )
                .execute(tx.conn())
                .await?;
                taken.attempts += 1;
                taken.failing_since = Some(since);
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Posts event `seq` again, out of turn, as the business asked. If it is the event the
    /// cursor waits on, a success moves the cursor on. Returns whether it was posted.
    async fn redeliver(
        &self,
        tenant_id: Uuid,
        endpoint_id: Uuid,
        seq: i64,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        let mut tx = self.app.store.begin(tenant_id).await?;
        let endpoint = sqlx::query!(
            "select e.url, e.topics, c.next_seq as \"next_seq?\", c.attempts as \"attempts?\",
                    c.failing_since
             from rm_webhook_endpoints e
             left join webhook_cursors c on c.endpoint_id = e.endpoint_id
             where e.endpoint_id = $1 and e.status = 'enabled'",
            endpoint_id
        )
        .fetch_optional(tx.conn())
        .await?;
        tx.commit().await?;
        let Some(endpoint) = endpoint else {
            return Ok(false);
        };
        let mut taken = Taken {
            tenant_id,
            endpoint_id,
            url: endpoint.url,
            topics: endpoint.topics,
            next_seq: endpoint.next_seq.unwrap_or(i64::MAX),
            attempts: endpoint.attempts.unwrap_or(0),
            failing_since: endpoint.failing_since,
        };
        let Some(event) = self.events(tenant_id, seq, 1).await?.into_iter().next() else {
            return Ok(false);
        };
        if event.seq != seq {
            return Ok(false);
        }
        let secret = app::webhooks::secret(&self.app, tenant_id, endpoint_id).await?;
        let outcome = self.post(&taken.url, &secret, &event, now).await;
        if outcome.ok() && seq == taken.next_seq {
            self.flush(&mut taken, &[(event, outcome)], seq + 1, now)
                .await?;
        } else {
            let mut tx = self.app.store.begin(tenant_id).await?;
            let status = if outcome.ok() { "delivered" } else { "failed" };
            log_attempt(tx.conn(), &taken, &event, &outcome, now, status, None).await?;
            tx.commit().await?;
        }
        Ok(true)
    }
}

/// One attempt in the delivery log: the row of this endpoint and event, made or updated. A
/// row once delivered stays delivered whatever a later attempt does.
async fn log_attempt(
    conn: &mut sqlx::PgConnection,
    taken: &Taken,
    event: &Public,
    outcome: &Outcome,
    now: DateTime<Utc>,
    status: &str,
    next_attempt_at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    let delivered_at = outcome.ok().then_some(now);
    let error: Option<String> = outcome
        .error
        .as_ref()
        .map(|e| e.chars().take(500).collect());
    sqlx::query!(
        "insert into webhook_deliveries
             (tenant_id, endpoint_id, seq, event_id, topic, status, attempts, last_attempt_at,
              response_status, error, duration_ms, delivered_at, next_attempt_at)
         values ($1, $2, $3, $4, $5, $6, 1, $7, $8, $9, $10, $11, $12)
         on conflict (tenant_id, endpoint_id, seq) do update
           set status = case when webhook_deliveries.delivered_at is not null
                             then 'delivered' else excluded.status end,
               attempts = webhook_deliveries.attempts + 1,
               last_attempt_at = excluded.last_attempt_at,
               response_status = excluded.response_status,
               error = excluded.error,
               duration_ms = excluded.duration_ms,
               delivered_at = coalesce(webhook_deliveries.delivered_at, excluded.delivered_at),
               next_attempt_at = excluded.next_attempt_at",
        taken.tenant_id,
        taken.endpoint_id,
        event.seq,
        event.event_id,
        event.topic,
        status,
        now,
        outcome.status.map(i32::from),
        error,
        i32::try_from(outcome.took.as_millis()).unwrap_or(i32::MAX),
        delivered_at,
        next_attempt_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// A transport error in a few words (the chain's innermost cause says what happened).
fn describe(err: &reqwest::Error) -> String {
    let what = if err.is_timeout() {
        "timed out"
    } else if err.is_connect() {
        "could not connect"
    } else if err.is_redirect() {
        "redirected"
    } else {
        "failed"
    };
    let mut cause: &dyn std::error::Error = err;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("{what}: {cause}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_with_its_secret_body_and_a_recent_time() {
        let header = sign("whsec_abc", 1_700_000_000, b"{\"a\":1}");
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(
            "whsec_abc",
            &header,
            b"{\"a\":1}",
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "whsec_abd",
            &header,
            b"{\"a\":1}",
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "whsec_abc",
            &header,
            b"{\"a\":2}",
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "whsec_abc",
            &header,
            b"{\"a\":1}",
            1_700_000_400,
            300
        ));
        assert!(!verify(
            "whsec_abc",
            "v1=00",
            b"{\"a\":1}",
            1_700_000_000,
            300
        ));
    }

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_non_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_non_public(ip.parse().unwrap()), "{ip}");
        }
    }
}
