//! `just bench-analytics`: the analytics consumer beside the projector, and the analytics reads
//! beside a plain read, each pair in the same run on the same machine (compare the ratios: the
//! machines are shared and noisy).
//!
//! 1. A backlog of events in the log is published by the relay alone; then the projections
//!    (all seven) drain the full stream, then the analytics consumer drains the same stream.
//! 2. Facts for many tenants with a year each are written straight into the analytics schema
//!    (setup, not measured); the three analytics reads are then asked at a fixed rate over
//!    every tenant, and so is `GET /v1/usage` (one row by key) as the baseline.
//! 3. Webhooks: public events of many tenants, each with an endpoint at a local receiver, are
//!    delivered by the webhook deliverer (signed, logged, one cursor move per event); the
//!    baseline is the same number of plain POSTs of the same bodies to the same receiver, with
//!    the same concurrency, by a bare HTTP client.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use e2e_tests::backlog::{history, last_position, load, ms, percentile, tenant};
use e2e_tests::cpu::Snapshot;
use e2e_tests::{
    analytics_settings, eventually, projector_settings, query_api_settings, spawn_analytics,
    spawn_projector, spawn_query_api,
};
use sqlx::PgPool;
use testkit::{TestDb, TestNats};

#[derive(Parser)]
struct Args {
    /// Events in the backlog both consumers drain.
    #[arg(long, default_value_t = 1_000_000)]
    events: usize,
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Appointments a tenant has over its year of facts.
    #[arg(long, default_value_t = 1500)]
    bookings_per_tenant: usize,
    /// Requests per second in the query phase.
    #[arg(long, default_value_t = 200)]
    query_rate: u64,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Tenants with a webhook endpoint each, and public events delivered to each.
    #[arg(long, default_value_t = 20)]
    webhook_tenants: usize,
    #[arg(long, default_value_t = 500)]
    webhook_events: usize,
    /// Only the webhook phase (3).
    #[arg(long)]
    webhooks_only: bool,
    #[arg(long, hide = true)]
    bench: bool,
}

/// A receiver that answers 200 to every POST and counts them.
async fn counting_receiver() -> (String, Arc<std::sync::atomic::AtomicU64>) {
    let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = count.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |_body: axum::body::Bytes| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    (url, count)
}

/// CPU-ms since `before` of this process (sender and receiver) and Postgres.
fn cpu_ms(before: &Snapshot) -> f64 {
    before
        .until(&Snapshot::take(&[]))
        .iter()
        .filter(|(group, _)| group == "load generator" || group == "postgres")
        .map(|(_, seconds)| seconds * 1000.0)
        .sum()
}

/// Phase 3: deliveries/s of the webhook deliverer, and of bare POSTs as the baseline.
async fn webhooks(
    db: &TestDb,
    superuser: &PgPool,
    args: &Args,
    report: &mut Vec<(String, String)>,
) {
    let (url, received) = counting_receiver().await;
    let app = e2e_tests::use_cases(db);
    let body = |tenant: uuid::Uuid, seq: usize| {
        serde_json::json!({
            "id": uuid::Uuid::new_v4(), "type": "booking.created", "version": 1,
            "tenant_id": tenant, "created_at": "2026-12-01T10:00:00Z",
            "data": {"booking_id": uuid::Uuid::new_v4(), "reference": format!("R{seq}"),
                     "starts_at": "2026-12-02T10:00:00Z", "ends_at": "2026-12-02T10:45:00Z",
                     "customer": {"phone": "+34600000001", "name": "Ana"}, "channel": "whatsapp",
                     "service": {"id": uuid::Uuid::new_v4(), "name": "Haircut"},
                     "resource": "default", "price": {"minor": 2500, "currency": "EUR"}}
        })
    };
    let mut bodies = Vec::new();
    for i in 0..args.webhook_tenants {
        let tenant = tenant(1_000_000 + i);
        let endpoint = uuid::Uuid::new_v4();
        sqlx::query(
            "insert into rm_webhook_endpoints (tenant_id, endpoint_id, url, topics, description,
                                               status, start_seq, created_at, updated_at)
             values ($1, $2, $3, '{}', 'bench', 'enabled', 1, now(), now())",
        )
        .bind(tenant)
        .bind(endpoint)
        .bind(&url)
        .execute(superuser)
        .await
        .unwrap();
        sqlx::query(
            "insert into webhook_secrets (tenant_id, endpoint_id, secret_enc) values ($1, $2, $3)",
        )
        .bind(tenant)
        .bind(endpoint)
        .bind(app.sealer.seal(b"whsec_bench"))
        .execute(superuser)
        .await
        .unwrap();
        let mut tenant_bodies = Vec::new();
        for seq in 1..=args.webhook_events {
            let b = body(tenant, seq);
            sqlx::query(
                "insert into rm_public_events (tenant_id, seq, event_id, topic, body, created_at)
                 values ($1, $2, $3, 'booking.created', $4, now())",
            )
            .bind(tenant)
            .bind(seq as i64)
            .bind(uuid::Uuid::new_v4())
            .bind(&b)
            .execute(superuser)
            .await
            .unwrap();
            tenant_bodies.push(b.to_string());
        }
        sqlx::query("insert into rm_public_event_heads (tenant_id, last_seq) values ($1, $2)")
            .bind(tenant)
            .bind(args.webhook_events as i64)
            .execute(superuser)
            .await
            .unwrap();
        bodies.push(tenant_bodies);
    }
    let total = (args.webhook_tenants * args.webhook_events) as u64;
    let operator = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect_lazy(&db.operator_url())
        .unwrap();
    let deliverer = projector::webhooks::Deliverer::new(
        app,
        operator,
        projector::webhooks::DelivererConfig {
            allow_private_networks: true,
            ..projector::webhooks::DelivererConfig::default()
        },
    )
    .unwrap();
    let cpu = Snapshot::take(&[]);
    let started = Instant::now();
    while received.load(std::sync::atomic::Ordering::Relaxed) < total {
        deliverer.run_once(chrono::Utc::now()).await.unwrap();
    }
    let delivered = total as f64 / started.elapsed().as_secs_f64();
    let delivered_cpu = cpu_ms(&cpu) / total as f64;

    // The baseline: the same bodies POSTed by a bare client, one stream per tenant.
    let client = reqwest::Client::new();
    received.store(0, std::sync::atomic::Ordering::Relaxed);
    let cpu = Snapshot::take(&[]);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for tenant_bodies in bodies {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            for b in tenant_bodies {
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let bare = total as f64 / started.elapsed().as_secs_f64();
    let bare_cpu = cpu_ms(&cpu) / total as f64;
    report.push((
        format!(
            "webhooks: {total} deliveries ({} endpoints x {}), deliveries/s",
            args.webhook_tenants, args.webhook_events
        ),
        format!("{delivered:.0}"),
    ));
    report.push((
        "baseline: the same bodies as bare POSTs, requests/s".into(),
        format!("{bare:.0}"),
    ));
    report.push((
        "deliverer / bare POSTs (throughput)".into(),
        format!("{:.2}", delivered / bare),
    ));
    report.push((
        "CPU-ms per delivery (this process + Postgres) / per bare POST".into(),
        format!("{delivered_cpu:.3} / {bare_cpu:.3}"),
    ));
}

async fn stream_messages(nats: &TestNats) -> u64 {
    let js = async_nats::jetstream::new(nats.client.clone());
    match js.get_stream(nats.ns.events_stream()).await {
        Ok(mut s) => s.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

async fn analytics_sequence(superuser: &PgPool) -> u64 {
    sqlx::query_scalar::<_, i64>("select stream_sequence from analytics.checkpoints")
        .fetch_optional(superuser)
        .await
        .unwrap()
        .unwrap_or(0) as u64
}

/// A year of facts for each tenant, generated in SQL: bookings with their outcomes over three
/// services and two staff members, conversations, messages a day.
async fn year_of_facts(superuser: &PgPool, tenants: usize, bookings: usize) {
    for chunk in (0..tenants).collect::<Vec<_>>().chunks(50) {
        let ids: Vec<uuid::Uuid> = chunk.iter().map(|i| tenant(*i)).collect();
        sqlx::query(
            "insert into analytics.tenants (tenant_id, business_name, time_zone, onboarded_at)
             select t, 'Bench ' || t, 'Europe/Madrid', now() - interval '400 days'
               from unnest($1::uuid[]) t
             on conflict (tenant_id) do nothing",
        )
        .bind(&ids)
        .execute(superuser)
        .await
        .unwrap();
        sqlx::query(
            "insert into analytics.bookings (tenant_id, booking_id, service_id, service_name,
                 resource, channel, customer_phone, price_minor, currency, booked_at, starts_at,
                 ends_at, outcome, cancelled_at, cancelled_by)
             select t, gen_random_uuid(),
                    ('00000000-0000-0000-0000-00000000000' || (g % 3 + 1))::uuid,
                    (array['Haircut', 'Colour', 'Beard trim'])[g % 3 + 1],
                    (array['ana', 'luis'])[g % 2 + 1],
                    (array['whatsapp', 'whatsapp', 'dashboard', 'api'])[g % 4 + 1],
                    '+3461' || lpad((g % 800)::text, 8, '0'),
                    (array[2500, 7000, 1500])[g % 3 + 1], 'EUR',
                    s - interval '2 days', s, s + interval '45 minutes',
                    case when g % 10 = 0 then 'cancelled' when g % 17 = 0 then 'no_show'
                         when s < now() then 'completed' else 'booked' end,
                    case when g % 10 = 0 then s - interval '1 day' end,
                    case when g % 10 = 0 then 'customer' end
               from unnest($1::uuid[]) t,
                    generate_series(1, $2) g,
                    lateral (select date_trunc('hour', now()) - interval '365 days'
                                    + (g * interval '1 day' * 365 / $2)
                                    + ((g % 10) * interval '1 hour') as s) x",
        )
        .bind(&ids)
        .bind(bookings as i32)
        .execute(superuser)
        .await
        .unwrap();
        sqlx::query(
            "insert into analytics.sessions (tenant_id, phone, started_at, ended, messages_in,
                 messages_out, first_reply_at, reached_time, handed_off)
             select t, '+3461' || lpad((g % 800)::text, 8, '0'),
                    now() - (g * interval '1 day' * 365 / $2), true, 5, 6,
                    now() - (g * interval '1 day' * 365 / $2) + interval '900 milliseconds',
                    g % 3 > 0, g % 20 = 0
               from unnest($1::uuid[]) t, generate_series(1, $2) g",
        )
        .bind(&ids)
        .bind((bookings / 2) as i32)
        .execute(superuser)
        .await
        .unwrap();
        sqlx::query(
            "insert into analytics.messages_daily (tenant_id, day, inbound, outbound)
             select t, current_date - d, 20 + d % 7, 24 + d % 5
               from unnest($1::uuid[]) t, generate_series(0, 364) d
             on conflict do nothing",
        )
        .bind(&ids)
        .execute(superuser)
        .await
        .unwrap();
    }
    sqlx::query("analyze").execute(superuser).await.unwrap();
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let superuser = db.superuser_url_pool().await;
    let mut report: Vec<(String, String)> = Vec::new();
    if args.webhooks_only {
        webhooks(&db, &superuser, &args, &mut report).await;
        print_report(&args, 0, &report);
        return;
    }

    // 1. The backlog: in the log, then on the stream (the relay alone).
    load(&superuser, history(args.events, args.tenants, 0)).await;
    let head = last_position(&superuser).await;
    let events: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&superuser)
        .await
        .unwrap();
    let events = events as u64;
    let quiet = |mut s: projector::Settings| {
        // No reactor: the backlog's replies are not sent, nothing is appended meanwhile.
        s.sender.enabled = false;
        s.projections.enabled = false;
        s
    };
    let relay = spawn_projector(quiet(projector_settings(&db, &nats))).await;
    let started = Instant::now();
    eventually(Duration::from_secs(1800), || async {
        (stream_messages(&nats).await >= events).then_some(())
    })
    .await
    .expect("the relay publishes the backlog");
    report.push((
        format!("relay: {events} events onto the stream, events/s"),
        format!("{:.0}", events as f64 / started.elapsed().as_secs_f64()),
    ));
    relay.shutdown().await;

    // The seven projections drain the full stream.
    let mut settings = quiet(projector_settings(&db, &nats));
    settings.projections.enabled = true;
    settings.relay.enabled = false;
    let started = Instant::now();
    let projector = spawn_projector(settings).await;
    eventually(Duration::from_secs(3600), || async {
        e2e_tests::projections_at(&superuser, head)
            .await
            .then_some(())
    })
    .await
    .expect("the projections catch up");
    let projected = events as f64 / started.elapsed().as_secs_f64();
    projector.shutdown().await;

    // The analytics consumer drains the same stream.
    let started = Instant::now();
    let analytics = spawn_analytics(analytics_settings(&db, &nats)).await;
    eventually(Duration::from_secs(3600), || async {
        (analytics_sequence(&superuser).await >= events).then_some(())
    })
    .await
    .expect("analytics catch up");
    let analysed = events as f64 / started.elapsed().as_secs_f64();
    analytics.shutdown().await;
    report.push((
        "baseline: 7 projections draining the stream, events/s".into(),
        format!("{projected:.0}"),
    ));
    report.push((
        "analytics consumer draining the same stream, events/s".into(),
        format!("{analysed:.0}"),
    ));
    report.push((
        "analytics / projections".into(),
        format!("{:.2}", analysed / projected),
    ));

    // 2. Reads over a year of facts per tenant, at a fixed rate.
    let started = Instant::now();
    year_of_facts(&superuser, args.tenants, args.bookings_per_tenant).await;
    let facts: i64 = sqlx::query_scalar("select count(*) from analytics.bookings")
        .fetch_one(&superuser)
        .await
        .unwrap();
    println!(
        "setup: {facts} bookings of {} tenants in {:.0} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );
    // The consistency wait as shipped (the tests' is longer).
    let mut settings = query_api_settings(&db, &nats);
    settings.consistency.max_wait_ms = 2000;
    let query = Arc::new(spawn_query_api(settings).await);
    let mut tokens = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        tokens.push(
            e2e_tests::member_token(&superuser, tenant(i), domain::access::Role::Owner).await,
        );
    }
    let tokens = Arc::new(tokens);
    let run_at_rate = |paths: &'static [&'static str]| {
        let (query, tokens) = (query.clone(), tokens.clone());
        async move {
            let latencies = Arc::new(tokio::sync::Mutex::new(vec![Vec::new(); paths.len()]));
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / args.query_rate as f64));
            let deadline = Instant::now() + Duration::from_secs(args.seconds);
            let mut tasks = tokio::task::JoinSet::new();
            let mut i = 0usize;
            while Instant::now() < deadline {
                ticker.tick().await;
                i += 1;
                let (query, tokens, latencies) = (query.clone(), tokens.clone(), latencies.clone());
                tasks.spawn(async move {
                    let which = i % paths.len();
                    let token = &tokens[(i * 7919) % tokens.len()];
                    let started = Instant::now();
                    let (status, body) = query.get(paths[which], token, None).await;
                    assert_eq!(status, 200, "{}: {body}", paths[which]);
                    latencies.lock().await[which].push(started.elapsed());
                });
            }
            while tasks.join_next().await.is_some() {}
            let mut all = latencies.lock().await.clone();
            for l in &mut all {
                l.sort();
            }
            all
        }
    };
    // The last 30 days, the year by week, the last 30 days by hour.
    let today = chrono::Utc::now().date_naive();
    let year = format!(
        "/v1/analytics/series?interval=week&from={}&to={today}",
        today - chrono::Duration::days(364)
    );
    let analytics: &'static [&'static str] = Box::leak(Box::new([
        "/v1/analytics/overview",
        Box::leak(year.into_boxed_str()) as &str,
        "/v1/analytics/busiest-hours",
    ]));
    const BASELINE: &[&str] = &["/v1/usage"];
    let measured = run_at_rate(analytics).await;
    let baseline = run_at_rate(BASELINE).await;
    for (path, l) in analytics.iter().zip(&measured) {
        report.push((
            format!("{path} at {} req/s (all three), p50 / p99", args.query_rate),
            format!(
                "{:.1} ms / {:.1} ms",
                ms(percentile(l, 0.5)),
                ms(percentile(l, 0.99))
            ),
        ));
    }
    let mut all: Vec<Duration> = measured.concat();
    all.sort();
    report.push((
        "analytics reads together, p50 / p99".into(),
        format!(
            "{:.1} ms / {:.1} ms",
            ms(percentile(&all, 0.5)),
            ms(percentile(&all, 0.99))
        ),
    ));
    report.push((
        format!(
            "baseline: GET /v1/usage at {} req/s, p50 / p99",
            args.query_rate
        ),
        format!(
            "{:.1} ms / {:.1} ms",
            ms(percentile(&baseline[0], 0.5)),
            ms(percentile(&baseline[0], 0.99))
        ),
    ));
    report.push((
        "analytics p99 / baseline p99".into(),
        format!(
            "{:.2}",
            percentile(&all, 0.99).as_secs_f64() / percentile(&baseline[0], 0.99).as_secs_f64()
        ),
    ));

    webhooks(&db, &superuser, &args, &mut report).await;
    print_report(&args, events, &report);
}

fn print_report(args: &Args, events: u64, report: &[(String, String)]) {
    println!(
        "\nanalytics benchmark: {} tenants, {} events, {} bookings a tenant over a year\n",
        args.tenants, events, args.bookings_per_tenant
    );
    println!("| measurement | value |");
    println!("|---|---:|");
    for (k, v) in report {
        println!("| {k} | {v} |");
    }
}
