//! A customer's own "delete my data" on WhatsApp, over the real APIs, the projector's sender,
//! notifier and projections and the fake Cloud API: where the business chose so, the customer
//! is told and then erased (their key gone, every read model scrubbed); by default the request
//! waits in the business's inbox, its owner is emailed, and the business erases them.

use std::time::Duration;

use e2e_tests::eventually;
use serde_json::{Value, json};
use smtp_sink::Sink;

use crate::privacy::assert_nothing_names;
use crate::takeover::{World, world_tuned};

const WAIT: Duration = Duration::from_secs(20);

/// The business's choice for "delete my data" (`ask_business`, `erase_at_once`).
async fn choose(w: &World, choice: &str) {
    let saved = eventually(WAIT, || async {
        let (_, config) = w.query.get("/v1/bot-config", &w.owner, None).await;
        let version = config["version"].as_i64()?;
        let mut settings = config["settings"].clone();
        settings.as_object()?;
        settings["privacy"] = json!({ "erasure_requests": choice });
        let put = w
            .app
            .client
            .put(format!("{}/v1/bot-config", w.app.address))
            .bearer_auth(&w.owner)
            .header("if-match", format!("\"{version}\""))
            .json(&settings)
            .send()
            .await
            .unwrap();
        (put.status().as_u16() == 200).then_some(())
    })
    .await;
    assert!(saved.is_some(), "the configuration takes {choice}");
}

async fn keys_of(superuser: &sqlx::PgPool, phone: &str) -> i64 {
    sqlx::query_scalar("select count(*) from customer_keys where phone = $1")
        .bind(format!("+{phone}"))
        .fetch_one(superuser)
        .await
        .unwrap()
}

async fn inbox(w: &World, query: &str) -> Vec<Value> {
    let (status, page) = w
        .query
        .get(&format!("/v1/conversations{query}"), &w.owner, None)
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().unwrap().clone()
}

/// The customer heard `marker` (in any reply).
async fn told(w: &World, phone: &str, marker: &str) -> String {
    eventually(WAIT, || async {
        w.received(phone).into_iter().find(|t| t.contains(marker))
    })
    .await
    .unwrap_or_else(|| panic!("{phone} never heard {marker:?}: {:?}", w.received(phone)))
}

#[tokio::test]
async fn a_customer_who_asks_is_told_and_erased_once_the_confirmation_went_where_the_business_chose_so()
 {
    let w = world_tuned("forget-at-once", |_| {}).await;
    choose(&w, "erase_at_once").await;
    let zoe = "34600000042";
    w.say(zoe, "hello, Zenobia here").await;
    told(&w, zoe, "Welcome").await;
    let superuser = w.app.db.superuser_url_pool().await;
    assert_eq!(keys_of(&superuser, zoe).await, 1);

    w.say(zoe, "please delete my data").await;
    let confirmation = told(&w, zoe, "is deleting everything it holds about you").await;
    assert!(confirmation.contains("last message"), "{confirmation}");
    // Erased when the confirmation's outcome is recorded: the key goes, and the read models
    // follow.
    let erased = eventually(WAIT, || async {
        (keys_of(&superuser, zoe).await == 0).then_some(())
    })
    .await;
    assert!(erased.is_some(), "the customer's key is deleted");
    e2e_tests::wait_for_projections(&superuser).await;
    assert!(
        !inbox(&w, "")
            .await
            .iter()
            .any(|c| c["customer_phone"] == format!("+{zoe}")),
        "the inbox no longer shows them"
    );
    assert_nothing_names(&superuser, &[zoe, "Zenobia"]).await;
    let erasures: i64 = sqlx::query_scalar("select count(*) from customer_erasures")
        .fetch_one(&superuser)
        .await
        .unwrap();
    assert_eq!(erasures, 1);

    // Writing again, they are a new customer the bot greets.
    let before = w.received(zoe).len();
    w.say(zoe, "hi again").await;
    let again = eventually(WAIT, || async {
        let received = w.received(zoe);
        (received.len() > before).then(|| received[before..].join("\n"))
    })
    .await
    .expect("the bot answers a customer who comes back");
    assert!(again.contains("Welcome"), "{again}");
}

#[tokio::test]
async fn a_customer_who_asks_waits_for_the_business_which_is_emailed_and_erases_them_by_default() {
    let sink = Sink::new();
    let smtp_port = sink.clone().spawn().await;
    let w = world_tuned("forget-ask", |s| {
        s.notifier.smtp_url = format!("smtp://127.0.0.1:{smtp_port}").into();
        s.notifier.enabled = true;
    })
    .await;
    let bea = "34600000043";
    w.say(bea, "hola, soy Beatriz").await;
    w.say(bea, "borrar mis datos").await;
    told(&w, bea, "request to delete your data to").await;
    let conversation = w
        .conversation(bea, |c| !c["erasure_requested_at"].is_null())
        .await;
    let asked_at: chrono::DateTime<chrono::Utc> = conversation["erasure_requested_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(chrono::Utc::now() - asked_at < chrono::Duration::minutes(1));
    assert!(
        inbox(&w, "?waiting=true")
            .await
            .iter()
            .any(|c| c["customer_phone"] == format!("+{bea}")),
        "the request waits for a person"
    );
    // The owner is emailed once, with nothing of the customer in it.
    let mail = eventually(WAIT, || async {
        sink.to("owner@forget-ask.example")
            .into_iter()
            .find(|m| m.subject.contains("asked to have their data deleted"))
    })
    .await;
    let Some(mail) = mail else {
        let events = e2e_tests::wa::events(&w.app, "ErasureRequested").await;
        panic!("the owner is not emailed: {:?} {events:?}", sink.received());
    };
    assert!(mail.body.contains("one month"), "{}", mail.body);
    for clear in [bea, "Beatriz", "borrar"] {
        assert!(!mail.raw.contains(clear), "{clear} in {}", mail.raw);
    }
    // Nothing is erased until the business does it.
    let superuser = w.app.db.superuser_url_pool().await;
    e2e_tests::wait_for_projections(&superuser).await;
    assert_eq!(keys_of(&superuser, bea).await, 1);
    assert_eq!(
        sink.to("owner@forget-ask.example")
            .iter()
            .filter(|m| m.subject.contains("data deleted"))
            .count(),
        1
    );

    let erased = w
        .app
        .client
        .post(format!("{}/v1/customers/%2B{bea}/erase", w.app.address))
        .bearer_auth(&w.owner)
        .header("idempotency-key", "erase-bea")
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status().as_u16(), 200);
    e2e_tests::wait_for_projections(&superuser).await;
    assert!(
        inbox(&w, "?waiting=true")
            .await
            .iter()
            .all(|c| c["erasure_requested_at"].is_null()),
        "the request is done with the customer"
    );
    assert_nothing_names(&superuser, &[bea, "Beatriz", "borrar"]).await;
}
