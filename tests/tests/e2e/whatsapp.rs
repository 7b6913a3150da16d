//! Connecting a WhatsApp number and the webhook, over HTTP, with Meta's payload shapes.

use std::time::Duration;

use e2e_tests::wa::*;
use e2e_tests::{
    FAKE_NUMBER_ID, FAKE_TOKEN, FakeGraph, billing_clock, eventually, operator_token,
    projector_settings, spawn_command_api_with_graph, spawn_projector,
};
use serde_json::{Value, json};

#[tokio::test]
async fn connecting_checks_the_number_with_meta_and_keeps_secrets_out_of_events() {
    let graph = FakeGraph::start().await;
    let app = spawn_command_api_with_graph(&graph.base_url).await;
    let owner = app.onboard("demo-salon").await;

    let (status, body) = connect(&app, &owner, "expired-token", FAKE_NUMBER_ID).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("access_token"))
    );
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Session has expired"),
        "Meta's reason: {body}"
    );
    let (status, body) = connect(&app, &owner, FAKE_TOKEN, &"1".repeat(100_000)).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("phone_number_id")),
        "checked before Meta is asked: {}",
        body.to_string().chars().take(300).collect::<String>()
    );
    let (status, body) = connect(&app, &owner, FAKE_TOKEN, "123").await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("phone_number_id"))
    );

    let (status, body) = connect(&app, &owner, FAKE_TOKEN, FAKE_NUMBER_ID).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["display_phone_number"], "+1 555-078-3881");
    let connected = events(&app, "WhatsAppNumberConnected").await;
    assert_eq!(connected.len(), 1);
    let all: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert!(
        all.iter()
            .all(|p| !p.contains(FAKE_TOKEN) && !p.contains(APP_SECRET)),
        "no secret in the log"
    );
    let stored: Vec<u8> = sqlx::query_scalar("select access_token_enc from whatsapp_credentials")
        .fetch_one(&app.db.superuser_url_pool().await)
        .await
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&stored).contains(FAKE_TOKEN),
        "encrypted at rest"
    );

    // The same number for another tenant.
    let other = app.onboard("other-salon").await;
    assert_eq!(
        connect(&app, &other, FAKE_TOKEN, FAKE_NUMBER_ID).await.0,
        409
    );
}

#[tokio::test]
async fn meta_s_verification_echoes_the_challenge_for_the_right_token_only() {
    let s = setup().await;
    let get = |token: &str| {
        let url = format!(
            "{}/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token={token}&hub.challenge=1158201444",
            s.app.address
        );
        let client = s.app.client.clone();
        async move { client.get(url).send().await.unwrap() }
    };
    let ok = get(VERIFY_TOKEN).await;
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = get("wrong").await;
    assert_eq!(wrong.status().as_u16(), 403);
    assert_eq!(wrong.headers()["content-type"], "application/problem+json");
}

#[tokio::test]
async fn unsigned_badly_signed_malformed_and_oversize_posts_change_nothing() {
    let s = setup().await;
    let body = notification(vec![text("16505551234", "wamid.1", "hi")]);
    let unsigned = s
        .app
        .client
        .post(format!("{}/webhooks/whatsapp", s.app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status().as_u16(), 401);
    assert_eq!(post_signed(&s.app, &body, "not-the-secret").await, 401);
    let raw = |signature: String, body: String| {
        let app = &s.app;
        async move {
            let response = app
                .client
                .post(format!("{}/webhooks/whatsapp", app.address))
                .header("x-hub-signature-256", signature)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    };
    // Nothing that cannot be verified is read further: the same 401 for each.
    let well_formed = whatsapp::signature::sign(b"whoever", b"{nope");
    let refused = raw(String::new(), String::new()).await;
    assert_eq!(refused.0, 401, "an empty body with an empty signature");
    assert_eq!(raw("sha256=00".into(), "{nope".into()).await, refused);
    assert_eq!(
        raw(well_formed, "{nope".into()).await,
        refused,
        "not a notification"
    );
    // Badly signed, a connected number and one nobody connected answer alike: no oracle.
    let badly_signed = |number: &str| {
        let mut body = body.clone();
        body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(number);
        let bytes = body.to_string();
        (
            whatsapp::signature::sign(b"not-the-secret", bytes.as_bytes()),
            bytes,
        )
    };
    let (signature, bytes) = badly_signed(FAKE_NUMBER_ID);
    let connected = raw(signature, bytes).await;
    let (signature, bytes) = badly_signed("199999999999999");
    assert_eq!(raw(signature, bytes).await, connected);
    assert_eq!(connected, refused);
    let huge = "x".repeat(2 * 1024 * 1024);
    let oversize = s
        .app
        .client
        .post(format!("{}/webhooks/whatsapp", s.app.address))
        .header("x-hub-signature-256", "sha256=00")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status().as_u16(), 413);
    assert!(events(&s.app, "MessageReceived").await.is_empty());
}

#[tokio::test]
async fn a_message_delivered_three_times_is_one_turn() {
    let s = setup().await;
    let body = notification(vec![text("16505551234", "wamid.hi", "hi")]);
    for _ in 0..3 {
        assert_eq!(post_signed(&s.app, &body, APP_SECRET).await, 200);
    }
    assert_eq!(events(&s.app, "MessageReceived").await.len(), 1);
    let replies = events(&s.app, "BotReplied").await;
    assert!(
        replies[0]["reply"]["body"]
            .as_str()
            .unwrap()
            .contains("Welcome to Demo Salon"),
        "{replies:?}"
    );
    assert_eq!(last_choices(&s.app, "+16505551234").await[0].1, "Haircut");
}

#[tokio::test]
async fn a_customer_books_over_whatsapp_from_hi_to_confirmed() {
    let s = setup().await;
    let me = "16505551234";
    let phone = "+16505551234";
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![text(me, "w1", "hi")]),
            APP_SECRET
        )
        .await,
        200
    );
    let (id, title) = last_choices(&s.app, phone).await[0].clone();
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![list_reply(me, "w2", &id, &title)]),
            APP_SECRET
        )
        .await,
        200
    );
    let (id, title) = last_choices(&s.app, phone).await[1].clone(); // the day after the first offered
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![list_reply(me, "w3", &id, &title)]),
            APP_SECRET
        )
        .await,
        200
    );
    let (id, title) = last_choices(&s.app, phone).await[0].clone();
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![list_reply(me, "w4", &id, &title)]),
            APP_SECRET
        )
        .await,
        200
    );
    // The time is kept for the customer; the summary has the WhatsApp profile's name and
    // confirms with the one payment method.
    assert_eq!(events(&s.app, "SlotReserved").await.len(), 1);
    let summary = last_text(&s.app, phone).await;
    assert!(summary.contains("Name: Sheena"), "{summary}");
    let (id, title) = last_choices(&s.app, phone).await[0].clone();
    assert_eq!((id.as_str(), title.as_str()), ("confirm", "Confirm"));
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![button_reply(me, "w5", &id, &title)]),
            APP_SECRET
        )
        .await,
        200
    );

    let booked = events(&s.app, "AppointmentRequested").await;
    assert_eq!(booked.len(), 1, "one booking");
    assert_eq!(booked[0]["customer"]["phone"], phone);
    assert_eq!(booked[0]["customer"]["name"], "Sheena");
    assert_eq!(booked[0]["channel"], "whatsapp");
    assert_eq!(events(&s.app, "SlotHeld").await.len(), 1);
    assert_eq!(events(&s.app, "AppointmentConfirmed").await.len(), 1);
    let replies = events(&s.app, "BotReplied").await;
    let last = replies.last().unwrap()["reply"]["body"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        last.starts_with("Booked! Haircut")
            && last.contains(booked[0]["reference"].as_str().unwrap()),
        "{last}"
    );

    // The same last message again changes nothing.
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![button_reply(me, "w5", &id, &title)]),
            APP_SECRET
        )
        .await,
        200
    );
    assert_eq!(events(&s.app, "AppointmentRequested").await.len(), 1);
}

#[tokio::test]
async fn every_message_of_a_batch_is_handled_and_unknown_numbers_are_ignored() {
    let s = setup().await;
    let mut body = notification(vec![
        text("16505551234", "wa.1", "hi"),
        text("16505550000", "wa.2", "hola"),
    ]);
    // A second entry for a number nobody connected.
    body["entry"].as_array_mut().unwrap().push(json!({"id": "OTHER", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "1", "phone_number_id": "999999"},
        "messages": [{"from": "16505559999", "id": "wa.3", "timestamp": "1", "type": "text", "text": {"body": "hi"}}]}}]}));
    // And a status for a message this platform never sent.
    body["entry"][0]["changes"][0]["value"]["statuses"] = json!([{"id": "wamid.unknown", "status": "read", "timestamp": "1", "recipient_id": "16505551234"}]);
    assert_eq!(post_signed(&s.app, &body, APP_SECRET).await, 200);
    let received = events(&s.app, "MessageReceived").await;
    let from: Vec<&str> = received
        .iter()
        .map(|m| m["from"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["+16505551234", "+16505550000"]);

    let unknown_only =
        json!({"object": "whatsapp_business_account", "entry": [body["entry"][1].clone()]});
    assert_eq!(
        post_signed(&s.app, &unknown_only, "anything").await,
        401,
        "nothing could verify it (and Meta redelivers it, for a number connected meanwhile)"
    );
    assert_eq!(events(&s.app, "MessageReceived").await.len(), 2);
    let _ = &s.owner;
}

#[tokio::test]
async fn a_nul_character_or_an_oversize_text_is_taken_as_whatsapp_would_have_sent_it() {
    let s = setup().await;
    let long = format!("hi\u{0}{}", "x".repeat(200_000));
    let body = notification(vec![text("16505551234", "wa.nul\u{0}", &long)]);
    assert_eq!(post_signed(&s.app, &body, APP_SECRET).await, 200);
    let received = events(&s.app, "MessageReceived").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["wamid"], "wa.nul");
    let said = received[0]["content"]["body"].as_str().unwrap();
    assert_eq!(said.chars().count(), 4096);
    assert!(said.starts_with("hix"), "{}", &said[..8]);
    assert!(!events(&s.app, "BotReplied").await.is_empty(), "answered");
}

#[tokio::test]
async fn images_get_a_polite_answer() {
    let s = setup().await;
    let image = json!({"from": "16505551234", "id": "wa.img", "timestamp": "1", "type": "image", "image": {"id": "m1", "mime_type": "image/jpeg"}});
    assert_eq!(
        post_signed(&s.app, &notification(vec![image]), APP_SECRET).await,
        200
    );
    let replies = events(&s.app, "BotReplied").await;
    assert!(
        replies[0]["reply"]["body"]
            .as_str()
            .unwrap()
            .contains("only read text")
    );
}

#[tokio::test]
async fn a_reconnected_number_routes_at_once_and_the_old_one_no_longer_does() {
    let s = setup().await;
    let pool = s.app.db.operator_pool().await;
    let count = || {
        let pool = pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "select count(*) from events where event_type = 'MessageReceived'",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            n
        }
    };
    // Routed (and now cached).
    assert_eq!(
        post_signed(
            &s.app,
            &notification(vec![text("16505551234", "r1", "hi")]),
            APP_SECRET
        )
        .await,
        200
    );
    assert_eq!(count().await, 1);
    // The business moves to another number.
    let other = "106540352249999";
    assert_eq!(connect(&s.app, &s.owner, FAKE_TOKEN, other).await.0, 200);
    let on = |number: &str, wamid: &str| {
        let mut body = notification(vec![text("16505551234", wamid, "hi")]);
        body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(number);
        body
    };
    // The old number is nobody's any more: refused, whatever a cache held.
    assert_eq!(
        post_signed(&s.app, &on(FAKE_NUMBER_ID, "r2"), APP_SECRET).await,
        401
    );
    assert_eq!(count().await, 1);
    // The new one reaches the business straight away.
    assert_eq!(post_signed(&s.app, &on(other, "r3"), APP_SECRET).await, 200);
    assert_eq!(count().await, 2);
}

/// The text of the bot's last reply to `phone`.
#[tokio::test]
async fn when_bookings_stop_or_the_business_is_suspended_the_customer_hears_how_to_reach_it() {
    let s = setup().await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let customer = "+16505551234";
    // The trial runs out unpaid: the billing clock, two weeks on.
    let clock = billing_clock(&s.app.db);
    let later = chrono::Utc::now() + chrono::Duration::days(15);
    eventually(Duration::from_secs(10), || async {
        (clock.run_once(later).await.unwrap().expired == 1).then_some(())
    })
    .await
    .expect("the trial ends");

    let hi = notification(vec![text("16505551234", "wamid.paused", "hi")]);
    assert_eq!(post_signed(&s.app, &hi, APP_SECRET).await, 200);
    let said = last_text(&s.app, customer).await;
    assert!(said.contains("Online booking is paused"), "{said}");
    assert!(said.contains("owner@demo-salon.example"), "{said}");
    assert!(events(&s.app, "AppointmentRequested").await.is_empty());

    // Suspended: still an answer, with the business's contact.
    let suspended = s
        .app
        .client
        .post(format!(
            "{}/v1/operator/tenants/{}/suspend",
            s.app.address, s.owner.tenant_id
        ))
        .bearer_auth(operator_token())
        .json(&json!({"reason": "terms of service"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status().as_u16(), 200);
    let again = notification(vec![text("16505551234", "wamid.suspended", "hello?")]);
    assert_eq!(post_signed(&s.app, &again, APP_SECRET).await, 200);
    let said = last_text(&s.app, customer).await;
    assert!(said.contains("cannot take bookings here"), "{said}");
    assert!(said.contains("owner@demo-salon.example"), "{said}");
}

/// Walks `me` through a booking from "hi" to confirmed, paying cash (message ids tagged
/// `tag`); the last reply's text.
async fn book_by_whatsapp(s: &Setup, me: &str, tag: &str) -> String {
    let phone = format!("+{me}");
    let send = |body: Value| async move {
        post_signed(&s.app, &notification(vec![body]), APP_SECRET).await
    };
    assert_eq!(send(text(me, &format!("{tag}1"), "hi")).await, 200);
    for (n, pick) in [(2, 0), (3, 0), (4, 0)] {
        let (id, title) = last_choices(&s.app, &phone).await[pick].clone();
        assert_eq!(
            send(list_reply(me, &format!("{tag}{n}"), &id, &title)).await,
            200
        );
    }
    // A returning customer's name is remembered: asked only the first time.
    if last_text(&s.app, &phone).await.contains("What name") {
        assert_eq!(send(text(me, &format!("{tag}5"), "Sheena Lee")).await, 200);
    }
    assert_eq!(
        send(button_reply(me, &format!("{tag}6"), "confirm", "Confirm")).await,
        200
    );
    last_text(&s.app, &phone).await
}

#[tokio::test]
async fn at_the_months_booking_limit_the_bot_says_booking_is_paused_until_an_upgrade() {
    let s = setup().await;
    // The Starter month's 100 bookings, made through the API (half by a website key).
    let key: Value = s
        .app
        .client
        .post(format!("{}/v1/api-keys", s.app.address))
        .bearer_auth(&s.owner.access_token)
        .json(&json!({"name": "website", "scopes": ["write_bookings"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap().to_owned();
    let service = sqlx::query_scalar::<_, Value>(
        "select payload from events where event_type = 'ServiceAdded' limit 1",
    )
    .fetch_one(&s.app.db.operator_pool().await)
    .await
    .unwrap()["service"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in 0..100 {
        let day = (chrono::Utc::now() + chrono::Duration::days(3 + n / 12)).date_naive();
        let start = format!("{day}T{:02}:00:00Z", 8 + (n % 12));
        let token = if n % 2 == 0 {
            s.owner.access_token.as_str()
        } else {
            key.as_str()
        };
        let made = s
            .app
            .client
            .post(format!("{}/v1/bookings", s.app.address))
            .bearer_auth(token)
            .json(&json!({"service_id": service, "start": start,
                "customer": {"phone": format!("+3460000{n:04}")}}))
            .send()
            .await
            .unwrap();
        assert_eq!(made.status().as_u16(), 201, "booking {n}");
    }

    let said = book_by_whatsapp(&s, "16505551234", "a").await;
    assert!(said.contains("Online booking is paused"), "{said}");
    assert!(said.contains("owner@demo-salon.example"), "{said}");
    assert_eq!(events(&s.app, "AppointmentRequested").await.len(), 100);

    // An upgrade lifts it at once.
    let upgraded = s
        .app
        .client
        .post(format!("{}/v1/billing/plan", s.app.address))
        .bearer_auth(&s.owner.access_token)
        .json(&json!({"plan": "growth"}))
        .send()
        .await
        .unwrap();
    assert_eq!(upgraded.status().as_u16(), 200);
    // (Another customer: one customer's quick messages are limited per minute.)
    let said = book_by_whatsapp(&s, "16505550000", "b").await;
    assert!(said.starts_with("Booked!"), "{said}");
    assert_eq!(events(&s.app, "AppointmentRequested").await.len(), 101);
}

/// The message ids of every `MessageReceived` the log holds.
async fn received_wamids(app: &e2e_tests::CommandApp) -> Vec<String> {
    events(app, "MessageReceived")
        .await
        .iter()
        .map(|e| e["wamid"].as_str().unwrap().to_owned())
        .collect()
}

/// Connects `owner`'s business to `number` with the app secret it chose (200 expected).
async fn connect_with_secret(
    app: &e2e_tests::CommandApp,
    owner: &e2e_tests::Onboarded,
    number: &str,
    app_secret: &str,
    verify_token: &str,
) {
    let connected = app
        .client
        .put(format!("{}/v1/whatsapp", app.address))
        .bearer_auth(&owner.access_token)
        .json(
            &json!({"phone_number_id": number, "access_token": FAKE_TOKEN,
            "app_secret": app_secret, "verify_token": verify_token}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status().as_u16(), 200);
}

#[tokio::test]
async fn a_business_cannot_sign_notifications_for_another_business_s_number_with_its_own_secret() {
    // A (the setup's business) and B, each with its own number and app secret. B knows its own
    // secret: it chose it.
    let s = setup().await;
    let b = s.app.onboard("other-salon").await;
    let (b_number, b_secret) = ("109999999999999", "b-app-secret-0123456789abcdef");
    connect_with_secret(&s.app, &b, b_number, b_secret, "verify-token-of-b-000").await;
    let for_number = |number: &str, wamid: &str| {
        let mut body = notification(vec![text("16505551234", wamid, "hi")]);
        body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = json!(number);
        body
    };
    let received = || async { events(&s.app, "MessageReceived").await.len() };

    // A's number, signed with B's secret.
    let forged = for_number(FAKE_NUMBER_ID, "wamid.FORGED1");
    assert_eq!(post_signed(&s.app, &forged, b_secret).await, 401);
    // B's number and A's in one batch, signed with B's secret: the whole batch is refused,
    // B's own message with it (a signature covers the body, and this one is not Meta's for A).
    let mut batch = for_number(b_number, "wamid.MIXED-B");
    let a_entry = for_number(FAKE_NUMBER_ID, "wamid.MIXED-A")["entry"][0].clone();
    batch["entry"].as_array_mut().unwrap().push(a_entry);
    assert_eq!(post_signed(&s.app, &batch, b_secret).await, 401);
    assert_eq!(post_signed(&s.app, &batch, APP_SECRET).await, 401);
    assert_eq!(received().await, 0, "nothing was recorded for either");

    // B's secret is good for B's own number, and A's for A's: only the forgeries were refused.
    assert_eq!(
        post_signed(&s.app, &for_number(b_number, "wamid.OWN-B"), b_secret).await,
        200
    );
    assert_eq!(
        post_signed(
            &s.app,
            &for_number(FAKE_NUMBER_ID, "wamid.OWN-A"),
            APP_SECRET
        )
        .await,
        200
    );
    let recorded = received_wamids(&s.app).await;
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(
        recorded.contains(&"wamid.OWN-A".to_owned())
            && recorded.contains(&"wamid.OWN-B".to_owned())
    );
}

/// The command API keeps each business's opened app secret for a minute; a business that
/// connects its number again with a new secret (the old one leaked) is checked against the
/// new one from the next notification on, not a minute later.
#[tokio::test]
async fn a_new_app_secret_signs_the_next_notification_and_the_old_one_no_longer_does() {
    let s = setup().await;
    let hi = |wamid: &str| notification(vec![text("16505551234", wamid, "hi")]);
    // The secret is in the cache now.
    assert_eq!(
        post_signed(&s.app, &hi("wamid.OLD-1"), APP_SECRET).await,
        200
    );
    let new_secret = "rotated-app-secret-0123456789abcdef";
    connect_with_secret(
        &s.app,
        &s.owner,
        FAKE_NUMBER_ID,
        new_secret,
        "verify-token-0123456789",
    )
    .await;
    assert_eq!(
        post_signed(&s.app, &hi("wamid.OLD-2"), APP_SECRET).await,
        401
    );
    assert_eq!(
        post_signed(&s.app, &hi("wamid.NEW-1"), new_secret).await,
        200
    );
    let recorded = received_wamids(&s.app).await;
    assert!(
        !recorded.contains(&"wamid.OLD-2".to_owned()),
        "{recorded:?}"
    );
    assert!(recorded.contains(&"wamid.NEW-1".to_owned()), "{recorded:?}");
}

#[tokio::test]
async fn a_business_connects_whatsapp_and_takes_bookings_only_once_its_email_is_verified() {
    let graph = FakeGraph::start().await;
    let app = spawn_command_api_with_graph(&graph.base_url).await;
    let t = e2e_tests::tenant::Tenant {
        owner: app.onboard_unverified("unverified-salon").await,
        app: &app,
    };
    let unverified = |status: u16, body: &Value| {
        status == 403
            && body["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("email-unverified"))
    };
    let (status, body) = connect(&app, &t.owner, FAKE_TOKEN, FAKE_NUMBER_ID).await;
    assert!(unverified(status, &body), "{status} {body}");
    // The configuration can be prepared meanwhile; a booking cannot be taken.
    let (status, _, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(e2e_tests::tenant::settings()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, service) = t
        .send(
            reqwest::Method::POST,
            "/v1/services",
            &[],
            Some(e2e_tests::tenant::haircut()),
        )
        .await;
    assert_eq!(status, 201, "{service}");
    let start = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(10, 0, 0)
        .unwrap()
        .and_utc();
    let booking = json!({"service_id": service["service_id"], "start": start.to_rfc3339(),
        "customer": {"phone": "+34600111222"}});
    let book = || {
        t.send(
            reqwest::Method::POST,
            "/v1/bookings",
            &[],
            Some(booking.clone()),
        )
    };
    let (status, _, body) = book().await;
    assert!(unverified(status, &body), "{status} {body}");

    // Another link, then the one emailed at sign-up: any unexpired link verifies, once.
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/auth/verify-email/resend",
            &[],
            None,
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let superuser = app.db.superuser_url_pool().await;
    let sealed: Vec<Vec<u8>> = sqlx::query_scalar(
        "select token_enc from email_verifications where token_enc is not null
          order by created_at",
    )
    .fetch_all(&superuser)
    .await
    .unwrap();
    assert_eq!(sealed.len(), 2, "one link at sign-up, one asked for");
    let sealer = vault::Sealer::from_base64(e2e_tests::TEST_ENCRYPTION_KEY).unwrap();
    let first = String::from_utf8(sealer.open(&sealed[0]).unwrap()).unwrap();
    for token in ["not-a-token".to_owned(), format!("{first}x")] {
        let refused = app
            .post("/v1/auth/verify-email", &json!({"token": token}))
            .await;
        assert_eq!(refused.status().as_u16(), 422);
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "token");
    }
    let verified = app
        .post("/v1/auth/verify-email", &json!({"token": first}))
        .await;
    assert_eq!(verified.status().as_u16(), 200);
    let again = app
        .post("/v1/auth/verify-email", &json!({"token": first}))
        .await;
    assert_eq!(again.status().as_u16(), 422, "a link works once");
    let events: Vec<String> = sqlx::query_scalar(
        "select event_type from events where stream_type = 'tenant' order by version",
    )
    .fetch_all(&superuser)
    .await
    .unwrap();
    assert_eq!(
        events,
        [
            "TenantOnboarded",
            "EmailVerificationRequested",
            "EmailVerificationRequested",
            "EmailVerified"
        ]
    );
    let log: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&superuser)
        .await
        .unwrap();
    assert!(
        log.iter().all(|p| !p.contains(&first)),
        "no token in events"
    );

    let (status, body) = connect(&app, &t.owner, FAKE_TOKEN, FAKE_NUMBER_ID).await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = book().await;
    assert_eq!(status, 201, "{body}");
    let (status, _, _) = t
        .send(
            reqwest::Method::POST,
            "/v1/auth/verify-email/resend",
            &[],
            None,
        )
        .await;
    assert_eq!(status, 409, "verified already");
}
