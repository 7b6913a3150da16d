//! Stripe through the real async-stripe client against the fake: subscribing with Checkout,
//! webhooks verified and applied once whatever their order, and what a bad, stale or replayed
//! webhook changes (nothing).

use std::time::Duration;

use e2e_tests::tenant::Tenant;
use e2e_tests::wa::events;
use e2e_tests::{
    CommandApp, REDIS_URL, TEST_STRIPE_WEBHOOK_SECRET, eventually, projector_settings,
    query_api_settings, spawn_command_api_tuned, spawn_projector, spawn_query_api, stripe_settings,
};
use fake_stripe::{Fake, WebhookTarget};
use serde_json::{Value, json};

struct Setup {
    app: CommandApp,
    fake: Fake,
    stripe_url: String,
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
    Setup {
        app,
        fake,
        stripe_url,
    }
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

/// Subscribes the tenant to `plan` through Checkout and waits until it is active.
async fn subscribe(t: &Tenant<'_>, query: &e2e_tests::QueryApp, fake: &Fake, plan: &str) -> Value {
    let (status, _, checkout) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/checkout",
            &[],
            Some(json!({"plan": plan})),
        )
        .await;
    assert_eq!(status, 200, "{checkout}");
    fake.pay(checkout["session_id"].as_str().unwrap(), "4242424242424242")
        .unwrap();
    eventually(Duration::from_secs(15), || async {
        let (_, billing) = query.get("/v1/billing", &t.owner.access_token, None).await;
        (billing["status"] == "active" && billing["plan"] == plan).then_some(billing)
    })
    .await
    .expect("subscribed")
}

/// Messages a customer sent the business (recorded as the webhook records them).
async fn messages(app: &CommandApp, tenant: uuid::Uuid, count: usize, tag: &str) {
    struct Always;
    impl app::conversation::AnswerPolicy for Always {
        async fn may_answer(
            &self,
            _: uuid::Uuid,
            _: &domain::conversation::InboundMessage,
        ) -> app::conversation::Answer {
            app::conversation::Answer::Now
        }
    }
    let uc = e2e_tests::use_cases(&app.db);
    for n in 0..count {
        let message = domain::conversation::InboundMessage {
            wamid: format!("wamid.{tag}.{n}"),
            from: domain::values::PhoneNumber::parse("+34600000042").unwrap(),
            profile_name: None,
            content: domain::bot::Inbound::Text { body: "hi".into() },
            received_at: chrono::Utc::now(),
        };
        app::conversation::take_turn(&uc, tenant, message, &Always)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_reactor_makes_the_customer_changes_the_plan_prorated_and_meters_each_message_once() {
    let s = setup(0, false).await;
    let mut settings = projector_settings(&s.app.db, &s.app.nats);
    settings.stripe = e2e_tests::projector_stripe_settings(&s.stripe_url);
    let projector = spawn_projector(settings.clone()).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let t = Tenant {
        owner: s.app.onboard("growing-salon").await,
        app: &s.app,
    };
    let tenant: uuid::Uuid = t.owner.tenant_id.parse().unwrap();
    // The trial's customer is made by the reactor, before any checkout.
    eventually(Duration::from_secs(10), || async {
        (!events(&s.app, "StripeCustomerCreated").await.is_empty()).then_some(())
    })
    .await
    .expect("a Stripe customer");
    subscribe(&t, &query, &s.fake, "starter").await;
    assert_eq!(events(&s.app, "StripeCustomerCreated").await.len(), 1);

    // Upgrade: at once here, and at Stripe through the reactor, prorated.
    let (status, _, upgraded) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/plan",
            &[],
            Some(json!({"plan": "pro"})),
        )
        .await;
    assert_eq!(status, 200, "{upgraded}");
    assert_eq!(upgraded["plan"], "pro");
    let proration = eventually(Duration::from_secs(15), || async {
        let (_, page) = query
            .get("/v1/billing/invoices", &t.owner.access_token, None)
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2).then_some(items)
    })
    .await
    .expect("a proration invoice");
    let amounts: Vec<i64> = proration
        .iter()
        .map(|i| i["amount_due"].as_i64().unwrap())
        .collect();
    // The rest of a month of Pro less Starter: almost all of 199 - 29 euros.
    assert!(
        amounts.iter().any(|a| (16_900..=17_000).contains(a)),
        "{amounts:?}"
    );
    let stripe_side: Vec<Value> = s
        .fake
        .events()
        .into_iter()
        .filter(|e| e["type"] == "customer.subscription.updated")
        .collect();
    assert_eq!(
        stripe_side.last().unwrap()["data"]["object"]["items"]["data"][0]["price"]["lookup_key"],
        "pro_monthly"
    );

    // Messages are metered once each, across a restart of the reactor and redeliveries.
    messages(&s.app, tenant, 5, "a").await;
    eventually(Duration::from_secs(10), || async {
        (s.fake.meter_events().len() == 5).then_some(())
    })
    .await
    .expect("five meter events");
    projector.shutdown().await;
    messages(&s.app, tenant, 3, "b").await;
    // Stripe forgets nothing: the redelivered identifiers are refused as repeats.
    let again = spawn_projector(settings).await;
    eventually(Duration::from_secs(15), || async {
        (s.fake.meter_events().len() == 8).then_some(())
    })
    .await
    .expect("eight meter events");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(s.fake.meter_events().len(), 8);
    let received: Vec<Value> = events(&s.app, "MessageReceived").await;
    assert_eq!(received.len(), 8);
    drop(again);
}

#[tokio::test]
async fn a_failed_renewal_opens_the_grace_period_suspends_and_a_retried_payment_reinstates() {
    let s = setup(0, false).await;
    let mut settings = projector_settings(&s.app.db, &s.app.nats);
    settings.stripe = e2e_tests::projector_stripe_settings(&s.stripe_url);
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let t = Tenant {
        owner: s.app.onboard("late-payer").await,
        app: &s.app,
    };
    subscribe(&t, &query, &s.fake, "starter").await;
    let customer = events(&s.app, "StripeCustomerCreated").await[0]["customer_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A month on, the renewal is declined.
    assert!(s.fake.fail_next_charge(&customer));
    s.fake.advance(31 * 86_400);
    let billing = eventually(Duration::from_secs(15), || async {
        let (_, billing) = query.get("/v1/billing", &t.owner.access_token, None).await;
        (billing["status"] == "past_due").then_some(billing)
    })
    .await
    .expect("past due");
    assert!(billing["grace_ends_at"].is_string(), "{billing}");
    assert_eq!(
        t.send(reqwest::Method::GET, "/v1/me", &[], None).await.0,
        200
    );

    // Our clock, past the grace period: suspended.
    let clock = e2e_tests::billing_clock(&s.app.db);
    let later = chrono::Utc::now() + chrono::Duration::days(8);
    eventually(Duration::from_secs(10), || async {
        (clock.run_once(later).await.unwrap().expired == 1).then_some(())
    })
    .await
    .expect("suspended");
    assert_eq!(
        t.send(reqwest::Method::GET, "/v1/me", &[], None).await.0,
        423
    );

    // Stripe retries three days after the failure, and the charge goes through.
    s.fake.advance(3 * 86_400);
    eventually(Duration::from_secs(15), || async {
        (t.send(reqwest::Method::GET, "/v1/me", &[], None).await.0 == 200).then_some(())
    })
    .await
    .expect("reinstated");
    for step in [
        "PaymentFailed",
        "GracePeriodStarted",
        "SuspendedForNonPayment",
        "GracePeriodEnded",
        "Reinstated",
    ] {
        assert_eq!(events(&s.app, step).await.len(), 1, "{step}");
    }
}

#[tokio::test]
async fn with_stripe_down_checkout_waits_and_a_plan_change_reaches_stripe_once_it_is_back() {
    let s = setup(0, false).await;
    let mut settings = projector_settings(&s.app.db, &s.app.nats);
    settings.stripe = e2e_tests::projector_stripe_settings(&s.stripe_url);
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let t = Tenant {
        owner: s.app.onboard("patient-salon").await,
        app: &s.app,
    };
    subscribe(&t, &query, &s.fake, "starter").await;
    s.fake.set_down(true);
    // Subscribing needs Stripe's page: a 503 to try again, and nothing recorded.
    let newcomer = Tenant {
        owner: s.app.onboard("newcomer-salon").await,
        app: &s.app,
    };
    let before = count_events(&s.app).await;
    let (status, headers, problem) = newcomer
        .send(
            reqwest::Method::POST,
            "/v1/billing/checkout",
            &[],
            Some(json!({"plan": "growth"})),
        )
        .await;
    assert_eq!(status, 503, "{problem}");
    assert!(headers.contains_key("retry-after"));
    assert!(
        problem["detail"].as_str().unwrap().contains("Stripe"),
        "{problem}"
    );
    assert_eq!(count_events(&s.app).await, before, "nothing recorded");
    // The plan change is the business's: taken at once, whatever Stripe's state.
    let (status, _, changed) = t
        .send(
            reqwest::Method::POST,
            "/v1/billing/plan",
            &[],
            Some(json!({"plan": "growth"})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert!(count_events(&s.app).await > before);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let updates = |fake: &Fake| {
        fake.events()
            .iter()
            .filter(|e| {
                e["type"] == "customer.subscription.updated"
                    && e["data"]["object"]["items"]["data"][0]["price"]["lookup_key"]
                        == "growth_monthly"
            })
            .count()
    };
    assert_eq!(updates(&s.fake), 0, "Stripe is down");
    s.fake.set_down(false);
    eventually(Duration::from_secs(30), || async {
        (updates(&s.fake) == 1).then_some(())
    })
    .await
    .expect("the change reaches Stripe");
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(updates(&s.fake), 1, "once");
    let invoices: Vec<Value> = s
        .fake
        .events()
        .into_iter()
        .filter(|e| e["type"] == "invoice.paid")
        .collect();
    assert_eq!(invoices.len(), 2, "the first month and one proration");
}

#[tokio::test]
async fn a_cancellation_keeps_the_period_then_bookings_stop_and_nothing_is_deleted() {
    let s = setup(0, false).await;
    let mut settings = projector_settings(&s.app.db, &s.app.nats);
    settings.stripe = e2e_tests::projector_stripe_settings(&s.stripe_url);
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let t = Tenant {
        owner: s.app.onboard("leaving-salon").await,
        app: &s.app,
    };
    let service = t.configured().await;
    subscribe(&t, &query, &s.fake, "growth").await;
    let (status, _, cancelled) = t
        .send(reqwest::Method::POST, "/v1/billing/cancel", &[], None)
        .await;
    assert_eq!(status, 200, "{cancelled}");
    assert_eq!(cancelled["cancel_at_period_end"], true);
    // Again: a conflict, nothing new.
    let (status, _, again) = t
        .send(reqwest::Method::POST, "/v1/billing/cancel", &[], None)
        .await;
    assert_eq!(status, 409, "{again}");
    // Stripe hears of it through the reactor; until the period ends, everything works.
    eventually(Duration::from_secs(15), || async {
        s.fake
            .events()
            .iter()
            .any(|e| {
                e["type"] == "customer.subscription.updated"
                    && e["data"]["object"]["cancel_at_period_end"] == true
            })
            .then_some(())
    })
    .await
    .expect("Stripe cancels at the period end");
    let (status, booked) = t
        .book(&service, &e2e_tests::tenant::slot(10), "+34600000077", None)
        .await;
    assert_eq!(status, 201, "{booked}");

    // The period ends: Stripe deletes the subscription, bookings stop, the booking stays.
    s.fake.advance(31 * 86_400);
    eventually(Duration::from_secs(15), || async {
        let (_, billing) = query.get("/v1/billing", &t.owner.access_token, None).await;
        (billing["status"] == "cancelled").then_some(())
    })
    .await
    .expect("cancelled");
    let (status, refused) = t
        .book(&service, &e2e_tests::tenant::slot(12), "+34600000078", None)
        .await;
    assert_eq!(status, 402, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("no subscription"),
        "{refused}"
    );
    // Read after the booking's own write (its consistency token), not whenever the
    // projection happens to have caught up.
    let (status, bookings) = query
        .get(
            "/v1/bookings",
            &t.owner.access_token,
            booked["consistency_token"].as_str(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        bookings["items"].as_array().unwrap().len(),
        1,
        "nothing deleted"
    );
    // Settings stay editable.
    let (status, _, _) = t
        .send(
            reqwest::Method::POST,
            "/v1/services",
            &[],
            Some(e2e_tests::tenant::haircut()),
        )
        .await;
    assert_eq!(status, 201);

    // Every event the fake sent reads with the SDK's own types, into a fact.
    for event in s.fake.events() {
        let body = serde_json::to_string(&event).unwrap();
        let now = chrono::Utc::now().timestamp();
        let signature = fake_stripe::sign(TEST_STRIPE_WEBHOOK_SECRET, now, &body);
        let verified = billing::webhook::verify_at(
            &body,
            Some(&signature),
            &[TEST_STRIPE_WEBHOOK_SECRET.to_owned()],
            now,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", event["type"]));
        assert_ne!(
            verified.fact,
            billing::webhook::Fact::Ignored,
            "{}",
            event["type"]
        );
    }
}

#[tokio::test]
async fn a_restarted_fake_keeps_the_account_so_a_known_customer_can_still_subscribe() {
    // `just up` keeps the fake's state in a file: the demo's database remembers its Stripe
    // customer across runs, and Stripe would too.
    let before = Fake::new();
    let url = before.clone().spawn().await;
    let gateway =
        billing::StripeGateway::new("sk_test_fake", Some(&url), Duration::from_secs(5)).unwrap();
    let tenant = uuid::Uuid::new_v4();
    let customer = gateway
        .create_customer(tenant, "Demo Salon", "owner@demo.example")
        .await
        .unwrap();
    let saved = before.save();

    let after = Fake::new();
    after.restore(&saved).unwrap();
    let url = after.clone().spawn().await;
    let gateway =
        billing::StripeGateway::new("sk_test_fake", Some(&url), Duration::from_secs(5)).unwrap();
    let checkout = gateway
        .create_checkout(
            tenant,
            &customer,
            domain::plan::Plan::Growth,
            domain::plan::Cycle::Monthly,
            "http://127.0.0.1:1/ok",
            "http://127.0.0.1:1/cancel",
            "restart-checkout",
        )
        .await;
    assert!(checkout.is_ok(), "{checkout:?}");
    // A fake that saved nothing does not know it (what `just up` met before).
    let fresh = Fake::new();
    let url = fresh.clone().spawn().await;
    let gateway =
        billing::StripeGateway::new("sk_test_fake", Some(&url), Duration::from_secs(5)).unwrap();
    assert!(
        gateway
            .create_checkout(
                tenant,
                &customer,
                domain::plan::Plan::Growth,
                domain::plan::Cycle::Monthly,
                "http://127.0.0.1:1/ok",
                "http://127.0.0.1:1/cancel",
                "fresh-checkout",
            )
            .await
            .is_err()
    );
}
