//! `just bench-commands`: the command API over HTTP on loopback. Signed WhatsApp webhooks from
//! many tenants' customers (new conversations and booking steps, typed the way customers type),
//! throughput and latency to the durable 200, next to a plain INSERT of an event row measured
//! in the same run (the machines are shared and noisy: compare ratios, not absolutes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use e2e_tests::{FAKE_TOKEN, FakeGraph, spawn_command_api_tuned};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

const SECRET: &str = "bench-app-secret-0123456789";

/// A customer's script: greet, pick by number, give a name, confirm, pay cash.
const SCRIPT: &[&str] = &["hi", "1", "1", "1", "Bench Customer", "1", "1"];

fn notification(number_id: &str, from: &str, wamid: &str, body: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": number_id},
        "contacts": [{"profile": {"name": "Bench"}, "wa_id": from}],
        "messages": [{"from": from, "id": wamid, "timestamp": "1739321024", "type": "text", "text": {"body": body}}]}}]}]}))
    .unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let graph = FakeGraph::start().await;
    let app = Arc::new(
        spawn_command_api_tuned(&graph.base_url, e2e_tests::REDIS_URL, |s| {
            s.limits.onboard_per_ip_per_minute = 1_000_000;
            s.limits.onboard_per_minute = 1_000_000;
        })
        .await,
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .unwrap();

    // Tenants: onboarded, number connected, open every day, one service.
    let started = Instant::now();
    let day = json!([{"open": "00:00", "close": "23:59"}]);
    let settings = json!({"time_zone": "UTC",
        "hours": {"monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day, "saturday": day, "sunday": day},
        "rules": {"min_notice_minutes": 0, "horizon_days": 14, "slot_step_minutes": 15},
        "payment_methods": [{"kind": "cash"}]});
    let numbers: Vec<String> = (0..args.tenants)
        .map(|i| format!("{:015}", 100_000_000_000_000u64 + i as u64))
        .collect();
    let setups = futures::stream::iter(numbers.clone().into_iter().enumerate().map(|(i, number)| {
        let (app, client, settings) = (app.clone(), client.clone(), settings.clone());
        async move {
            let owner = app.onboard(&format!("bench-{i}")).await;
            let auth = format!("Bearer {}", owner.access_token);
            let put = |path: &str, body: Value, if_match: Option<&str>| {
                let mut r = client.put(format!("{}{path}", app.address)).header("authorization", &auth).json(&body);
                if let Some(v) = if_match {
                    r = r.header("if-match", v);
                }
                r.send()
            };
            let connect = json!({"phone_number_id": number, "access_token": FAKE_TOKEN, "app_secret": SECRET, "verify_token": format!("verify-token-{i:08}")});
            assert_eq!(put("/v1/whatsapp", connect, None).await.unwrap().status().as_u16(), 200);
            assert_eq!(put("/v1/bot-config", settings, Some("\"0\"")).await.unwrap().status().as_u16(), 200);
            let service = json!({"name": "Haircut", "price": {"minor": 2500, "currency": "EUR"}, "duration_minutes": 30});
            let added = client.post(format!("{}/v1/services", app.address)).header("authorization", &auth).json(&service).send().await.unwrap();
            assert_eq!(added.status().as_u16(), 201);
        }
    }));
    use futures::StreamExt as _;
    setups.buffer_unordered(16).collect::<Vec<()>>().await;
    eprintln!(
        "set up {} tenants in {:.1}s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );

    // The measured run: each worker walks its own customers through the script.
    let latencies = Arc::new(Mutex::new(Vec::<Duration>::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let run_started = Instant::now();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (app, client, numbers, latencies, errors) = (
                app.clone(),
                client.clone(),
                numbers.clone(),
                latencies.clone(),
                errors.clone(),
            );
            tokio::spawn(async move {
                let mut mine = Vec::new();
                let mut customer = 0usize;
                'outer: while Instant::now() < deadline {
                    customer += 1;
                    let tenant = (w * 7919 + customer * 104_729) % numbers.len();
                    let from = format!("1650{:03}{:05}", w, customer);
                    for (step, text) in SCRIPT.iter().enumerate() {
                        if Instant::now() >= deadline {
                            break 'outer;
                        }
                        let body = notification(
                            &numbers[tenant],
                            &from,
                            &format!("wamid.{w}.{customer}.{step}"),
                            text,
                        );
                        let signature = whatsapp::signature::sign(SECRET.as_bytes(), &body);
                        let sent = Instant::now();
                        let response = client
                            .post(format!("{}/webhooks/whatsapp", app.address))
                            .header("content-type", "application/json")
                            .header("x-hub-signature-256", signature)
                            .body(body)
                            .send()
                            .await;
                        match response {
                            Ok(r) if r.status().is_success() => mine.push(sent.elapsed()),
                            _ => {
                                errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
                latencies.lock().await.extend(mine);
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = run_started.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort();
    let pool = app.db.operator_pool().await;
    let bookings: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'AppointmentRequested'")
            .fetch_one(&pool)
            .await
            .unwrap();

    // The baseline: a plain INSERT of an event-shaped row, same concurrency, same duration.
    let owner = app.db.owner_pool().await;
    sqlx::query("create table bench_baseline (like events including defaults including identity including constraints including indexes)").execute(&owner).await.unwrap();
    let inserts = Arc::new(AtomicU64::new(0));
    let base_deadline = Instant::now() + Duration::from_secs(args.seconds.min(10));
    let base_started = Instant::now();
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (owner, inserts) = (owner.clone(), inserts.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while Instant::now() < base_deadline {
                    n += 1;
                    sqlx::query("insert into bench_baseline (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload, metadata)
                                 values (gen_random_uuid(), 'conversation', $1, 1, gen_random_uuid(), 'MessageReceived', 1, $2, '{}')")
                        .bind(format!("w{w}-{n}"))
                        .bind(json!({"wamid": "wamid.x", "from": "+16505551234", "content": {"kind": "text", "body": "hi"}}))
                        .execute(&owner)
                        .await
                        .unwrap();
                    inserts.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let baseline = inserts.load(Ordering::Relaxed) as f64 / base_started.elapsed().as_secs_f64();
    let rate = latencies.len() as f64 / elapsed;

    println!(
        "command API benchmark: {} tenants, {} concurrent customers, {}s\n",
        args.tenants, args.concurrency, args.seconds
    );
    println!("| measurement | value |");
    println!("|---|---:|");
    println!("| signed webhook messages/s (durable 200) | {rate:.0} |");
    println!(
        "| webhook p50 | {:.1} ms |",
        percentile(&latencies, 0.50).as_secs_f64() * 1000.0
    );
    println!(
        "| webhook p99 | {:.1} ms |",
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0
    );
    println!(
        "| booking conversations completed/s | {:.1} |",
        bookings as f64 / elapsed
    );
    println!("| failed requests | {} |", errors.load(Ordering::Relaxed));
    println!("| plain INSERT rows/s (baseline, same concurrency) | {baseline:.0} |");
    println!(
        "| webhook messages per baseline insert | {:.3} |",
        rate / baseline
    );
}
