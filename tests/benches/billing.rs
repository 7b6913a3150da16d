//! `just bench-billing`: the billing reactor reporting a backlog of WhatsApp messages to Stripe
//! as meter events (one per message, identified by its event id), beside the fake Stripe's own
//! ceiling for meter events measured in the same run with the same client; and the Stripe
//! webhook's latency to the durable 200 at a steady 200 events/s. Everything runs in this
//! process on loopback (the machines are shared and noisy: compare ratios, not absolutes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use e2e_tests::{
    REDIS_URL, TEST_STRIPE_WEBHOOK_SECRET, projector_settings, spawn_command_api_tuned,
    spawn_projector, stripe_settings,
};
use fake_stripe::{Fake, WebhookTarget};
use futures::StreamExt as _;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// Messages in the backlog.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    #[arg(long, default_value_t = 20)]
    tenants: usize,
    /// Webhook events per second, and for how long.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    #[arg(long, default_value_t = 10)]
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

fn cpu_seconds() -> f64 {
    // utime + stime of this process, in clock ticks (100 per second on Linux).
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Every customer is over the message limit: messages are recorded, the bot answers none
/// of them in the run (each conversation's first hears once that it will).
struct Flooded;
impl app::conversation::AnswerPolicy for Flooded {
    async fn may_answer(
        &self,
        _: uuid::Uuid,
        _: &domain::conversation::InboundMessage,
    ) -> app::conversation::Answer {
        app::conversation::Answer::Later {
            at: chrono::Utc::now() + chrono::Duration::days(1),
        }
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let fake = Fake::new();
    let stripe_url = fake.clone().spawn().await;
    let app = Arc::new(
        spawn_command_api_tuned("http://127.0.0.1:1", REDIS_URL, |s| {
            s.stripe = stripe_settings(&stripe_url);
            s.limits.onboard_per_ip_per_minute = 1_000_000;
            s.limits.onboard_per_minute = 1_000_000;
        })
        .await,
    );
    fake.configure_webhooks(WebhookTarget {
        url: format!("{}/webhooks/stripe", app.address),
        secret: TEST_STRIPE_WEBHOOK_SECRET.into(),
        repeat: 0,
        reverse: false,
    });
    let client = reqwest::Client::new();

    // Subscribed tenants.
    let mut tenants = Vec::new();
    for i in 0..args.tenants {
        let owner = app.onboard(&format!("bench-billing-{i}")).await;
        let checkout: Value = client
            .post(format!("{}/v1/billing/checkout", app.address))
            .bearer_auth(&owner.access_token)
            .json(&json!({"plan": "pro"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        fake.pay(checkout["session_id"].as_str().unwrap(), "4242424242424242")
            .unwrap();
        tenants.push(owner.tenant_id.parse::<uuid::Uuid>().unwrap());
    }
    let uc = e2e_tests::use_cases(&app.db);
    let deadline = Instant::now() + Duration::from_secs(30);
    for tenant in &tenants {
        loop {
            let state = app::billing::state(&uc.store, *tenant).await.unwrap();
            if state.subscription.is_some() {
                break;
            }
            assert!(Instant::now() < deadline, "the subscriptions start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // The backlog: messages from 100 customers per tenant, recorded before the reactor runs.
    let started = Instant::now();
    let per_stream = args.messages.div_ceil(args.tenants * 100);
    let jobs: Vec<(uuid::Uuid, usize)> = tenants
        .iter()
        .flat_map(|t| (0..100).map(move |c| (*t, c)))
        .collect();
    let uc = Arc::new(uc);
    let total = futures::stream::iter(jobs.into_iter().map(|(tenant, customer)| {
        let uc = uc.clone();
        async move {
            let phone =
                domain::values::PhoneNumber::parse(&format!("+346{:08}", customer)).unwrap();
            for n in 0..per_stream {
                let message = domain::conversation::InboundMessage {
                    wamid: format!("wamid.{tenant}.{customer}.{n}"),
                    from: phone.clone(),
                    profile_name: None,
                    content: domain::bot::Inbound::Text { body: "hi".into() },
                    received_at: chrono::Utc::now(),
                };
                app::conversation::take_turn(&uc, tenant, message, &Flooded)
                    .await
                    .unwrap();
            }
            per_stream
        }
    }))
    .buffer_unordered(32)
    .fold(0, |a, n| async move { a + n })
    .await;
    println!(
        "backlog: {total} messages of {} tenants recorded in {:.1} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );

    // 1. The fake's ceiling: the same client, straight at Stripe's meter endpoint.
    let gateway =
        billing::StripeGateway::new("sk_test_bench", Some(&stripe_url), Duration::from_secs(10))
            .unwrap();
    let ceiling_n = (total / 5).max(1000);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    futures::stream::iter((0..ceiling_n).map(|_| {
        let gateway = gateway.clone();
        async move {
            gateway
                .report_messages("cus_ceiling", 1, uuid::Uuid::new_v4(), chrono::Utc::now())
                .await
                .unwrap();
        }
    }))
    .buffer_unordered(32)
    .collect::<Vec<_>>()
    .await;
    let ceiling_secs = t0.elapsed().as_secs_f64();
    let ceiling_cpu = cpu_seconds() - cpu0;
    let ceiling = ceiling_n as f64 / ceiling_secs;
    let baseline = fake.meter_events().len();

    // 2. The reactor over the backlog: relay and billing reactor only.
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.stripe = e2e_tests::projector_stripe_settings(&stripe_url);
    settings.stripe.concurrency = 32;
    settings.projections.enabled = false;
    settings.sender.enabled = false;
    settings.billing_clock.enabled = false;
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let projector = spawn_projector(settings).await;
    loop {
        let reported = fake.meter_events().len() - baseline;
        if reported >= total {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "the backlog is reported ({reported} of {total})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reactor_secs = t0.elapsed().as_secs_f64();
    let reactor_cpu = cpu_seconds() - cpu0;
    let reactor = total as f64 / reactor_secs;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let reported = fake.meter_events().len() - baseline;
    projector.shutdown().await;

    // 3. Webhooks at a steady rate: invoice.paid events, each a new invoice, the tenants in
    // turn (one business's Stripe events are a handful a month; many businesses' add up).
    let templates: Vec<Value> = fake
        .events()
        .into_iter()
        .filter(|e| e["type"] == "invoice.paid")
        .collect();
    assert!(!templates.is_empty(), "an invoice.paid event");
    let count = (args.rate * args.seconds) as usize;
    let interval = Duration::from_secs_f64(1.0 / args.rate as f64);
    let mut tasks = tokio::task::JoinSet::new();
    let t0 = Instant::now();
    for n in 0..count {
        let mut event = templates[n % templates.len()].clone();
        event["id"] = json!(format!("evt_bench_{n}"));
        event["data"]["object"]["id"] = json!(format!("in_bench_{n}"));
        let body = serde_json::to_string(&event).unwrap();
        let signature = fake_stripe::sign(
            TEST_STRIPE_WEBHOOK_SECRET,
            chrono::Utc::now().timestamp(),
            &body,
        );
        let (client, url) = (client.clone(), format!("{}/webhooks/stripe", app.address));
        let due = t0 + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        tasks.spawn(async move {
            let sent = Instant::now();
            let status = client
                .post(url)
                .header("content-type", "application/json")
                .header("stripe-signature", signature)
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            (status, sent.elapsed())
        });
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed: std::collections::BTreeMap<u16, usize> = Default::default();
    while let Some(done) = tasks.join_next().await {
        let (status, latency) = done.unwrap();
        if status != 200 {
            *failed.entry(status).or_default() += 1;
        }
        latencies.push(latency);
    }
    let achieved = count as f64 / t0.elapsed().as_secs_f64();
    latencies.sort();

    println!(
        "\nbilling benchmark ({total} messages, {} tenants)",
        args.tenants
    );
    println!(
        "  fake Stripe ceiling (gateway straight at it, 32 in flight): {ceiling:>8.0} meter events/s, {:.3} ms CPU each",
        ceiling_cpu * 1000.0 / ceiling_n as f64
    );
    println!(
        "  billing reactor over the backlog:                            {reactor:>8.0} meter events/s, {:.3} ms CPU each ({reported} reported, {:.2}x the ceiling)",
        reactor_cpu * 1000.0 / total as f64,
        reactor / ceiling
    );
    println!(
        "  webhooks at {} events/s over {} tenants ({achieved:.0} achieved; not 200: {failed:?}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        args.rate,
        templates.len(),
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
}
