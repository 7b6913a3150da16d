//! The platform as a new business meets it, over the real binaries started as processes with
//! real Postgres, NATS and Redis, and the fake Cloud API playing Meta: onboarding through the
//! API, a customer booking, rescheduling and cancelling over WhatsApp, tenants side by side,
//! a crowd racing for the same slots, and a projector and a NATS server failing mid-run.

use std::time::Duration;

use e2e_tests::eventually;
use e2e_tests::stack::{Business, Customer, Platform};
use serde_json::Value;
use testkit::{NatsServer, TestNats};

const WAIT: Duration = Duration::from_secs(30);

async fn bookings_of(p: &Platform, business: &Business, customer: &str) -> Vec<Value> {
    let (status, page) = p
        .read(
            &business.token,
            &format!(
                "/v1/bookings?customer=%2B{}",
                customer.trim_start_matches('+')
            ),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_business_onboards_and_a_customer_books_reschedules_and_cancels_over_whatsapp() {
    let nats = TestNats::new().await;
    let p = Platform::start(&nats.url, nats.ns.prefix(), "memory").await;
    let salon = p.business("e2e-salon", "100000000000101").await;
    let mut ana = Customer::new(&p, &salon, "+34600000101");

    let confirmation = ana.book_first_slot().await;
    assert!(confirmation.contains("Booked!"), "{confirmation}");
    let booked = eventually(WAIT, || async {
        let b = bookings_of(&p, &salon, "+34600000101").await;
        (b.len() == 1 && b[0]["status"] == "confirmed").then_some(b)
    })
    .await
    .expect("the booking shows in the query API");
    let first_start = booked[0]["starts_at"].clone();

    ana.say("reschedule").await;
    ana.tap(1).await; // the booking
    ana.tap(2).await; // another day
    let moved = ana.tap(1).await; // its first time
    assert!(!moved.is_empty());
    assert!(ana.last_text().contains("is now on"), "{}", ana.last_text());
    eventually(WAIT, || async {
        let b = bookings_of(&p, &salon, "+34600000101").await;
        (b.len() == 1 && b[0]["starts_at"] != first_start).then_some(())
    })
    .await
    .expect("the new time shows in the query API");

    ana.say("cancel").await;
    ana.tap(1).await;
    assert!(
        ana.last_text().contains("is cancelled"),
        "{}",
        ana.last_text()
    );
    eventually(WAIT, || async {
        let b = bookings_of(&p, &salon, "+34600000101").await;
        (b.len() == 1 && b[0]["status"] == "cancelled").then_some(())
    })
    .await
    .expect("the cancellation shows in the query API");

    // The conversation, every reply delivered and read, is in the inbox once projected.
    let delivered = p.received("+34600000101").await.len();
    eventually(WAIT, || async {
        let (status, conversation) = p
            .read(&salon.token, "/v1/conversations/%2B34600000101")
            .await;
        let outbound: Vec<Value> = conversation["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["direction"] == "out")
            .collect();
        (status == 200
            && outbound.len() == delivered
            && outbound.iter().all(|m| m["status"] == "read"))
        .then_some(())
    })
    .await
    .expect("the inbox shows every reply, read");
}

#[tokio::test]
async fn two_businesses_at_once_never_see_each_others_data() {
    let nats = TestNats::new().await;
    let p = Platform::start(&nats.url, nats.ns.prefix(), "memory").await;
    let (a, b) = tokio::join!(
        p.business("e2e-north", "100000000000201"),
        p.business("e2e-south", "100000000000202")
    );
    let (mut ca, mut cb) = (
        Customer::new(&p, &a, "+34600000201"),
        Customer::new(&p, &b, "+34600000202"),
    );
    let (ta, tb) = tokio::join!(ca.book_first_slot(), cb.book_first_slot());
    assert!(
        ta.contains("Booked!") && tb.contains("Booked!"),
        "{ta}\n{tb}"
    );
    let (a_bookings, b_bookings) = eventually(WAIT, || async {
        let (_, pa) = p.read(&a.token, "/v1/bookings").await;
        let (_, pb) = p.read(&b.token, "/v1/bookings").await;
        let (pa, pb) = (pa["items"].clone(), pb["items"].clone());
        (pa.as_array().map(Vec::len) == Some(1) && pb.as_array().map(Vec::len) == Some(1))
            .then_some((pa, pb))
    })
    .await
    .expect("each business sees its one booking");
    assert_eq!(a_bookings[0]["customer_phone"], "+34600000201");
    assert_eq!(b_bookings[0]["customer_phone"], "+34600000202");
    let a_id = a_bookings[0]["booking_id"].as_str().unwrap();
    assert_eq!(
        p.read(&b.token, &format!("/v1/bookings/{a_id}")).await.0,
        404
    );
    assert_eq!(
        p.read(&b.token, "/v1/conversations/%2B34600000201").await.0,
        404
    );
    let (_, inbox) = p.read(&a.token, "/v1/conversations").await;
    assert_eq!(inbox["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_crowd_racing_for_the_same_slots_never_double_books() {
    // 20 businesses by default (five customers racing in each, twenty businesses at once):
    // every customer now books, so each race runs to the end, on debug binaries sharing two
    // cores with the rest of the suite; `E2E_RACE_TENANTS=100` for the larger crowd.
    let tenants: usize = std::env::var("E2E_RACE_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let customers = 5;
    let nats = TestNats::new().await;
    let p = Platform::start(&nats.url, nats.ns.prefix(), "memory").await;
    let businesses: Vec<Business> = futures::future::join_all((0..tenants).map(|i| {
        let p = &p;
        async move {
            p.business(
                &format!("race-{i}"),
                &format!("{}", 100_000_000_100_000u64 + i as u64),
            )
            .await
        }
    }))
    .await;
    // Every customer of a business goes for its first free slot at the same time; businesses
    // run 20 at a time (the race is within a business: its agenda).
    use futures::StreamExt as _;
    let outcomes: Vec<(usize, String)> = futures::stream::iter(businesses.iter().enumerate())
        .map(|(i, b)| {
            let p = &p;
            async move {
                futures::future::join_all((0..customers).map(|c| async move {
                    let mut customer = Customer::new(p, b, &format!("+346{i:04}{c:04}"));
                    (i, customer.book_first_slot().await)
                }))
                .await
            }
        })
        .buffer_unordered(20)
        .flat_map(futures::stream::iter)
        .collect()
        .await;
    for i in 0..tenants {
        let texts: Vec<&String> = outcomes
            .iter()
            .filter(|(t, _)| *t == i)
            .map(|(_, s)| s)
            .collect();
        let booked = texts.iter().filter(|t| t.contains("Booked!")).count();
        assert_eq!(
            booked, customers,
            "business {i}: every customer is booked (a time taken meanwhile is replaced by the nearest one): {texts:?}"
        );
    }
    // No two active bookings of a business overlap (the agenda invariant), as the read side
    // shows it once it has caught up.
    let superuser = p.db.superuser_url_pool().await;
    assert_eq!(e2e_tests::overlapping_bookings(&superuser).await, 0);
    let booked_in_log: i64 =
        sqlx::query_scalar("select count(*) from events where event_type = 'AppointmentRequested'")
            .fetch_one(&superuser)
            .await
            .unwrap();
    let confirmations = outcomes
        .iter()
        .filter(|(_, t)| t.contains("Booked!"))
        .count();
    assert_eq!(booked_in_log as usize, confirmations);
}

async fn round(p: &Platform, businesses: &[Business], round: usize) {
    futures::future::join_all(businesses.iter().enumerate().map(|(i, b)| async move {
        let mut c = Customer::new(p, b, &format!("+3470{round}{i:03}"));
        c.book_first_slot().await
    }))
    .await;
}

#[tokio::test]
async fn a_killed_projector_and_a_restarted_nats_lose_nothing() {
    let mut server = NatsServer::start();
    let namespace = nats::Namespace::unique();
    let mut p = Platform::start(&server.url(), namespace.prefix(), "file").await;
    let businesses: Vec<Business> = futures::future::join_all((0..6).map(|i| {
        let p = &p;
        async move {
            p.business(
                &format!("fault-{i}"),
                &format!("{}", 100_000_000_200_000u64 + i),
            )
            .await
        }
    }))
    .await;
    round(&p, &businesses, 1).await;
    // The projector dies mid-run (SIGKILL) and comes back.
    let traffic = tokio::spawn({
        let customers: Vec<(String, String)> = businesses
            .iter()
            .enumerate()
            .map(|(i, b)| (b.number.clone(), format!("3471{i:07}")))
            .collect();
        let fake = p.fake.clone();
        async move {
            let client = reqwest::Client::new();
            for text in ["hi", "prices", "hours"] {
                for (number, from) in &customers {
                    client
                        .post(format!("{fake}/_fake/inbound"))
                        .json(&serde_json::json!({"phone_number_id": number, "from": from, "text": text}))
                        .send()
                        .await
                        .unwrap();
                }
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    p.kill("projector").await;
    traffic.await.unwrap();
    p.spawn("projector").await;
    round(&p, &businesses, 2).await;
    // NATS restarts; commands keep working meanwhile (the relay catches up after).
    server.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    round(&p, &businesses, 3).await;

    // Every reply gets an outcome, and none is sent twice (only a send the SIGKILL cut off
    // mid-call may be missing at the fake).
    let settled = p.replies_settled(Duration::from_secs(120)).await;
    assert!(
        settled.iter().map(|r| r.sent).sum::<i64>() > 0,
        "replies went out across the faults"
    );
    let superuser = p.db.superuser_url_pool().await;
    e2e_tests::assert_read_models_equal_a_rebuild(&p.db, &superuser).await;
}
