//! Billing through the APIs: the plans on sale, a new business's trial, the month's bookings
//! limit (the 100th taken, the 101st a 402 with the upgrade link), an upgrade lifting it at
//! once, a downgrade refused while over the smaller plan's limits, and seats.

use app::CommandContext;
use chrono::{DateTime, Utc};
use domain::billing::{InvoiceFacts, StripeStatus, SubscriptionSnapshot};
use domain::plan::{Cycle, Plan};
use domain::values::Money;
use e2e_tests::tenant::Tenant;
use e2e_tests::{
    TEST_UPGRADE_URL, billing_clock, projector_settings, query_api_settings, spawn_command_api,
    spawn_projector, spawn_query_api, use_cases,
};
use serde_json::{Value, json};
use uuid::Uuid;

#[tokio::test]
async fn the_plans_are_public_and_a_new_business_is_on_a_starter_trial() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;

    let plans: Value = query
        .client
        .get(format!("{}/v1/plans", query.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["plan"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["starter", "growth", "pro"]);
    assert_eq!(plans["plans"][0]["monthly"]["minor"], 2900);
    assert_eq!(plans["plans"][0]["yearly"]["display"], "290.00 EUR");
    assert_eq!(plans["plans"][0]["limits"]["bookings"], 100);
    assert_eq!(plans["plans"][2]["limits"]["bookings"], Value::Null);
    assert_eq!(plans["trial_days"], 14);

    let owner = app.onboard("trial-salon").await;
    let token = owner.body["consistency_token"].as_str().unwrap();
    let (status, billing) = query
        .get("/v1/billing", &owner.access_token, Some(token))
        .await;
    assert_eq!(status, 200, "{billing}");
    assert_eq!(billing["status"], "trialing");
    assert_eq!(billing["plan"], "starter");
    assert_eq!(billing["cycle"], Value::Null);
    let trial_ends: chrono::DateTime<chrono::Utc> =
        billing["trial_ends_at"].as_str().unwrap().parse().unwrap();
    let days = (trial_ends - chrono::Utc::now()).num_hours();
    assert!((13 * 24..=14 * 24).contains(&days), "{billing}");
    assert_eq!(billing["usage"]["bookings"]["used"], 0);
    assert_eq!(billing["usage"]["bookings"]["limit"], 100);
    assert_eq!(billing["usage"]["staff_seats"]["used"], 1);
    assert_eq!(billing["next_invoice"]["amount"]["minor"], 2900);
    assert_eq!(billing["next_invoice"]["at"], billing["trial_ends_at"]);

    let (status, invoices) = query
        .get("/v1/billing/invoices", &owner.access_token, None)
        .await;
    assert_eq!(status, 200, "{invoices}");
    assert_eq!(invoices["items"], json!([]));

    // Without a credential only the plans are readable.
    let anonymous = query
        .client
        .get(format!("{}/v1/billing", query.address))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
}

/// Day `d` (from the day after tomorrow) at `hour`: distinct slots for many bookings.
fn slot_on(day: i64, hour: u32) -> String {
    let date = (chrono::Utc::now() + chrono::Duration::days(2 + day)).date_naive();
    format!("{date}T{hour:02}:00:00Z")
}

#[tokio::test]
async fn the_month_takes_the_plans_bookings_then_asks_for_an_upgrade() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("busy-salon").await,
        app: &app,
    };
    let service = t.configured().await;
    // 100 bookings, four at a time, half of them by the business's website with an API key
    // (each credential has its own rate limit; the plan's limit is the business's): twelve
    // slots a day, 08:00 to 19:00.
    let (status, _, key) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "website", "scopes": ["write_bookings"]})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap();
    let slots: Vec<String> = (0..100)
        .map(|i| slot_on(i / 12, 8 + (i % 12) as u32))
        .collect();
    for (n, chunk) in slots.chunks(4).enumerate() {
        let made = futures::future::join_all(chunk.iter().enumerate().map(|(i, start)| {
            let (t, service) = (&t, &service);
            let token = if n % 2 == 0 {
                t.owner.access_token.as_str()
            } else {
                key
            };
            let body = json!({"service_id": service, "start": start,
                "customer": {"phone": format!("+3460000{n:02}{i:02}")}});
            async move {
                t.send_as(
                    token,
                    reqwest::Method::POST,
                    "/v1/bookings",
                    &[],
                    Some(body),
                )
                .await
            }
        }))
        .await;
        for (status, _, body) in made {
            assert_eq!(status, 201, "{body}");
        }
    }

    let (status, refused) = t.book(&service, &slot_on(9, 8), "+34611111111", None).await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(
        refused["type"],
        "https://errors.booking.invalid/payment-required"
    );
    assert_eq!(refused["upgrade_url"], TEST_UPGRADE_URL);
    assert!(
        refused["detail"].as_str().unwrap().contains("100 bookings"),
        "{refused}"
    );

    // A downgrade is not possible from Starter; a move up lifts the stop at once.
    let (status, _, upgraded) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/plan",
            &[],
            Some(json!({"plan": "growth"})),
        )
        .await;
    assert_eq!(status, 200, "{upgraded}");
    assert_eq!(upgraded["plan"], "growth");
    let (status, body) = t.book(&service, &slot_on(9, 8), "+34611111111", None).await;
    assert_eq!(status, 201, "{body}");

    // Back to Starter: this month's 101 bookings exceed its 100.
    let (status, _, refused) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/plan",
            &[],
            Some(json!({"plan": "starter"})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    assert_eq!(refused["limit"], "bookings", "{refused}");
    assert_eq!(refused["errors"][0]["field"], "plan", "{refused}");

    // A bad plan names the field and changes nothing.
    let (status, _, bad) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/plan",
            &[],
            Some(json!({"plan": "platinum"})),
        )
        .await;
    assert_eq!(status, 422, "{bad}");
    assert_eq!(bad["errors"][0]["field"], "plan", "{bad}");
}

#[tokio::test]
async fn a_plan_counts_its_seats() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("small-salon").await,
        app: &app,
    };
    // Starter: three seats, the owner's one of them.
    for n in 0..2 {
        let (status, _, body) = t
            .send(
                reqwest::Method::POST,
                "/v1/users",
                &[],
                Some(json!({"email": format!("staff{n}@small-salon.example"), "role": "staff"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, _, refused) = t
        .send(
            reqwest::Method::POST,
            "/v1/users",
            &[],
            Some(json!({"email": "one-more@small-salon.example", "role": "staff"})),
        )
        .await;
    assert_eq!(status, 402, "{refused}");
    assert_eq!(refused["upgrade_url"], TEST_UPGRADE_URL);
}

fn invoice(id: &str, paid: bool, start: DateTime<Utc>) -> InvoiceFacts {
    let euros = |minor| Money::parse(minor, "EUR").unwrap();
    InvoiceFacts {
        invoice_id: id.into(),
        number: Some("DEMO-0001".into()),
        period_start: start,
        period_end: start + chrono::Duration::days(30),
        amount_due: euros(2900),
        amount_paid: euros(if paid { 2900 } else { 0 }),
        hosted_url: Some(format!("https://invoice.stripe.test/{id}")),
    }
}

#[tokio::test]
async fn an_unpaid_invoice_opens_a_grace_period_then_suspends_and_a_payment_reinstates() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("late-salon").await,
        app: &app,
    };
    let token = t.owner.access_token.clone();
    let tenant: Uuid = t.owner.tenant_id.parse().unwrap();
    let uc = use_cases(&app.db);
    let now = Utc::now();
    // What Stripe's webhooks record: a customer, a subscription, a failed payment.
    let ctx = CommandContext::new(tenant, "system:test", "customer");
    app::billing::record_customer(&uc, &ctx, "cus_late".into())
        .await
        .unwrap();
    let subscription = SubscriptionSnapshot {
        subscription_id: "sub_late".into(),
        status: StripeStatus::Active,
        plan: Plan::Starter,
        cycle: Cycle::Monthly,
        period_start: now,
        period_end: now + chrono::Duration::days(30),
        cancel_at_period_end: false,
    };
    app::billing::sync_subscription(&uc, tenant, "evt_sub", subscription, now)
        .await
        .unwrap();
    let failed = app::billing::record_payment_failed(
        &uc,
        tenant,
        "evt_failed",
        invoice("in_1", false, now),
        now,
    )
    .await
    .unwrap();
    // Stripe's next retry fails too: the grace period already runs.
    let retried = app::billing::record_payment_failed(
        &uc,
        tenant,
        "evt_failed_again",
        invoice("in_1", false, now),
        now + chrono::Duration::days(3),
    )
    .await
    .unwrap();
    assert!(retried.position.is_none(), "nothing new");

    let (status, billing) = query
        .get("/v1/billing", &token, Some(&failed.consistency_token()))
        .await;
    assert_eq!(status, 200, "{billing}");
    assert_eq!(billing["status"], "past_due");
    let grace_ends: DateTime<Utc> = billing["grace_ends_at"].as_str().unwrap().parse().unwrap();
    let off = grace_ends - (now + chrono::Duration::days(7));
    assert!(off.num_milliseconds().abs() < 5, "seven days: {billing}");
    let (_, invoices) = query.get("/v1/billing/invoices", &token, None).await;
    assert_eq!(invoices["items"][0]["status"], "failed", "{invoices}");
    assert_eq!(invoices["items"][0]["amount_due"], 2900);
    // The grace period changes nothing for the business.
    assert_eq!(
        t.send(reqwest::Method::GET, "/v1/me", &[], None).await.0,
        200
    );

    // Day 6 of the grace period: a reminder, and still open.
    let clock = billing_clock(&app.db);
    assert_eq!(
        clock
            .run_once(now + chrono::Duration::days(6))
            .await
            .unwrap()
            .expired,
        1
    );
    let (status, _, locked) = t.send(reqwest::Method::GET, "/v1/me", &[], None).await;
    assert_eq!(status, 200, "not yet: {locked}");
    assert_eq!(
        clock
            .run_once(now + chrono::Duration::days(8))
            .await
            .unwrap()
            .expired,
        1
    );
    let (status, _, locked) = t.send(reqwest::Method::GET, "/v1/me", &[], None).await;
    assert_eq!(status, 423, "{locked}");
    assert!(
        locked["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("unpaid"),
        "{locked}"
    );

    // Stripe's retry succeeds: reinstated at once (the webhook drops the cached status too).
    let paid =
        app::billing::record_invoice_paid(&uc, tenant, "evt_paid", invoice("in_1", true, now))
            .await
            .unwrap();
    clock.gates.forget(tenant).await;
    assert_eq!(
        t.send(reqwest::Method::GET, "/v1/me", &[], None).await.0,
        200
    );
    let (_, billing) = query
        .get("/v1/billing", &token, Some(&paid.consistency_token()))
        .await;
    assert_eq!(billing["status"], "active", "{billing}");
    assert_eq!(billing["grace_ends_at"], Value::Null);
    let (_, invoices) = query.get("/v1/billing/invoices", &token, None).await;
    assert_eq!(invoices["items"][0]["status"], "paid", "{invoices}");
    assert_eq!(
        invoices["items"][0]["hosted_url"],
        "https://invoice.stripe.test/in_1"
    );

    // Each step is in the audit.
    let (status, audit) = query.get("/v1/audit?limit=200", &token, None).await;
    assert_eq!(status, 200, "{audit}");
    let steps: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["stream"].as_str().unwrap().starts_with("billing"))
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    for step in [
        "TrialStarted",
        "SubscriptionStarted",
        "PaymentFailed",
        "GracePeriodStarted",
        "PaymentReminderDue",
        "SuspendedForNonPayment",
        "InvoicePaid",
        "GracePeriodEnded",
        "Reinstated",
    ] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
}
