//! `just bench-eventstore`: what the event store's guarantees cost, measured against a plain
//! INSERT in the same run (the machines are shared and noisy, so only ratios travel).
//!
//! - appends/s at concurrency 1, 8, 32: one event per append, each its own tenant transaction
//!   with an expected-version check, vs. an autocommit INSERT of the same row into a table with
//!   the same columns and indexes but no RLS, no transaction block, no version check;
//! - a one-event command on a fresh aggregate (load the stream, decide, append), the row of
//!   `../shared/bench/peer-cqrs-es`, beside the plain INSERT of that row and beside that peer
//!   (cqrs-es + postgres-es, run as a child process in the same run with its own INSERT);
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
    /// The cqrs-es peer's sources (copied to a scratch directory and run from there).
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/bench/peer-cqrs-es"))]
    peer: std::path::PathBuf,
    /// Leave the peer out (it builds cqrs-es in release the first time: minutes).
    #[arg(long)]
    no_peer: bool,
    /// Ignored: cargo bench passes it.
    #[arg(long, hide = true)]
    bench: bool,
}

const TENANTS: usize = 16;

fn payload(i: u64) -> serde_json::Value {
    json!({ "booking_id": format!("bk-{i}"), "service": "Haircut", "starts_at": "2026-12-01T10:00:00Z", "minutes": 45 })
}

/// The peer's event, as it stores it (`peer-cqrs-es/src/main.rs`): the same row size.
fn peer_payload() -> serde_json::Value {
    json!({"BookingRequested":{"service_id":"3f1c2a9e-1234-4c1d-9e1a-0a1b2c3d4e5f","phone":"+2348012345678","customer_name":"Ada Lovelace","date":"2026-12-01","time":"10:30","amount":150000,"currency":"NGN","notes":"first visit"}})
}

fn metadata() -> EventMetadata {
    EventMetadata {
        actor: Some("user:bench".into()),
        correlation_id: Some(Uuid::new_v4()),
        causation_id: None,
        request_id: Some("bench".into()),
        traceparent: None,
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

/// The plain INSERT of an event's row into a table like `events` without its guarantees.
async fn baseline_insert(
    pool: &PgPool,
    tenant: Uuid,
    stream: &str,
    version: i32,
    event_type: &str,
    payload: serde_json::Value,
) {
    sqlx::query(
        "insert into bench_baseline (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, metadata)
         values ($1, 'booking', $2, $3, $4, $5, 1, $6, $7)",
    )
    .bind(tenant)
    .bind(stream)
    .bind(version)
    .bind(Uuid::new_v4())
    .bind(event_type)
    .bind(payload)
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
                        "AppointmentRequested",
                        payload(n),
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

    commands_beside_the_peer(&args, &db, &tenants).await?;

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

/// Our one-event command on a fresh aggregate (read its stream, decide, append at "no stream")
/// beside the plain INSERT of the same row, then the cqrs-es peer's table, run as a child
/// process in this same run; each side's ratio to its own INSERT travels between machines.
async fn commands_beside_the_peer(
    args: &Args,
    db: &TestDb,
    tenants: &Arc<Vec<Uuid>>,
) -> anyhow::Result<()> {
    let mut ours = Vec::new();
    for concurrency in [1usize, 8, 32] {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(concurrency as u32)
            .connect(&db.app_url())
            .await?;
        let store = EventStore::new(pool.clone());
        let (mut command, mut insert) = (0.0, 0.0);
        for round in 0..2 {
            let t = tenants.clone();
            let p = pool.clone();
            insert += measure(concurrency, args.seconds, move |w, n| {
                let p = p.clone();
                let tenant = t[w % TENANTS];
                async move {
                    baseline_insert(
                        &p,
                        tenant,
                        &format!("peer-raw-c{concurrency}-r{round}-w{w}-{n}"),
                        1,
                        "BookingRequested",
                        peer_payload(),
                    )
                    .await
                }
            })
            .await;
            let t = tenants.clone();
            let s = store.clone();
            command += measure(concurrency, args.seconds, move |w, n| {
                let s = s.clone();
                let tenant = t[w % TENANTS];
                async move {
                    let stream =
                        StreamRef::new("booking", format!("peer-c{concurrency}-r{round}-w{w}-{n}"));
                    // Load: a fresh aggregate has no events; decide: one event.
                    let history = s.read_stream(tenant, &stream, 0).await.unwrap();
                    assert!(history.is_empty());
                    let event = NewEvent {
                        event_id: Uuid::new_v4(),
                        event_type: "BookingRequested".into(),
                        schema_version: 1,
                        payload: peer_payload(),
                        metadata: metadata(),
                    };
                    s.append(
                        tenant,
                        vec![StreamAppend {
                            stream,
                            expected: ExpectedVersion::NoStream,
                            events: vec![event],
                        }],
                    )
                    .await
                    .unwrap();
                }
            })
            .await;
        }
        ours.push((concurrency, command / 2.0, insert / 2.0));
        pool.close().await;
    }
    let peer = if args.no_peer {
        None
    } else {
        run_peer(&args.peer).await
    };
    println!(
        "
one-event commands on fresh aggregates, beside the cqrs-es peer (same run, same row)
"
    );
    println!(
        "| concurrency | ours, commands/s | our plain INSERT/s | ours / INSERT | cqrs-es, commands/s | its plain INSERT/s | cqrs-es / INSERT | ours / cqrs-es |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (concurrency, command, insert) in ours {
        let theirs = peer
            .as_ref()
            .and_then(|rows| rows.iter().find(|(c, ..)| *c == concurrency));
        match theirs {
            Some((_, peer_command, peer_insert)) => println!(
                "| {concurrency} | {command:.0} | {insert:.0} | {:.2} | {peer_command:.0} | {peer_insert:.0} | {:.2} | {:.2} |",
                command / insert,
                peer_command / peer_insert,
                command / peer_command
            ),
            None => println!(
                "| {concurrency} | {command:.0} | {insert:.0} | {:.2} | (not run) | | | |",
                command / insert
            ),
        }
    }
    println!();
    Ok(())
}

/// Builds and runs the peer from a scratch copy against a database of its own; its rows as
/// (concurrency, commands/s, plain INSERTs/s). `None` (and why, on stderr) if it cannot run.
async fn run_peer(sources: &std::path::Path) -> Option<Vec<(usize, f64, f64)>> {
    if !sources.join("Cargo.toml").exists() {
        eprintln!("the peer is not at {}: left out", sources.display());
        return None;
    }
    let scratch = std::env::temp_dir().join("booking-peer-cqrs-es");
    let _ = std::fs::remove_dir_all(scratch.join("src"));
    std::fs::create_dir_all(scratch.join("src")).ok()?;
    std::fs::copy(sources.join("Cargo.toml"), scratch.join("Cargo.toml")).ok()?;
    std::fs::copy(sources.join("src/main.rs"), scratch.join("src/main.rs")).ok()?;
    // An empty database of its own: it drops and makes its own `events` table.
    let admin_url = std::env::var("BOOKING_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("peerbench_{}", Uuid::new_v4().simple());
    let admin = |statement: String| {
        let admin_url = admin_url.clone();
        async move {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(&statement).execute(&mut conn).await?;
            conn.close().await
        }
    };
    admin(format!("create database {name}")).await.ok()?;
    let mut url = url::Url::parse(&admin_url).ok()?;
    url.set_path(&name);
    eprintln!("building and running the cqrs-es peer (the first build takes minutes)");
    let output = tokio::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
        .args(["run", "-q", "--release"])
        .current_dir(&scratch)
        .env(
            "CARGO_TARGET_DIR",
            std::env::temp_dir().join("booking-peer-target"),
        )
        .env("DATABASE_URL", url.as_str())
        .output()
        .await;
    let _ = admin(format!("drop database if exists {name} with (force)")).await;
    let output = output.ok()?;
    if !output.status.success() {
        eprintln!(
            "the peer failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        return None;
    }
    let rows = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // | concurrency | peer cmds/s | raw INSERT rows/s | ratio |
            Some((
                cells.get(1)?.parse().ok()?,
                cells.get(2)?.parse().ok()?,
                cells.get(3)?.parse().ok()?,
            ))
        })
        .collect();
    Some(rows)
}
