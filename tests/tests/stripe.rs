//! Stripe through the real async-stripe client against the fake: subscribing with Checkout,
//! webhooks verified and applied once whatever their order, and what a bad, stale or replayed
//! webhook changes (nothing).

use std::time::Duration;

use e2e_tests::tenant::Tenant;
use e2e_tests::{
    CommandApp, REDIS_URL, TEST_STRIPE_WEBHOOK_SECRET, eventually, projector_settings,
    query_api_settings, spawn_command_api_tuned, spawn_projector, spawn_query_api, stripe_settings,
};
use fake_stripe::{Fake, WebhookTarget};
use serde_json::{Value, json};

struct Setup {
    app: CommandApp,
    fake: Fake,
}

/// The command API with Stripe at a fresh fake, whose webhooks go to the command API
/// (`repeat` extra times each, in reverse order when asked).
async fn setup(repeat: u32, reverse: bool) -> Setup {
    let fake = Fake::new();
    let stripe_url = fake.clone().spawn().await;
    let app = spawn_command_api_tuned("http://127.0.0.1:1", REDIS_URL, |s| {
        s.stripe = stripe_settings(&stripe_url);
    })
    .await;
    fake.configure_webhooks(WebhookTarget {
        url: format!("{}/webhooks/stripe", app.address),
        secret: TEST_STRIPE_WEBHOOK_SECRET.into(),
        repeat,
        reverse,
    });
    Setup { app, fake }
}

async fn events(app: &CommandApp, event_type: &str) -> Vec<Value> {
    sqlx::query_scalar::<_, Value>(
        "select payload from events where event_type = $1 order by global_position",
    )
    .bind(event_type)
    .fetch_all(&app.db.operator_pool().await)
    .await
    .unwrap()
}

async fn count_events(app: &CommandApp) -> i64 {
    sqlx::query_scalar("select count(*) from events")
        .fetch_one(&app.db.operator_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_trial_becomes_a_paid_subscription_through_checkout() {
    // Every webhook three times, each change's events in reverse order.
    let s = setup(2, true).await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let t = Tenant {
        owner: s.app.onboard("paying-salon").await,
        app: &s.app,
    };
    let (status, _, checkout) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/checkout",
            &[],
            Some(json!({"plan": "growth"})),
        )
        .await;
    assert_eq!(status, 200, "{checkout}");
    let url = checkout["checkout_url"].as_str().unwrap();

    // The owner opens Stripe's page and pays.
    let page = reqwest::get(url).await.unwrap().text().await.unwrap();
    assert!(page.contains("Subscribe to Growth"), "{page}");
    assert!(page.contains("79.00 EUR"), "{page}");
    let session = checkout["session_id"].as_str().unwrap();
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let paid = no_redirect
        .post(format!("{url}/pay"))
        .form(&[("card", "4242 4242 4242 4242")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 303, "{session}");
    assert_eq!(
        paid.headers()["location"],
        "http://dashboard.test/billing?checkout=done"
    );

    // Stripe's events arrive (each three times, out of order): active on Growth, once.
    let billing = eventually(Duration::from_secs(15), || async {
        let (_, billing) = query.get("/v1/billing", &t.owner.access_token, None).await;
        (billing["status"] == "active" && billing["cycle"] == "monthly").then_some(billing)
    })
    .await
    .expect("the subscription is active");
    assert_eq!(billing["plan"], "growth");
    assert_eq!(billing["checkout_url"], Value::Null);
    assert_eq!(billing["next_invoice"]["amount"]["minor"], 7900);
    assert_eq!(billing["usage"]["bookings"]["limit"], 1000);
    let invoices = eventually(Duration::from_secs(10), || async {
        let (_, page) = query
            .get("/v1/billing/invoices", &t.owner.access_token, None)
            .await;
        (page["items"][0]["status"] == "paid").then_some(page)
    })
    .await
    .expect("the first invoice is paid");
    assert_eq!(invoices["items"][0]["amount_paid"], 7900);
    assert!(
        invoices["items"][0]["hosted_url"]
            .as_str()
            .unwrap()
            .contains("/invoices/in_"),
        "{invoices}"
    );
    // Wait until every delivery was answered, then count the effects.
    eventually(Duration::from_secs(10), || async {
        let deliveries = s.fake.deliveries();
        let made = s.fake.events().len() * 3;
        (deliveries.len() >= made && deliveries.iter().all(|d| d.status == Some(200))).then_some(())
    })
    .await
    .expect("every delivery acknowledged");
    assert_eq!(events(&s.app, "SubscriptionStarted").await.len(), 1);
    assert_eq!(events(&s.app, "InvoicePaid").await.len(), 1);
    assert_eq!(events(&s.app, "StripeCustomerCreated").await.len(), 1);

    // A second checkout while subscribed is a conflict, and Stripe is not asked.
    let (status, _, again) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/checkout",
            &[],
            Some(json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(status, 409, "{again}");
}

/// Posts `body` to the webhook with `signature`.
async fn post(app: &CommandApp, body: &str, signature: Option<String>) -> (u16, Value) {
    let mut request = app
        .client
        .post(format!("{}/webhooks/stripe", app.address))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn bad_stale_and_replayed_webhooks_change_nothing() {
    let s = setup(0, false).await;
    let t = Tenant {
        owner: s.app.onboard("careful-salon").await,
        app: &s.app,
    };
    let (status, _, checkout) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/checkout",
            &[],
            Some(json!({"plan": "starter"})),
        )
        .await;
    assert_eq!(status, 200, "{checkout}");
    // Stripe's events, captured but not delivered.
    s.fake.configure_webhooks(WebhookTarget {
        url: "http://127.0.0.1:1/nowhere".into(),
        secret: TEST_STRIPE_WEBHOOK_SECRET.into(),
        repeat: 0,
        reverse: false,
    });
    s.fake
        .pay(checkout["session_id"].as_str().unwrap(), "4242424242424242")
        .unwrap();
    let paid = s
        .fake
        .events()
        .into_iter()
        .find(|e| e["type"] == "invoice.paid")
        .expect("an invoice.paid event");
    let body = serde_json::to_string(&paid).unwrap();
    let now = chrono::Utc::now().timestamp();
    let before = count_events(&s.app).await;

    for (what, signature) in [
        ("no signature", None),
        (
            "another secret",
            Some(fake_stripe::sign("whsec_someone_else", now, &body)),
        ),
        (
            "stale",
            Some(fake_stripe::sign(
                TEST_STRIPE_WEBHOOK_SECRET,
                now - 301,
                &body,
            )),
        ),
        ("not hex", Some(format!("t={now},v1=zz"))),
    ] {
        let (status, problem) = post(&s.app, &body, signature).await;
        assert_eq!(status, 400, "{what}: {problem}");
        assert_eq!(
            problem["type"], "https://errors.booking.invalid/bad-signature",
            "{what}"
        );
    }
    // A body changed after signing.
    let signature = fake_stripe::sign(TEST_STRIPE_WEBHOOK_SECRET, now, &body);
    let tampered = body.replace("\"amount_paid\":2900", "\"amount_paid\":1");
    assert_ne!(tampered, body);
    assert_eq!(
        post(&s.app, &tampered, Some(signature.clone())).await.0,
        400
    );
    assert_eq!(count_events(&s.app).await, before, "nothing recorded");

    // Signed right (by the current secret, or the one being rotated out): recorded once.
    assert_eq!(post(&s.app, &body, Some(signature)).await.0, 200);
    let after = count_events(&s.app).await;
    assert!(after > before);
    let old = fake_stripe::sign("whsec_old_rotated_out", now, &body);
    assert_eq!(post(&s.app, &body, Some(old)).await.0, 200);
    let both = format!(
        "{},v1=0000",
        fake_stripe::sign(TEST_STRIPE_WEBHOOK_SECRET, now, &body)
    );
    assert_eq!(post(&s.app, &body, Some(both)).await.0, 200);
    assert_eq!(
        count_events(&s.app).await,
        after,
        "a replay changes nothing"
    );
    assert_eq!(events(&s.app, "InvoicePaid").await.len(), 1);
}
