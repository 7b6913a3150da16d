//! Replay: rebuilding read models from the event store while the live consumers keep serving.
//!
//! A whole projection is rebuilt into shadow tables (in the `rebuild` schema, under the live
//! tables' names, same definition, same RLS) from one pass over every tenant's events, read
//! tenant by tenant in commit order as the operator role. The writers set `search_path` to
//! `rebuild, public`, so they run the projections' usual statements. To swap, the operator
//! locks the live tables (the live consumer waits), the shadows catch up with whatever was
//! committed meanwhile, and the shadows are moved into place in the same transaction as the
//! lock. Readers see the old tables, then the new ones, never a mix; the live consumer carries
//! on against the new tables, whose applied versions tell it what to skip.
//!
//! One tenant's rows are rebuilt in place in one transaction: its rows are deleted and its
//! events replayed; other tenants are not touched.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use eventstore::{EventStore, GlobalLog, Position, RecordedEvent};
use indicatif::{ProgressBar, ProgressStyle};
use sqlx::PgPool;

use crate::consumer::set_tenant;
use crate::projection::{Projection, TenantVersions, apply_together, load_together};

/// Events read at once, and applied in one transaction (a [`Rebuilder`]'s `page` unless set).
pub const READ_BATCH: usize = 5_000;
/// Connections a rebuild writes on at once.
const WORKERS: usize = 4;
const SWAP_ATTEMPTS: u32 = 5;

/// What to rebuild.
#[derive(Debug, Clone)]
pub struct RebuildRequest {
    pub projections: Vec<Projection>,
    pub tenant: Option<uuid::Uuid>,
    pub progress: bool,
}

/// What a rebuild did.
#[derive(Debug, Clone, PartialEq)]
pub struct RebuildReport {
    pub events: u64,
    pub elapsed: Duration,
    pub last_position: Position,
}

impl RebuildReport {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The pools a rebuild uses: the operator reads every tenant's events and runs the table swap,
/// the application role writes rows tenant by tenant under RLS.
pub struct Rebuilder {
    pub log: GlobalLog,
    pub store: EventStore,
    pub app_pool: PgPool,
    pub operator_pool: PgPool,
    /// Events read at once, and applied in one transaction ([`READ_BATCH`]; the tests take
    /// far fewer, so that their tenants span pages).
    pub page: usize,
}

impl Rebuilder {
    pub async fn run(&self, request: &RebuildRequest) -> anyhow::Result<RebuildReport> {
        anyhow::ensure!(!request.projections.is_empty(), "nothing to rebuild");
        match request.tenant {
            Some(tenant) => self.rebuild_tenant(request, tenant).await,
            None => self.rebuild_all(request).await,
        }
    }

    async fn rebuild_all(&self, request: &RebuildRequest) -> anyhow::Result<RebuildReport> {
        let started = Instant::now();
        for projection in &request.projections {
            sqlx::query!("select from rm_create_shadows($1)", projection.name())
                .execute(&self.operator_pool)
                .await
                .with_context(|| format!("failed to create {projection}'s shadow tables"))?;
        }
        let total = sqlx::query_scalar!(r#"select count(*) as "count!" from events"#)
            .fetch_one(&self.operator_pool)
            .await?;
        let bar = progress_bar(request.progress, total as u64);
        let result = async {
            // Everything up to `head` is committed now, so each tenant's read below finds all
            // of its events up to there (and perhaps some after, which the catch-up then skips
            // as duplicates); the catch-up reads the whole log after it.
            let head = self.log.head().await?;
            let events = self.copy_tenants(&request.projections, &bar).await?;
            // The indexes only readers use, built from the loaded rows, outside the swap's lock.
            for projection in &request.projections {
                sqlx::query!("select from rm_index_shadows($1)", projection.name())
                    .execute(&self.operator_pool)
                    .await
                    .with_context(|| format!("failed to index {projection}'s shadow tables"))?;
            }
            let caught_up = self.swap(&request.projections, head).await?;
            Ok::<_, anyhow::Error>((events + caught_up.0, caught_up.1))
        }
        .await;
        bar.finish_and_clear();
        match result {
            Ok((events, last_position)) => Ok(RebuildReport {
                events,
                elapsed: started.elapsed(),
                last_position,
            }),
            Err(err) => {
                for projection in &request.projections {
                    let _ = sqlx::query!("select from rm_drop_shadows($1)", projection.name())
                        .execute(&self.operator_pool)
                        .await;
                }
                Err(err)
            }
        }
    }

    /// Applies every tenant's events to the shadows, on [`WORKERS`] connections, each taking
    /// the next tenant when it is done with one. Each tenant's events are read in pages of
    /// `page`, and a worker applies what it has read in one transaction once it holds
    /// that many: a page of one large tenant, or the whole histories of many small ones, which
    /// each projection then writes with one statement per table. Tenants are independent (no
    /// read-model row is two tenants'), so a tenant's events need no other tenant's before
    /// them, and each tenant's stay in their order. Every event is read once, so none is a
    /// duplicate: the versions applied are counted here, and each tenant's are written with
    /// the transaction that applies its last page ([`load_together`]). Returns the events read.
    async fn copy_tenants(
        &self,
        projections: &[Projection],
        bar: &ProgressBar,
    ) -> anyhow::Result<u64> {
        let tenants = self.log.tenants().await?;
        let next = AtomicUsize::new(0);
        let read = AtomicU64::new(0);
        let counted = &read;
        let apply = |held: Vec<RecordedEvent>, done: Vec<TenantVersions>| async move {
            let refs: Vec<&RecordedEvent> = held.iter().collect();
            let mut tx = self.shadows_tx().await?;
            load_together(projections, &mut tx, &self.store, &refs, &done).await?;
            tx.commit().await?;
            counted.fetch_add(held.len() as u64, Ordering::Relaxed);
            bar.inc(held.len() as u64);
            Ok::<_, anyhow::Error>(())
        };
        let worker = || async {
            let mut held: Vec<RecordedEvent> = Vec::new();
            let mut done: Vec<TenantVersions> = Vec::new();
            while let Some(&tenant) = tenants.get(next.fetch_add(1, Ordering::Relaxed)) {
                let mut versions = TenantVersions::new(tenant);
                let mut position = Position::START;
                loop {
                    let page = self.log.read_tenant(tenant, position, self.page).await?;
                    let Some(last) = page.last() else { break };
                    position = last.position;
                    for event in &page {
                        versions.record(event)?;
                    }
                    // A short page is the tenant's last up to the head (everything before it
                    // is committed); what came after, the catch-up applies.
                    let whole = page.len() < self.page;
                    held.extend(page);
                    if whole {
                        break;
                    }
                    if held.len() >= self.page {
                        apply(std::mem::take(&mut held), Vec::new()).await?;
                    }
                }
                done.push(versions);
                if held.len() >= self.page {
                    apply(std::mem::take(&mut held), std::mem::take(&mut done)).await?;
                }
                bar.set_message(format!(
                    "{} of {} tenants",
                    next.load(Ordering::Relaxed).min(tenants.len()),
                    tenants.len()
                ));
            }
            if !held.is_empty() || !done.is_empty() {
                apply(held, done).await?;
            }
            Ok::<_, anyhow::Error>(())
        };
        futures::future::try_join_all((0..WORKERS).map(|_| worker())).await?;
        Ok(read.into_inner())
    }

    /// Applies the log after `from` to the shadows, batch by batch, until it is exhausted.
    async fn copy_log(
        &self,
        projections: &[Projection],
        from: Position,
        bar: &ProgressBar,
    ) -> anyhow::Result<(u64, Position)> {
        let mut position = from;
        let mut events = 0u64;
        loop {
            let batch = self.log.read_all(position, self.page).await?;
            let Some(last) = batch.last() else {
                return Ok((events, position));
            };
            let last = last.position;
            self.apply_to_shadows(projections, &batch).await?;
            events += batch.len() as u64;
            position = last;
            bar.inc(batch.len() as u64);
            bar.set_message(format!("at {position}"));
        }
    }

    /// Applies a batch to the shadows on [`WORKERS`] connections at once, tenants split
    /// between them by id (a tenant's events stay on one connection, in order).
    async fn apply_to_shadows(
        &self,
        projections: &[Projection],
        batch: &[RecordedEvent],
    ) -> anyhow::Result<()> {
        let mut parts: Vec<Vec<&RecordedEvent>> = vec![Vec::new(); WORKERS];
        for event in batch {
            parts[(event.tenant_id.as_u128() % WORKERS as u128) as usize].push(event);
        }
        let work = parts
            .into_iter()
            .filter(|p| !p.is_empty())
            .map(|part| async move { self.apply_part(projections, &part).await });
        for result in futures::future::join_all(work).await {
            result?;
        }
        Ok(())
    }

    /// Applies `events` to the shadows in one transaction.
    async fn apply_part(
        &self,
        projections: &[Projection],
        events: &[&RecordedEvent],
    ) -> anyhow::Result<()> {
        let mut tx = self.shadows_tx().await?;
        apply_together(projections, &mut tx, &self.store, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A transaction in which the projections' own statements write the shadows.
    async fn shadows_tx(&self) -> anyhow::Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.app_pool.begin().await?;
        sqlx::query!("set local search_path to rebuild, public")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// Locks the live tables, catches the shadows up, swaps them in. Retried on a deadlock
    /// with a live consumer that held one table while the lock took another.
    async fn swap(
        &self,
        projections: &[Projection],
        position: Position,
    ) -> anyhow::Result<(u64, Position)> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.try_swap(projections, position).await {
                Ok(done) => return Ok(done),
                Err(err) if attempt < SWAP_ATTEMPTS && is_deadlock(&err) => {
                    tracing::warn!("swap met a live consumer in a deadlock; retrying");
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn try_swap(
        &self,
        projections: &[Projection],
        position: Position,
    ) -> anyhow::Result<(u64, Position)> {
        let mut lock = self.operator_pool.begin().await?;
        sqlx::query!("set local lock_timeout = '30s'")
            .execute(&mut *lock)
            .await?;
        let mut names: Vec<&str> = projections.iter().map(|p| p.name()).collect();
        names.sort_unstable();
        for name in &names {
            sqlx::query!("select from rm_lock_live($1)", *name)
                .execute(&mut *lock)
                .await?;
        }
        let caught_up = self
            .copy_log(projections, position, &ProgressBar::hidden())
            .await?;
        for name in &names {
            sqlx::query!("select from rm_swap($1)", *name)
                .execute(&mut *lock)
                .await?;
        }
        lock.commit().await?;
        Ok(caught_up)
    }

    async fn rebuild_tenant(
        &self,
        request: &RebuildRequest,
        tenant: uuid::Uuid,
    ) -> anyhow::Result<RebuildReport> {
        let started = Instant::now();
        let mut tx = self.app_pool.begin().await?;
        set_tenant(&mut tx, tenant).await?;
        for projection in &request.projections {
            sqlx::query!(
                "select from rm_clear_tenant($1, $2)",
                projection.name(),
                tenant
            )
            .execute(&mut *tx)
            .await?;
        }
        let bar = progress_bar(request.progress, 0);
        let mut position = Position::START;
        let mut events = 0u64;
        loop {
            let batch = self.log.read_tenant(tenant, position, self.page).await?;
            let Some(last) = batch.last() else { break };
            position = last.position;
            let refs: Vec<&RecordedEvent> = batch.iter().collect();
            apply_together(&request.projections, &mut tx, &self.store, &refs).await?;
            events += batch.len() as u64;
            bar.inc(batch.len() as u64);
            bar.set_message(format!("at {position}"));
        }
        tx.commit().await?;
        bar.finish_and_clear();
        Ok(RebuildReport {
            events,
            elapsed: started.elapsed(),
            last_position: position,
        })
    }
}

fn is_deadlock(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .and_then(|e| e.as_database_error())
            .and_then(|e| e.code())
            .is_some_and(|code| code == "40P01")
    })
}

fn progress_bar(visible: bool, total: u64) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events  {per_sec}  eta {eta}  {msg}")
            .expect("a valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
