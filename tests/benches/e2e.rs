//! `just bench-e2e`: the whole platform as processes (release builds), the fake Cloud API
//! playing Meta. Many customers across many businesses chat at once; for every message, the
//! time from the signed inbound webhook leaving the fake to the bot's first reply arriving back
//! at the fake, and the booking conversations completed per second. Beside it, in the same
//! run, the fake's own round trip (a webhook the platform answers without work) as the floor.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use e2e_tests::stack::{Business, Platform};
use serde_json::{Value, json};
use tokio::sync::Mutex;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    /// Conversations in flight at once.
    #[arg(long, default_value_t = 200)]
    concurrency: usize,
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    #[arg(long, hide = true)]
    bench: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What the fake has received for `to`.
async fn received(client: &reqwest::Client, fake: &str, to: &str) -> Vec<Value> {
    client
        .get(format!("{fake}/_fake/messages"))
        .query(&[("to", to)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// How a conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Booked,
    /// Another customer took the slot first: offered other times (the right answer).
    OfferedOtherTimes,
    /// A step's replies did not settle within 10 s, or arrived split so that the next tap
    /// answered the wrong message and the flow went elsewhere.
    Stalled,
}

/// One customer's booking conversation; returns the webhook-to-first-reply latency of each
/// message and how it ended.
async fn conversation(
    client: reqwest::Client,
    fake: String,
    business: Arc<Business>,
    customer: String,
) -> (Vec<Duration>, Ending) {
    let mut latencies = Vec::new();
    let mut seen = 0usize;
    let mut last: Vec<Value> = Vec::new();
    let steps: [Option<&str>; 7] = [
        Some("hi"),
        None,
        None,
        None,
        Some("Bench Customer"),
        None,
        None,
    ];
    for step in steps {
        let mut message =
            json!({"phone_number_id": business.number, "from": customer, "name": "Bench"});
        match step {
            Some(text) => message["text"] = json!(text),
            None => {
                let Some(interactive) = last
                    .iter()
                    .rev()
                    .find(|m| m["body"]["type"] == "interactive")
                    .map(|m| m["body"]["interactive"].clone())
                else {
                    return (latencies, Ending::Stalled);
                };
                if interactive["type"] == "button" {
                    let b = &interactive["action"]["buttons"][0]["reply"];
                    message["button_reply"] = json!({"id": b["id"], "title": b["title"]});
                } else {
                    let r = &interactive["action"]["sections"][0]["rows"][0];
                    message["list_reply"] = json!({"id": r["id"], "title": r["title"]});
                }
            }
        }
        let sent_at = Utc::now();
        let answer: Value = client
            .post(format!("{fake}/_fake/inbound"))
            .json(&message)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if answer["webhook_status"] != 200 {
            return (latencies, Ending::Stalled);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut settled_since = None;
        loop {
            let all = received(&client, &fake, &customer).await;
            if all.len() > seen {
                if settled_since.is_none() {
                    let first: DateTime<Utc> =
                        all[seen]["received_at"].as_str().unwrap().parse().unwrap();
                    latencies.push((first - sent_at).to_std().unwrap_or_default());
                }
                if settled_since.is_some_and(|(n, t): (usize, Instant)| {
                    n == all.len() && t.elapsed() > Duration::from_millis(60)
                }) {
                    last = all[seen..].to_vec();
                    seen = all.len();
                    break;
                }
                if settled_since.is_none_or(|(n, _)| n != all.len()) {
                    settled_since = Some((all.len(), Instant::now()));
                }
            }
            if Instant::now() > deadline {
                return (latencies, Ending::Stalled);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let said = |needle: &str| {
        last.iter().any(|m| {
            m["body"]["text"]["body"]
                .as_str()
                .or(m["body"]["interactive"]["body"]["text"].as_str())
                .is_some_and(|t| t.contains(needle))
        })
    };
    let ending = if said("Booked!") {
        Ending::Booked
    } else if said("was just taken") {
        Ending::OfferedOtherTimes
    } else {
        Ending::Stalled
    };
    (latencies, ending)
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let nats = testkit::TestNats::new().await;
    let platform = Platform::start(&nats.url, nats.ns.prefix(), "memory").await;
    let p = Arc::new(platform);
    let started = Instant::now();
    let businesses: Vec<Arc<Business>> = {
        use futures::StreamExt as _;
        futures::stream::iter(0..args.tenants)
            .map(|i| {
                let p = p.clone();
                async move {
                    Arc::new(
                        p.business(
                            &format!("bench-{i}"),
                            &format!("{}", 100_000_000_300_000u64 + i as u64),
                        )
                        .await,
                    )
                }
            })
            .buffer_unordered(16)
            .collect()
            .await
    };
    eprintln!(
        "{} businesses ready in {:.0} s",
        businesses.len(),
        started.elapsed().as_secs_f64()
    );

    let latencies = Arc::new(Mutex::new(Vec::new()));
    let booked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let offered = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let run_started = Instant::now();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let workers: Vec<_> = (0..args.concurrency)
        .map(|w| {
            let (client, fake, businesses) = (client.clone(), p.fake.clone(), businesses.clone());
            let (latencies, booked, offered, failed) = (
                latencies.clone(),
                booked.clone(),
                offered.clone(),
                failed.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    n += 1;
                    let business = businesses[(w * 7919 + n * 104729) % businesses.len()].clone();
                    let customer = format!("3465{w:04}{n:04}");
                    let (l, ok) =
                        conversation(client.clone(), fake.clone(), business, customer).await;
                    latencies.lock().await.extend(l);
                    let counter = match ok {
                        Ending::Booked => &booked,
                        Ending::OfferedOtherTimes => &offered,
                        Ending::Stalled => &failed,
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let elapsed = run_started.elapsed().as_secs_f64();
    let mut l = latencies.lock().await.clone();
    l.sort();

    // The floor: the same path with no platform work (a status for an unknown message id,
    // signed and answered 200 at once), fake to platform and back, sequentially.
    let secret = e2e_tests::stack::APP_SECRET;
    let mut floor = Vec::new();
    for i in 0..500 {
        let payload = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1", "phone_number_id": "199999999999999"},
            "statuses": [{"id": format!("wamid.floor.{i}"), "status": "sent", "timestamp": "1", "recipient_id": "1"}]}}]}]}))
        .unwrap();
        let t = Instant::now();
        let status = client
            .post(format!("{}/webhooks/whatsapp", p.command))
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                whatsapp::signature::sign(secret.as_bytes(), &payload),
            )
            .body(payload)
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success());
        floor.push(t.elapsed());
    }
    floor.sort();

    println!(
        "\nend-to-end benchmark: {} businesses, {} conversations at once, {} s\n",
        args.tenants, args.concurrency, args.seconds
    );
    println!("| measurement | value |");
    println!("|---|---:|");
    println!("| messages measured | {} |", l.len());
    println!(
        "| webhook to first reply at the fake, p50 | {:.1} ms |",
        ms(percentile(&l, 0.5))
    );
    println!(
        "| webhook to first reply at the fake, p99 | {:.1} ms |",
        ms(percentile(&l, 0.99))
    );
    println!(
        "| booking conversations completed/s | {:.1} |",
        booked.load(std::sync::atomic::Ordering::Relaxed) as f64 / elapsed
    );
    println!(
        "| conversations ended with an offer of other times (slot taken meanwhile) | {} |",
        offered.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "| conversations not finished (a step's replies over 10 s, or split so the next tap missed) | {} |",
        failed.load(std::sync::atomic::Ordering::Relaxed)
    );
    println!(
        "| floor: a webhook the platform answers without work, p50 / p99 | {:.1} ms / {:.1} ms |",
        ms(percentile(&floor, 0.5)),
        ms(percentile(&floor, 0.99))
    );
    println!(
        "| p99 / floor p99 | {:.1} |",
        percentile(&l, 0.99).as_secs_f64() / percentile(&floor, 0.99).as_secs_f64().max(1e-9)
    );
}
