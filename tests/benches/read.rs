//! `just bench-read`: the read side. Projection throughput (relay plus all eight projections),
//! projection lag under a steady append rate (append to visible through the query API), query
//! API latency at a fixed request rate, and a rebuild over at least a million events. Each
//! figure sits next to a baseline measured in the same run on the same machine: compare the
//! ratios, the machines are shared and noisy.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use e2e_tests::backlog::{history, last_position, load, ms, percentile, tenant};
use e2e_tests::{
    eventually, projector_settings, query_api_settings, spawn_projector, spawn_query_api,
};
use eventstore::{
    EventMetadata, EventStore, ExpectedVersion, NewEvent, Position, StreamAppend, StreamRef,
};
use projector::projection::Projection;
use sqlx::PgPool;
use testkit::{TestDb, TestNats};

/// The relay, the projections, the rebuilder and the query API run in this process: with the
/// allocator of the projector's and the query API's binaries.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Events in the log for the rebuild (at least a million for the quoted figure).
    #[arg(long, default_value_t = 1_000_000)]
    rebuild_events: usize,
    /// Events the live projections start with (throughput phase).
    #[arg(long, default_value_t = 100_000)]
    live_events: usize,
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Appended events per second during the lag phase.
    #[arg(long, default_value_t = 2000)]
    append_rate: u64,
    /// Query API requests per second.
    #[arg(long, default_value_t = 1000)]
    query_rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Connections a batch's tenants are applied on at once (the projector's
    /// `projections.parallelism`; 1 applies each batch in one transaction).
    #[arg(long, default_value_t = 4)]
    parallelism: usize,
    /// Only the rebuild and its baseline (to profile it).
    #[arg(long)]
    rebuild_only: bool,
    #[arg(long, hide = true)]
    bench: bool,
}

async fn caught_up(superuser: &PgPool, at: Position) -> bool {
    let reached: i64 = sqlx::query_scalar(
        "select count(*) from rm_positions where (transaction_id, global_position) >= ($1::text::xid8, $2)",
    )
    .bind(at.transaction_id.to_string())
    .bind(at.global_position as i64)
    .fetch_one(superuser)
    .await
    .unwrap();
    reached == Projection::ALL.len() as i64
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let superuser = db.superuser_url_pool().await;
    let mut report: Vec<(String, String)> = Vec::new();

    if !args.rebuild_only {
        live(&args, &db, &nats, &superuser, &mut report).await;
    }
    rebuild(&args, &db, &nats, &superuser, &mut report).await;

    println!("\nread side benchmark: {} tenants\n", args.tenants);
    println!("| measurement | value |");
    println!("|---|---:|");
    for (k, v) in report {
        println!("| {k} | {v} |");
    }
}

/// The live side: the projections through a backlog, their lag under steady appends, and the
/// query API at a fixed rate.
async fn live(
    args: &Args,
    db: &TestDb,
    nats: &TestNats,
    superuser: &PgPool,
    report: &mut Vec<(String, String)>,
) {
    // 1. Throughput: the relay and the eight projections work through a backlog.
    load(superuser, history(args.live_events, args.tenants, 0)).await;
    let target = last_position(superuser).await;
    let statements = e2e_tests::statements::StatementProfile::start(superuser).await;
    let cpu_before = e2e_tests::cpu::Snapshot::take(&[]);
    let started = Instant::now();
    let mut settings = projector_settings(db, nats);
    settings.projections.parallelism = args.parallelism;
    let projector = spawn_projector(settings).await;
    eventually(Duration::from_secs(600), || async {
        caught_up(superuser, target).await.then_some(())
    })
    .await
    .expect("the projections catch up");
    let elapsed = started.elapsed();
    let cpu_spent = cpu_before.until(&e2e_tests::cpu::Snapshot::take(&[]));
    if let Some(profile) = &statements {
        let (top, totals) = profile.finish(superuser, 15).await.unwrap();
        e2e_tests::statements::print_table(&top, totals, args.live_events as u64, "event");
    }
    // Here the relay and the projector run in this process ("load generator").
    println!("\nCPU time of the drain, by process\n");
    e2e_tests::cpu::print_table(
        &cpu_spent,
        args.live_events as u64,
        "event",
        &["postgres", "nats-server", "redis-server", "load generator"],
    );
    let throughput = args.live_events as f64 / elapsed.as_secs_f64();
    report.push((
        format!(
            "backlog through relay + 8 projections, events/s (parallelism {})",
            args.parallelism
        ),
        format!("{throughput:.0}"),
    ));
    // Whether the drain is bound by the CPU or by waiting (one batch at a time, each
    // statement a round trip): the share of the machine's cores its processes kept busy.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let busy: f64 = cpu_spent.iter().map(|(_, s)| s).sum();
    report.push((
        format!("cores kept busy by the drain's processes, of {cores}"),
        format!("{:.2}", busy / elapsed.as_secs_f64()),
    ));

    // 2. Lag: steady appends through the event store, each visible through the query API
    // (the request carries the append's consistency token and returns once it is applied).
    // The consistency wait as shipped (the tests' is longer).
    let mut settings = query_api_settings(db, nats);
    settings.consistency.max_wait_ms = 2000;
    let query = Arc::new(spawn_query_api(settings).await);
    let store = EventStore::new(db.app_pool().await);
    let vault = db.superuser_url_pool().await;
    let mut tokens = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        tokens.push(e2e_tests::member_token(&vault, tenant(i), domain::access::Role::Owner).await);
    }
    let tokens: Arc<Vec<String>> = Arc::new(tokens);
    let lags = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let interval = Duration::from_secs_f64(1.0 / args.append_rate as f64);
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let mut n = 0usize;
    let mut late_appends = 0usize;
    while Instant::now() < deadline {
        ticker.tick().await;
        n += 1;
        let (store, query, tokens, lags) =
            (store.clone(), query.clone(), tokens.clone(), lags.clone());
        let t = n % args.tenants;
        if tasks.len() > 2000 {
            late_appends += 1;
        }
        tasks.spawn(async move {
            let mut rows = history(1, 1, 2 * n);
            let r = rows.remove(0);
            let append = StreamAppend {
                stream: StreamRef::new(r.stream_type, r.stream_id.clone()),
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: r.event_type.into(),
                    schema_version: r.schema_version as u32,
                    payload: r.payload,
                    metadata: EventMetadata::default(),
                }],
            };
            let outcome = store.append(tenant(t), vec![append]).await.unwrap();
            let appended = Instant::now();
            // Every tenth append is followed through the query API.
            if n.is_multiple_of(10) {
                let (status, body) = query
                    .get(
                        &format!("/v1/bookings/{}", r.stream_id),
                        &tokens[t],
                        Some(&outcome.last_position.to_string()),
                    )
                    .await;
                if status == 200 {
                    lags.lock().await.push(Ok(appended.elapsed()));
                } else {
                    assert_eq!(status, 503, "{body}");
                    lags.lock().await.push(Err(()));
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let outcomes = lags.lock().await.clone();
    let timed_out = outcomes.iter().filter(|o| o.is_err()).count();
    let mut lags: Vec<Duration> = outcomes.into_iter().filter_map(Result::ok).collect();
    lags.sort();
    report.push((
        format!(
            "lag p50 at {} appends/s (append to visible via query API)",
            args.append_rate
        ),
        format!("{:.1} ms", ms(percentile(&lags, 0.5))),
    ));
    report.push((
        "lag p99".into(),
        format!("{:.1} ms", ms(percentile(&lags, 0.99))),
    ));
    report.push(("lag samples".into(), lags.len().to_string()));
    report.push((
        "reads that waited the full 2 s and got 503".into(),
        timed_out.to_string(),
    ));
    if late_appends > 0 {
        report.push((
            "appends started behind schedule".into(),
            late_appends.to_string(),
        ));
    }

    // 3. Query API at a fixed rate, next to the same reads straight through sqlx.
    let ids: Vec<(usize, String)> = {
        let rows: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
            "select tenant_id, booking_id from rm_bookings order by booking_id limit 2000",
        )
        .fetch_all(superuser)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(t, b)| ((t.as_u128() - tenant(0).as_u128()) as usize, b.to_string()))
            .collect()
    };
    let ids = Arc::new(ids);
    let run_at_rate = |rate: u64, direct: bool| {
        let (query, tokens, ids) = (query.clone(), tokens.clone(), ids.clone());
        let pool = store.pool().clone();
        async move {
            let latencies = Arc::new(tokio::sync::Mutex::new(Vec::new()));
            let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            let deadline = Instant::now() + Duration::from_secs(args.seconds);
            let mut tasks = tokio::task::JoinSet::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                ticker.tick().await;
                i += 1;
                let (query, tokens, ids, latencies, pool) = (
                    query.clone(),
                    tokens.clone(),
                    ids.clone(),
                    latencies.clone(),
                    pool.clone(),
                );
                tasks.spawn(async move {
                    let (t, id) = &ids[i % ids.len()];
                    let started = Instant::now();
                    if direct {
                        let mut tx = pool.begin().await.unwrap();
                        sqlx::query("select set_config('app.tenant_id', $1, true)")
                            .bind(tenant(*t).to_string())
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                        let _: Option<(uuid::Uuid,)> = sqlx::query_as(
                            "select booking_id from rm_bookings where booking_id = $1::uuid",
                        )
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await
                        .unwrap();
                        let _: Vec<(i32,)> = sqlx::query_as(
                            "select version from rm_booking_history where booking_id = $1::uuid",
                        )
                        .bind(id)
                        .fetch_all(&mut *tx)
                        .await
                        .unwrap();
                        tx.commit().await.unwrap();
                    } else {
                        let path = if i.is_multiple_of(2) {
                            format!("/v1/bookings/{id}")
                        } else {
                            "/v1/bookings?limit=20".to_owned()
                        };
                        let (status, _) = query.get(&path, &tokens[*t], None).await;
                        assert_eq!(status, 200);
                    }
                    latencies.lock().await.push(started.elapsed());
                });
            }
            while tasks.join_next().await.is_some() {}
            let mut l = latencies.lock().await.clone();
            l.sort();
            l
        }
    };
    let api = run_at_rate(args.query_rate, false).await;
    let direct = run_at_rate(args.query_rate, true).await;
    report.push((
        format!("query API p50 at {} req/s", args.query_rate),
        format!("{:.1} ms", ms(percentile(&api, 0.5))),
    ));
    report.push((
        "query API p99".into(),
        format!("{:.1} ms", ms(percentile(&api, 0.99))),
    ));
    report.push((
        "baseline: the same reads via sqlx, p50 / p99".into(),
        format!(
            "{:.1} ms / {:.1} ms",
            ms(percentile(&direct, 0.5)),
            ms(percentile(&direct, 0.99))
        ),
    ));
    projector.shutdown().await;
}

/// A rebuild over the whole log, next to a plain copy of the same rows.
async fn rebuild(
    args: &Args,
    db: &TestDb,
    nats: &TestNats,
    superuser: &PgPool,
    report: &mut Vec<(String, String)>,
) {
    // 4. Rebuild over the whole log, next to a plain copy of the same rows.
    let have: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(superuser)
        .await
        .unwrap();
    if (have as usize) < args.rebuild_events {
        load(
            superuser,
            history(
                args.rebuild_events - have as usize,
                args.tenants,
                10_000_000,
            ),
        )
        .await;
    }
    let total: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(superuser)
        .await
        .unwrap();
    let rebuilder = projector::rebuilder(&projector_settings(db, nats)).unwrap();
    let statements = e2e_tests::statements::StatementProfile::start(superuser).await;
    let cpu_before = e2e_tests::cpu::Snapshot::take(&[]);
    let rebuilt = rebuilder
        .run(&projector::rebuild::RebuildRequest {
            projections: Projection::ALL.to_vec(),
            tenant: None,
            progress: true,
        })
        .await
        .unwrap();
    let rebuild_cpu = cpu_before.until(&e2e_tests::cpu::Snapshot::take(&[]));
    if let Some(profile) = &statements {
        let (top, totals) = profile.finish(superuser, 10).await.unwrap();
        println!("\nStatements of the rebuild\n");
        e2e_tests::statements::print_table(&top, totals, total as u64, "event");
    }
    println!("\nCPU time of the rebuild, by process\n");
    e2e_tests::cpu::print_table(
        &rebuild_cpu,
        total as u64,
        "event",
        &["postgres", "load generator"],
    );
    let cpu_before = e2e_tests::cpu::Snapshot::take(&[]);
    let copy_started = Instant::now();
    sqlx::query("create table bench_copy as select * from events")
        .execute(superuser)
        .await
        .unwrap();
    let copy_rate = total as f64 / copy_started.elapsed().as_secs_f64();
    let copy_cpu = cpu_before.until(&e2e_tests::cpu::Snapshot::take(&[]));
    // CPU per event, the platform's (Postgres and the rebuilder, in this process): steadier
    // than the rates on a shared machine.
    let per_event = |spent: &[(String, f64)]| {
        let seconds: f64 = spent
            .iter()
            .filter(|(g, _)| g == "postgres" || g == "load generator")
            .map(|(_, s)| s)
            .sum();
        seconds * 1000.0 / total as f64
    };
    let (rebuild_ms, copy_ms) = (per_event(&rebuild_cpu), per_event(&copy_cpu));
    report.push((
        format!("rebuild of all projections over {total} events, events/s"),
        format!("{:.0}", rebuilt.events_per_second()),
    ));
    report.push((
        "baseline: copying the same rows (create table as select), rows/s".into(),
        format!("{copy_rate:.0}"),
    ));
    report.push((
        "rebuild / copy".into(),
        format!("{:.3}", rebuilt.events_per_second() / copy_rate),
    ));
    report.push((
        "rebuild, CPU-ms per event (Postgres and the rebuilder)".into(),
        format!("{rebuild_ms:.3}"),
    ));
    report.push((
        "baseline: the copy, CPU-ms per row".into(),
        format!("{copy_ms:.4}"),
    ));
    report.push((
        "copy / rebuild, by CPU per event".into(),
        format!("{:.3}", copy_ms / rebuild_ms.max(1e-9)),
    ));
}
