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
    /// Every service exports its spans over OTLP to a local collector (the cost of traces
    /// on, against a run without it).
    #[arg(long)]
    traces: bool,
    #[arg(long, hide = true)]
    bench: bool,
}

/// How long the CPU meter keeps counting after the last conversation ended.
const TAIL: Duration = Duration::from_secs(5);

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
    /// A step's replies did not settle within 10 s, or the flow went nowhere in 15 messages.
    Stalled,
}

/// One customer's booking conversation, taking the first choice offered each time (the first
/// service, day and time, then "Confirm"; a name when asked).
struct Conversation {
    /// The webhook-to-first-reply latency of each message.
    latencies: Vec<Duration>,
    ending: Ending,
    /// Customer messages sent.
    messages: usize,
    /// Times the customer heard a time was just taken after confirming (never, with holds).
    taken_after_confirming: usize,
}

async fn conversation(
    client: reqwest::Client,
    fake: String,
    business: Arc<Business>,
    customer: String,
) -> Conversation {
    let mut done = Conversation {
        latencies: Vec::new(),
        ending: Ending::Stalled,
        messages: 0,
        taken_after_confirming: 0,
    };
    let mut seen = 0usize;
    let mut last: Vec<Value> = Vec::new();
    let text_of = |m: &Value| {
        m["body"]["text"]["body"]
            .as_str()
            .or(m["body"]["interactive"]["body"]["text"].as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let mut confirming = false;
    for step in 0..15 {
        let mut message =
            json!({"phone_number_id": business.number, "from": customer, "name": "Bench"});
        let said: String = last.iter().map(text_of).collect::<Vec<_>>().join(" ");
        if confirming && said.contains("was just taken") {
            done.taken_after_confirming += 1;
        }
        if said.contains("Booked!") {
            done.ending = Ending::Booked;
            return done;
        }
        confirming = false;
        let interactive = last
            .iter()
            .rev()
            .find(|m| m["body"]["type"] == "interactive")
            .map(|m| m["body"]["interactive"].clone());
        match interactive {
            _ if step == 0 => message["text"] = json!("hi"),
            Some(interactive) if interactive["type"] == "button" => {
                let b = &interactive["action"]["buttons"][0]["reply"];
                confirming = b["id"] == "confirm";
                message["button_reply"] = json!({"id": b["id"], "title": b["title"]});
            }
            Some(interactive) => {
                let r = &interactive["action"]["sections"][0]["rows"][0];
                message["list_reply"] = json!({"id": r["id"], "title": r["title"]});
            }
            None if said.contains("What name") => message["text"] = json!("Bench Customer"),
            // Replies still arriving (the settle window is short under load): look again.
            None if step > 0 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let all = received(&client, &fake, &customer).await;
                if all.len() > seen {
                    last = all[seen..].to_vec();
                    seen = all.len();
                    continue;
                }
                return done;
            }
            None => return done,
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
        done.messages += 1;
        if answer["webhook_status"] != 200 {
            return done;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut settled_since = None;
        loop {
            let all = received(&client, &fake, &customer).await;
            if all.len() > seen {
                if settled_since.is_none() {
                    let first: DateTime<Utc> =
                        all[seen]["received_at"].as_str().unwrap().parse().unwrap();
                    done.latencies
                        .push((first - sent_at).to_std().unwrap_or_default());
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
                return done;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    done
}

/// The herd: `size` customers of one business start at once, each taking the first time
/// offered. How long until every conversation ended, how many booked, with how many messages.
struct Herd {
    seconds: f64,
    booked: usize,
    messages_per_booking: f64,
    taken_after_confirming: usize,
}

async fn herd(
    p: &Platform,
    client: &reqwest::Client,
    slug: &str,
    number: &str,
    hold_minutes: u32,
    size: usize,
) -> Herd {
    let mut settings = e2e_tests::tenant::settings();
    settings["rules"]["hold_minutes"] = json!(hold_minutes);
    let business = Arc::new(p.business_with(slug, number, settings).await);
    let started = Instant::now();
    let done = futures::future::join_all((0..size).map(|i| {
        conversation(
            client.clone(),
            p.fake.clone(),
            business.clone(),
            format!("3466{}{i:04}", u8::from(hold_minutes > 0)),
        )
    }))
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let booked: Vec<&Conversation> = done.iter().filter(|c| c.ending == Ending::Booked).collect();
    Herd {
        seconds,
        booked: booked.len(),
        messages_per_booking: booked.iter().map(|c| c.messages).sum::<usize>() as f64
            / booked.len().max(1) as f64,
        taken_after_confirming: done.iter().map(|c| c.taken_after_confirming).sum(),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let nats = testkit::TestNats::new().await;
    let collector = match args.traces {
        true => Some(e2e_tests::otlp::Collector::spawn().await),
        false => None,
    };
    let routes = e2e_tests::stack::Routes {
        traces: collector.as_ref().map(|c| c.endpoint.clone()),
        ..Default::default()
    };
    let platform = Platform::start_with(&nats.url, nats.ns.prefix(), "memory", routes).await;
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
    let messages = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let pids = p.pids();
    // The sign-ups' peak (password hashing), then the peak of the conversations alone.
    let mut signup_peaks: Vec<(&str, f64)> = pids
        .iter()
        .filter_map(|(name, pid)| Some((*name, e2e_tests::cpu::peak_resident_mib(*pid)?)))
        .collect();
    signup_peaks.sort_by(|a, b| a.0.cmp(b.0));
    let peaks_reset = pids
        .iter()
        .all(|(_, pid)| e2e_tests::cpu::reset_peak_resident(*pid));
    let superuser = p.db.superuser_url_pool().await;
    let logged = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events")
            .fetch_one(&superuser)
            .await
            .unwrap()
    };
    let events_before = logged().await;
    let statements = e2e_tests::statements::StatementProfile::start(&superuser).await;
    let cpu_before = e2e_tests::cpu::Snapshot::take(&pids);
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
            let (latencies, booked, messages, failed, sent) = (
                latencies.clone(),
                booked.clone(),
                messages.clone(),
                failed.clone(),
                sent.clone(),
            );
            tokio::spawn(async move {
                let mut n = 0usize;
                while Instant::now() < deadline {
                    n += 1;
                    let business = businesses[(w * 7919 + n * 104729) % businesses.len()].clone();
                    let customer = format!("3465{w:04}{n:04}");
                    let done = conversation(client.clone(), fake.clone(), business, customer).await;
                    latencies.lock().await.extend(done.latencies);
                    sent.fetch_add(done.messages as u64, std::sync::atomic::Ordering::Relaxed);
                    let counter = match done.ending {
                        Ending::Booked => {
                            messages.fetch_add(
                                done.messages as u64,
                                std::sync::atomic::Ordering::Relaxed,
                            );
                            &booked
                        }
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Conversations cut at the deadline still have replies and status callbacks in flight:
    // let them finish, so their CPU is counted with their messages.
    tokio::time::sleep(TAIL).await;
    let cpu_spent = cpu_before.until(&e2e_tests::cpu::Snapshot::take(&pids));
    let statement_costs = match &statements {
        Some(profile) => Some(profile.finish(&superuser, 25).await.unwrap()),
        None => None,
    };
    let events = logged().await - events_before;
    // Now, and the most each held during the load (since it started where the reset failed).
    let mut resident: Vec<(&str, f64, f64)> = pids
        .iter()
        .filter_map(|(name, pid)| {
            let now = e2e_tests::cpu::resident_mib(*pid)?;
            Some((*name, now, e2e_tests::cpu::peak_resident_mib(*pid)?))
        })
        .collect();
    resident.sort_by(|a, b| a.0.cmp(b.0));
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    let mut l = latencies.lock().await.clone();
    l.sort();

    // The herd, with and without holds, in the same run: 40 customers of one business all
    // taking the first time offered.
    let with_holds = herd(&p, &client, "herd-holds", "100000000399001", 10, 40).await;
    let without_holds = herd(&p, &client, "herd-plain", "100000000399002", 0, 40).await;

    // The floor: the same path with next to no platform work (a status for a message id
    // nobody sent, to a business's number, signed and answered 200 once verified), fake to
    // platform and back, sequentially.
    let secret = e2e_tests::stack::APP_SECRET;
    let mut floor = Vec::new();
    for i in 0..500 {
        let payload = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "1", "phone_number_id": "100000000300000"},
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
        "\nend-to-end benchmark: {} businesses, {} conversations at once, {} s, traces {}\n",
        args.tenants,
        args.concurrency,
        args.seconds,
        match &collector {
            Some(c) => format!("exported ({} spans received)", c.spans().len()),
            None => "off".to_owned(),
        }
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
    let booked_n = booked.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "| customer messages per booking | {:.2} |",
        messages.load(std::sync::atomic::Ordering::Relaxed) as f64 / booked_n.max(1) as f64
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
    println!(
        "\nCPU during the load ({sent} inbound customer messages in {elapsed:.0} s, {:.1} messages/s; \
         {cores} cores give at most {:.0} CPU s)\n",
        sent as f64 / elapsed,
        cores as f64 * (elapsed + TAIL.as_secs_f64())
    );
    println!(
        "Events appended: {events}, {:.1} per inbound message. Resident memory after the load \
         (and at its peak {}): {}. Peak through the sign-ups: {}.\n",
        events as f64 / sent.max(1) as f64,
        match peaks_reset {
            true => "during the load",
            false => "since the service started, the sign-ups included",
        },
        resident
            .iter()
            .map(|(name, mib, peak)| format!("{name} {mib:.0} MiB ({peak:.0} MiB)"))
            .collect::<Vec<_>>()
            .join(", "),
        signup_peaks
            .iter()
            .map(|(name, peak)| format!("{name} {peak:.0} MiB"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    e2e_tests::cpu::print_table(
        &cpu_spent,
        sent,
        "inbound message",
        &[
            "command-api",
            "query-api",
            "projector",
            "postgres",
            "nats-server",
            "redis-server",
        ],
    );
    if let Some((top, totals)) = &statement_costs {
        e2e_tests::statements::print_table(top, *totals, sent, "inbound message");
    }
    println!("\nherd: 40 customers of one business at once, each taking the first time offered\n");
    println!("| | with holds (10 min) | without holds |");
    println!("|---|---:|---:|");
    println!(
        "| booked | {} / 40 | {} / 40 |",
        with_holds.booked, without_holds.booked
    );
    println!(
        "| conversations/s (40 / time until all ended) | {:.1} | {:.1} |",
        40.0 / with_holds.seconds,
        40.0 / without_holds.seconds
    );
    println!(
        "| customer messages per booking | {:.2} | {:.2} |",
        with_holds.messages_per_booking, without_holds.messages_per_booking
    );
    println!(
        "| told \"just taken\" after confirming | {} | {} |",
        with_holds.taken_after_confirming, without_holds.taken_after_confirming
    );
}
