//! `just bench-eventstore`: what the event store's guarantees cost, measured against a plain
//! INSERT in the same run (the machines are shared and noisy, so only ratios travel).
//!
//! - appends/s at concurrency 1, 8, 32: one event per append, each its own tenant transaction
//!   with an expected-version check, vs. an autocommit INSERT of the same row into a table with
//!   the same columns and indexes but no RLS, no transaction block, no version check;
//! - gap-free global read, events/s;
//! - relay, Postgres to JetStream acknowledged (file storage), events/s.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use eventstore::{
    EventMetadata, EventStore, ExpectedVersion, GlobalLog, NewEvent, Position, Relay, RelayConfig,
    StreamAppend, StreamRef,
};
use serde_json::json;
use sqlx::PgPool;
use testkit::{TestDb, TestNats};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[derive(Parser)]
struct Args {
    /// Seconds per measurement round (each concurrency runs two rounds of each side).
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Events in the log for the read and relay measurements.
    #[arg(long, default_value_t = 200_000)]
    log_events: usize,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

const TENANTS: usize = 16;

fn payload(i: u64) -> serde_json::Value {
    json!({ "booking_id": format!("bk-{i}"), "service": "Haircut", "starts_at": "2026-12-01T10:00:00Z", "minutes": 45 })
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: Some("user:bench".into()),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: None,
        request_id: Some("bench".into()),
    }
}

fn new_event(i: u64) -> NewEvent {
    NewEvent {
        event_id: Uuid::new_v4(),
        event_type: "AppointmentRequested".into(),
        schema_version: 1,
        payload: payload(i),
        metadata: metadata(),
    }
}

/// Runs `concurrency` workers for `seconds`, each calling `op(worker, n)`; returns ops/s.
async fn measure<F, Fut>(concurrency: usize, seconds: u64, op: F) -> f64
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let op = op.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    op(w, n).await;
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

async fn baseline_insert(pool: &PgPool, tenant: Uuid, stream: &str, version: i32, i: u64) {
    sqlx::query(
        "insert into bench_baseline (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, metadata)
         values ($1, 'booking', $2, $3, $4, 'AppointmentRequested', 1, $5, $6)",
    )
    .bind(tenant)
    .bind(stream)
    .bind(version)
    .bind(Uuid::new_v4())
    .bind(payload(i))
    .bind(sqlx::types::Json(metadata()))
    .execute(pool)
    .await
    .unwrap();
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let db = TestDb::new().await;
    let owner = db.owner_pool().await;
    sqlx::query(
        "create table bench_baseline (like events including defaults including identity including constraints including indexes)",
    )
    .execute(&owner)
    .await?;
    sqlx::query("grant select, insert on bench_baseline to booking_app")
        .execute(&owner)
        .await?;
    let tenants: Arc<Vec<Uuid>> = Arc::new((0..TENANTS).map(|_| Uuid::new_v4()).collect());

    println!(
        "event store benchmark ({}s rounds, 2 rounds per side, interleaved)\n",
        args.seconds
    );
    println!("| measurement | concurrency | event store | plain INSERT | ratio |");
    println!("|---|---:|---:|---:|---:|");
    for concurrency in [1usize, 8, 32] {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(concurrency as u32)
            .connect(&db.app_url())
            .await?;
        let store = EventStore::new(pool.clone());
        let (mut ours, mut theirs) = (0.0, 0.0);
        for round in 0..2 {
            let t = tenants.clone();
            let p = pool.clone();
            theirs += measure(concurrency, args.seconds, move |w, n| {
                let p = p.clone();
                let tenant = t[w % TENANTS];
                async move {
                    baseline_insert(
                        &p,
                        tenant,
                        &format!("c{concurrency}-r{round}-w{w}"),
                        n as i32 + 1,
                        n,
                    )
                    .await
                }
            })
            .await;
            let t = tenants.clone();
            let s = store.clone();
            ours += measure(concurrency, args.seconds, move |w, n| {
                let s = s.clone();
                let tenant = t[w % TENANTS];
                async move {
                    let expected = if n == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(n as u32)
                    };
                    s.append(
                        tenant,
                        vec![StreamAppend {
                            stream: StreamRef::new(
                                "booking",
                                format!("c{concurrency}-r{round}-w{w}"),
                            ),
                            expected,
                            events: vec![new_event(n)],
                        }],
                    )
                    .await
                    .unwrap();
                }
            })
            .await;
        }
        let (ours, theirs) = (ours / 2.0, theirs / 2.0);
        println!(
            "| single-event appends/s | {concurrency} | {ours:.0} | {theirs:.0} | {:.2} |",
            ours / theirs
        );
        pool.close().await;
    }

    // Fill the log for the read and relay measurements: 100-event appends across streams.
    let store = EventStore::new(db.app_pool().await);
    let log = GlobalLog::new(db.operator_pool().await);
    let existing = count(&log).await;
    let mut i = 0u64;
    let mut fills = Vec::new();
    let to_add = args.log_events.saturating_sub(existing);
    for chunk in 0..to_add.div_ceil(100) {
        let store = store.clone();
        let tenant = tenants[chunk % TENANTS];
        let events: Vec<NewEvent> = (0..100)
            .map(|_| {
                i += 1;
                new_event(i)
            })
            .collect();
        fills.push(async move {
            store
                .append(
                    tenant,
                    vec![StreamAppend {
                        stream: StreamRef::new("agenda", format!("fill-{chunk}")),
                        expected: ExpectedVersion::NoStream,
                        events,
                    }],
                )
                .await
                .unwrap();
        });
        if fills.len() == 8 {
            futures::future::join_all(fills.drain(..)).await;
        }
    }
    futures::future::join_all(fills).await;
    let total = count(&log).await;

    for batch in [1_000usize, 5_000] {
        let started = Instant::now();
        let mut checkpoint = Position::START;
        let mut read = 0usize;
        loop {
            let events = log.read_all(checkpoint, batch).await?;
            let Some(last) = events.last() else { break };
            checkpoint = last.position;
            read += events.len();
        }
        let rate = read as f64 / started.elapsed().as_secs_f64();
        println!("| gap-free global read, events/s (batch {batch}) | 1 | {rate:.0} | | |");
    }

    let nats = TestNats::new().await;
    let js = nats.jetstream();
    let relay = Relay::new(
        log.clone(),
        nats.client.clone(),
        nats.ns.clone(),
        RelayConfig::default(),
    );
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(relay.run(cancel.clone()));
    loop {
        let stored = match js.get_stream(nats.ns.events_stream()).await {
            Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
            Err(_) => 0,
        };
        if stored as usize >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = total as f64 / started.elapsed().as_secs_f64();
    cancel.cancel();
    task.await??;
    println!("| relay to JetStream (file storage, acked), events/s | 1 | {rate:.0} | | |");
    println!("\nlog size for read and relay: {total} events");
    Ok(())
}

async fn count(log: &GlobalLog) -> usize {
    sqlx::query_scalar::<_, i64>("select count(*) from events")
        .fetch_one(log.pool())
        .await
        .unwrap() as usize
}
