//! `just bench-dashboard`: each dashboard page under concurrent members (50 by default), as
//! latency (p50, p99) and CPU time per page, next to the query API's own answer to the read
//! those pages lean on most (the day's bookings) at the same concurrency, in the same run.
//! Every service runs in this process, so CPU time per request is the whole platform's work
//! for one page (the dashboard, the APIs it calls, their database work on the client side).
//!
//! Each member is a user of their own (the APIs limit each credential to 600 requests a
//! minute) with a session as the dashboard keeps it, and asks for a page once a second, as a
//! person clicking through would: 50 members are 50 pages a second. A page is one request (its
//! htmx polls are other requests).

use std::time::{Duration, Instant};

use clap::Parser;
use e2e_tests::backlog::{ms, percentile};
use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    analytics_settings, projector_settings, query_api_settings, spawn_analytics, spawn_command_api,
    spawn_dashboard, spawn_projector, spawn_query_api,
};

#[derive(Parser)]
struct Args {
    /// Members at once.
    #[arg(long, default_value_t = 50)]
    users: usize,
    /// Seconds per page.
    #[arg(long, default_value_t = 8)]
    seconds: u64,
    /// Pages each member asks for a second.
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    #[arg(long, hide = true)]
    bench: bool,
}

/// This process's CPU time so far (user and system), from `/proc/self/stat`.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 14th and
    // 15th of the line, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

struct Figures {
    p50: Duration,
    p99: Duration,
    per_second: f64,
    cpu_ms: f64,
    failed: usize,
}

/// `users` loops requesting `url`, each with its own session cookie (or bearer token), each
/// `rate` times a second, for `seconds`.
async fn load(
    client: &reqwest::Client,
    url: &str,
    auth: &[(String, String)],
    (users, rate, seconds): (usize, f64, u64),
) -> Figures {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (started, cpu_before) = (Instant::now(), cpu());
    let mut tasks = tokio::task::JoinSet::new();
    for u in 0..users {
        let (client, url) = (client.clone(), url.to_owned());
        let (name, value) = auth[u % auth.len()].clone();
        tasks.spawn(async move {
            let (mut latencies, mut failed) = (Vec::new(), 0usize);
            // Members start spread over the first interval, not all at once.
            let every = Duration::from_secs_f64(1.0 / rate);
            tokio::time::sleep(every.mul_f64(u as f64 / users as f64)).await;
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                ticker.tick().await;
                let t = Instant::now();
                let ok = match client.get(&url).header(&name, &value).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    failed += 1;
                }
            }
            (latencies, failed)
        });
    }
    let (mut all, mut failed) = (Vec::new(), 0);
    while let Some(done) = tasks.join_next().await {
        let (latencies, f) = done.unwrap();
        all.extend(latencies);
        failed += f;
    }
    let elapsed = started.elapsed();
    let cpu_used = cpu().saturating_sub(cpu_before);
    all.sort();
    let n = all.len().max(1);
    Figures {
        p50: percentile(&all, 0.5),
        p99: percentile(&all, 0.99),
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        cpu_ms: ms(cpu_used) / n as f64,
        failed,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("bench-salon").await,
        app: &app,
    };
    let service = t.configured().await;
    // A day of appointments, every 15 minutes from 08:00 (some times are taken by the
    // service's buffer: those are refused and skipped).
    let mut booked = 0;
    for i in 0..40u32 {
        let start = slot(8 + i / 4).replace(":00:00Z", &format!(":{:02}:00Z", (i % 4) * 15));
        let phone = format!("+3460000{:04}", i);
        let (status, _) = t.book(&service, &start, &phone, None).await;
        if status == 201 {
            booked += 1;
        }
    }
    let day = &slot(10)[..10];

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(args.users)
        .build()
        .unwrap();
    // One member each, with a session as the dashboard keeps it.
    let tenant_id: uuid::Uuid = t.owner.tenant_id.parse().unwrap();
    let sessions = dashboard::session::Sessions::new(
        redis::Client::open(e2e_tests::REDIS_URL).unwrap(),
        &dashboard.key_prefix,
        false,
        Duration::from_secs(3600),
    );
    let pool = app.db.superuser_url_pool().await;
    let (mut cookies, mut bearers) = (Vec::new(), Vec::new());
    for _ in 0..args.users {
        let token = e2e_tests::member_token(&pool, tenant_id, domain::access::Role::Owner).await;
        let id = dashboard::session::random_token();
        sessions
            .put(
                &id,
                &dashboard::session::Session {
                    access_token: token.clone(),
                    refresh_token: "unused".into(),
                    csrf: dashboard::session::random_token(),
                },
            )
            .await
            .unwrap();
        cookies.push(("cookie".to_owned(), format!("session={id}")));
        bearers.push(("authorization".to_owned(), format!("Bearer {token}")));
    }
    // Wait for the bookings to be on the read side, so every page reads them.
    let token = t.owner.access_token.clone();
    e2e_tests::eventually(Duration::from_secs(30), || async {
        let (_, page) = query
            .get(&format!("/v1/bookings?from={day}&limit=200"), &token, None)
            .await;
        (page["items"].as_array().map_or(0, Vec::len) >= booked).then_some(())
    })
    .await
    .expect("the bookings are projected");

    println!(
        "dashboard pages, {} members at once, each {} page/s, {} s a page ({booked} bookings on the day)",
        args.users, args.rate, args.seconds
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9} {:>11} {:>7}",
        "page", "p50 ms", "p99 ms", "pages/s", "CPU ms/page", "failed"
    );
    let shape = (args.users, args.rate, args.seconds);
    let baseline = load(
        &client,
        &format!(
            "{}/v1/bookings?from={day}&to={day}T23:59:59Z&limit=100",
            query.address
        ),
        &bearers,
        shape,
    )
    .await;
    let row = |what: &str, f: &Figures| {
        println!(
            "{:<34} {:>9.1} {:>9.1} {:>9.0} {:>11.2} {:>7}",
            what,
            ms(f.p50),
            ms(f.p99),
            f.per_second,
            f.cpu_ms,
            f.failed
        );
    };
    row("query API: the day's bookings", &baseline);
    for page in [
        "/".to_owned(),
        format!("/calendar?date={day}"),
        "/calendar?view=week".to_owned(),
        "/bookings".to_owned(),
        "/inbox".to_owned(),
        "/analytics".to_owned(),
        "/setup".to_owned(),
        "/billing".to_owned(),
        "/team".to_owned(),
        "/audit".to_owned(),
    ] {
        let f = load(
            &client,
            &format!("{}{page}", dashboard.address),
            &cookies,
            shape,
        )
        .await;
        row(&format!("dashboard {page}"), &f);
        println!(
            "{:<34} {:>9.1}x {:>8.1}x {:>19.1}x",
            "  against the query API's read",
            ms(f.p50) / ms(baseline.p50).max(0.001),
            ms(f.p99) / ms(baseline.p99).max(0.001),
            f.cpu_ms / baseline.cpu_ms.max(0.001)
        );
    }
}
