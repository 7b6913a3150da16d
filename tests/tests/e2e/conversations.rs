//! The conversation as customers live it, over the command API's webhook with Meta's shapes:
//! a herd on one slot, a fast tapper, a flood, and reservations that run out.

use std::time::Duration;

use e2e_tests::wa::*;
use e2e_tests::{conversation_clock, eventually, projector_settings, spawn_projector};
use futures::future::join_all;
use serde_json::Value;

/// How one customer's booking went.
#[derive(Debug)]
struct Booked {
    messages: usize,
    /// Times the customer was told a time was just taken, when choosing one.
    taken_at_time_step: usize,
    /// Times the customer was told so after the time step (the confirmation): never.
    taken_after_time_step: usize,
}

/// `me` books taking the first time offered each time, as a customer in a hurry would: from
/// "hi", picking the first service, day and time, and confirming.
async fn book_first_offered(s: &Setup, me: &str, name: &str) -> Booked {
    let mut booked = Booked {
        messages: 0,
        taken_at_time_step: 0,
        taken_after_time_step: 0,
    };
    let mut message = e2e_tests::wa::text(me, &format!("{me}.0"), "hi");
    for n in 1..=30 {
        deliver(&s.app, &notification_from(me, name, vec![message.clone()])).await;
        booked.messages += 1;
        let wamid = message["id"].as_str().unwrap().to_owned();
        let replies = replies_to(&s.app, &wamid).await;
        let said: String = replies
            .iter()
            .map(|r| r["body"].as_str().unwrap_or_default())
            .collect::<Vec<_>>()
            .join(" | ");
        let confirming = message["interactive"]["button_reply"]["id"] == "confirm";
        if said.contains("was just taken") {
            if confirming {
                booked.taken_after_time_step += 1;
            } else {
                booked.taken_at_time_step += 1;
            }
        }
        if said.contains("Booked!") {
            return booked;
        }
        let choices = replies.last().map(offered).unwrap_or_default();
        let pick = choices
            .iter()
            .find(|(id, _)| id == "confirm")
            .or_else(|| {
                choices.iter().find(|(id, _)| {
                    ["svc:", "day:", "time:"].iter().any(|p| id.starts_with(p))
                        && !id.contains(":more:")
                        && id != "day:again"
                })
            })
            .unwrap_or_else(|| panic!("{me}: nothing to pick in {said:?} after {booked:?}"));
        let kind = if replies.last().unwrap()["kind"] == "buttons" {
            "button_reply"
        } else {
            "list_reply"
        };
        let id = format!("{me}.{n}");
        message = if kind == "button_reply" {
            button_reply(me, &id, &pick.0, &pick.1)
        } else {
            list_reply(me, &id, &pick.0, &pick.1)
        };
    }
    panic!("{me} did not book in 30 messages");
}

#[tokio::test]
async fn a_herd_of_forty_on_the_first_slot_all_book_and_none_loses_it_after_choosing() {
    let s = setup().await;
    let herd = (0..40).map(|i| format!("3460010{i:04}"));
    let herd: Vec<String> = herd.collect();
    let results = join_all(
        herd.iter()
            .map(|me| book_first_offered(&s, me, "Herd customer")),
    )
    .await;
    assert_eq!(results.len(), 40);
    for (me, booked) in herd.iter().zip(&results) {
        assert_eq!(booked.taken_after_time_step, 0, "{me}: {booked:?}");
    }
    assert_eq!(events(&s.app, "AppointmentRequested").await.len(), 40);
    let starts: std::collections::HashSet<String> = events(&s.app, "SlotHeld")
        .await
        .iter()
        .map(|e| e["interval"]["start"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(starts.len(), 40, "forty different times, no overlap");
    let total: usize = results.iter().map(|b| b.messages).sum();
    let retried: usize = results.iter().map(|b| b.taken_at_time_step).sum();
    println!(
        "herd of 40: {:.2} customer messages per booking, {retried} told at the time step",
        total as f64 / 40.0
    );
    // The profile name went on each booking; nobody was asked.
    assert!(
        events(&s.app, "AppointmentRequested")
            .await
            .iter()
            .all(|e| e["customer"]["name"] == "Herd customer")
    );
}

#[tokio::test]
async fn a_customer_tapping_every_200_ms_through_the_longest_flow_is_never_held_back() {
    let s = setup().await;
    let me = "34600200001";
    let mut n = 0;
    let mut send = async |message: Value| {
        n += 1;
        deliver(&s.app, &notification_from(me, "Quick", vec![message])).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wamid = |n: usize| format!("quick.{n}");
    send(text(me, &wamid(1), "hi")).await;
    send(text(me, &wamid(2), "prices")).await;
    send(text(me, &wamid(3), "hours")).await;
    let pick = async |prefix: &str| {
        last_choices(&s.app, &format!("+{me}"))
            .await
            .into_iter()
            .find(|(id, _)| id.starts_with(prefix))
            .unwrap()
    };
    let (id, title) = pick("svc:").await;
    send(list_reply(me, &wamid(4), &id, &title)).await;
    let (id, title) = pick("day:more").await;
    send(list_reply(me, &wamid(5), &id, &title)).await;
    let (id, title) = pick("day:").await;
    send(list_reply(me, &wamid(6), &id, &title)).await;
    let (id, title) = pick("time:more").await;
    send(list_reply(me, &wamid(7), &id, &title)).await;
    let (id, title) = pick("time:").await;
    send(list_reply(me, &wamid(8), &id, &title)).await;
    send(button_reply(me, &wamid(9), "change", "Change")).await;
    send(button_reply(me, &wamid(10), "change:name", "My name")).await;
    send(text(me, &wamid(11), "Quick Silver")).await;
    send(text(me, &wamid(12), "my bookings")).await;
    send(button_reply(me, &wamid(13), "confirm", "Confirm")).await;
    assert_eq!(n, 13);

    assert!(
        events(&s.app, "AnswerDeferred").await.is_empty(),
        "never held back"
    );
    for i in 1..=13 {
        assert!(
            !replies_to(&s.app, &wamid(i)).await.is_empty(),
            "message {i} was answered at once"
        );
    }
    let said = last_text(&s.app, &format!("+{me}")).await;
    assert!(said.starts_with("Booked!"), "{said}");
    assert_eq!(
        events(&s.app, "AppointmentRequested").await[0]["customer"]["name"],
        "Quick Silver"
    );
}

#[tokio::test]
async fn a_flood_is_cut_and_recorded_with_one_notice_and_the_latest_message_answered_later() {
    // A burst of 20 and one message a minute after it: over a flood that takes less than a
    // minute to deliver (even on a loaded machine), at most one token refills, so the counts
    // below hold whatever the machine's speed.
    let s = setup_tuned(|settings| {
        settings.limits.webhook_per_phone_per_minute = 1;
        settings.limits.webhook_per_phone_burst = 20;
    })
    .await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let me = "34600300001";
    let started = std::time::Instant::now();
    // A hundred messages, then the one the customer wants answered: the refill that may have
    // come during the flood went to a message before it, so it waits.
    for n in 0..=100 {
        let body = if n == 100 { "hi" } else { "spam" };
        deliver(
            &s.app,
            &notification_from(me, "Flood", vec![text(me, &format!("flood.{n}"), body)]),
        )
        .await;
    }
    let received = events(&s.app, "MessageReceived").await;
    assert_eq!(received.len(), 101, "every message is recorded");
    let refilled = started.elapsed().as_secs() / 60 + 1;
    let answered_at_most = 20 + refilled as usize;
    let deferred = events(&s.app, "AnswerDeferred").await;
    assert!(
        deferred.len() >= 101 - answered_at_most,
        "a flood is not answered one by one: {} deferred, at most {answered_at_most} answered",
        deferred.len()
    );
    let notices: Vec<Value> = events(&s.app, "BotReplied")
        .await
        .into_iter()
        .filter(|r| {
            r["reply"]["body"]
                .as_str()
                .is_some_and(|b| b.contains("answer your last message in a moment"))
        })
        .collect();
    assert_eq!(notices.len(), 1, "told once");
    // When the limit allows, the clock answers the latest message, once.
    let clock = conversation_clock(&s.app.db);
    let later = chrono::Utc::now() + chrono::Duration::minutes(2);
    eventually(Duration::from_secs(10), || async {
        (clock.run_once(later).await.unwrap().answered == 1).then_some(())
    })
    .await
    .expect("the latest message is answered");
    let late = replies_to(&s.app, "flood.100/late").await;
    assert!(
        late.iter()
            .any(|r| r["body"].as_str().unwrap_or_default().contains("Welcome")),
        "{late:?}"
    );
    assert_eq!(clock.run_once(later).await.unwrap().answered, 0, "once");
}

#[tokio::test]
async fn a_reservation_that_runs_out_is_expired_by_the_clock_and_the_time_is_free_again() {
    let s = setup().await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let me = "34600400001";
    let phone = format!("+{me}");
    let send = async |message: Value| {
        deliver(&s.app, &notification_from(me, "Slow", vec![message])).await;
    };
    send(text(me, "slow.1", "hi")).await;
    for (n, prefix) in [(2, "svc:"), (3, "day:"), (4, "time:")] {
        let (id, title) = last_choices(&s.app, &phone)
            .await
            .into_iter()
            .find(|(id, _)| id.starts_with(prefix))
            .unwrap();
        send(list_reply(me, &format!("slow.{n}"), &id, &title)).await;
    }
    assert_eq!(events(&s.app, "SlotReserved").await.len(), 1);
    let pool = s.app.db.superuser_url_pool().await;
    let held = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from rm_agenda where held_until is not null")
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    eventually(Duration::from_secs(10), || async {
        (held().await == 1).then_some(())
    })
    .await
    .expect("the reservation is projected");

    let clock = conversation_clock(&s.app.db);
    assert_eq!(
        clock.run_once(chrono::Utc::now()).await.unwrap().expired,
        0,
        "not yet due"
    );
    let later = chrono::Utc::now() + chrono::Duration::minutes(11);
    assert_eq!(clock.run_once(later).await.unwrap().expired, 1);
    assert_eq!(events(&s.app, "ReservationExpired").await.len(), 1);
    eventually(Duration::from_secs(10), || async {
        (held().await == 0).then_some(())
    })
    .await
    .expect("the time is free again in the read model");
    assert_eq!(clock.run_once(later).await.unwrap().expired, 0, "once");
}

#[tokio::test]
async fn a_full_calendar_offers_the_waitlist_and_a_cancellation_goes_to_the_first_who_takes_it() {
    let s = setup().await;
    // One appointment a day (08:00-09:00, 45 minutes), bookable two days ahead.
    let hour = serde_json::json!([{"open": "08:00", "close": "09:00"}]);
    reconfigure(
        &s,
        &serde_json::json!({
            "time_zone": "UTC",
            "hours": {"monday": hour, "tuesday": hour, "wednesday": hour, "thursday": hour,
                "friday": hour, "saturday": hour, "sunday": hour},
            "rules": {"min_notice_minutes": 60, "horizon_days": 2, "slot_step_minutes": 15},
            "payment_methods": [{"kind": "cash"}],
        }),
    )
    .await;
    let service_id = events(&s.app, "ServiceAdded").await[0]["service"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let book =
        async |day: chrono::NaiveDate| {
            let response = s
            .app
            .client
            .post(format!("{}/v1/bookings", s.app.address))
            .bearer_auth(&s.owner.access_token)
            .json(&serde_json::json!({"service_id": service_id, "start": format!("{day}T08:00:00Z"),
                "customer": {"phone": "+34600900001", "name": "Pablo"}}))
            .send()
            .await
            .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        };
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    let (status, pablo) = book(tomorrow).await;
    assert_eq!(status, 201, "{pablo}");
    // Today's is past or too soon, or booked; the day after tomorrow's is past the horizon at
    // this hour, or booked: whatever the time of day, nothing is free. Tomorrow's is inside
    // the horizon at any hour, so the cancellation below frees a time the bot can offer.
    book(today).await;
    book(tomorrow.succ_opt().unwrap()).await;

    // Two customers find nothing free and join the waitlist, in this order.
    for (me, name) in [("34600900002", "Marta"), ("34600900003", "Lucia")] {
        let phone = format!("+{me}");
        deliver(
            &s.app,
            &notification_from(me, name, vec![text(me, &format!("{me}.1"), "hi")]),
        )
        .await;
        let (id, title) = last_choices(&s.app, &phone).await.remove(0);
        deliver(
            &s.app,
            &notification_from(
                me,
                name,
                vec![list_reply(me, &format!("{me}.2"), &id, &title)],
            ),
        )
        .await;
        let choices = last_choices(&s.app, &phone).await;
        let (id, title) = choices
            .iter()
            .find(|(id, _)| id == "waitlist:join")
            .unwrap_or_else(|| panic!("the waitlist is offered: {choices:?}"))
            .clone();
        deliver(
            &s.app,
            &notification_from(
                me,
                name,
                vec![button_reply(me, &format!("{me}.3"), &id, &title)],
            ),
        )
        .await;
        assert!(last_text(&s.app, &phone).await.contains("on the waitlist"));
    }
    assert_eq!(events(&s.app, "CustomerWaitlisted").await.len(), 2);

    // The business cancels Pablo's booking: both hear of the time, in the order they joined.
    let cancelled = s
        .app
        .client
        .post(format!(
            "{}/v1/bookings/{}/cancel",
            s.app.address,
            pablo["booking_id"].as_str().unwrap()
        ))
        .bearer_auth(&s.owner.access_token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(cancelled.status().as_u16(), 200);
    let offers: Vec<Value> = events(&s.app, "BotReplied")
        .await
        .into_iter()
        .filter(|r| r["reply_id"].as_str().unwrap().starts_with("waitlist/"))
        .collect();
    let to: Vec<&str> = offers.iter().map(|o| o["to"].as_str().unwrap()).collect();
    assert_eq!(to, ["+34600900002", "+34600900003"]);
    assert!(
        offers[0]["reply"]["body"]
            .as_str()
            .unwrap()
            .contains("has just become free")
    );

    // Marta takes it first and books it; Lucia is too late and books nothing.
    let app = &s.app;
    let take = |me: &'static str, n: u32| async move {
        let phone = format!("+{me}");
        let (id, title) = last_choices(app, &phone).await.remove(0);
        assert!(id.starts_with("wait:take:"), "{id}");
        deliver(
            app,
            &notification_from(
                me,
                "x",
                vec![button_reply(me, &format!("{me}.{n}"), &id, &title)],
            ),
        )
        .await;
    };
    take("34600900002", 4).await;
    deliver(
        &s.app,
        &notification_from(
            "34600900002",
            "Marta",
            vec![button_reply(
                "34600900002",
                "34600900002.5",
                "confirm",
                "Confirm",
            )],
        ),
    )
    .await;
    let marta = last_text(&s.app, "+34600900002").await;
    assert!(marta.contains("Booked!"), "{marta}");
    take("34600900003", 4).await;
    let lucia = last_text(&s.app, "+34600900003").await;
    assert!(!lucia.contains("Booked!"), "{lucia}");
    let booked: Vec<Value> = events(&s.app, "AppointmentRequested")
        .await
        .into_iter()
        .filter(|b| b["customer"]["phone"] != "+34600900001")
        .collect();
    assert_eq!(booked.len(), 1, "Marta's, besides Pablo's: {booked:?}");
    assert_eq!(booked[0]["customer"]["phone"], "+34600900002");
    assert_eq!(
        booked[0]["appointment"]["start"], pablo["start"],
        "the time Pablo's cancellation freed"
    );
    // Marta no longer waits; Lucia still does.
    let left = events(&s.app, "CustomerLeftWaitlist").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["phone"], "+34600900002");
}

#[tokio::test]
async fn a_full_horizon_offers_the_first_free_day_past_it_on_its_real_agenda() {
    let s = setup().await;
    // One appointment a day (08:00-09:00, 45 minutes), bookable until tomorrow, and up to
    // five days past that when those are full; closed the day after tomorrow.
    let today = chrono::Utc::now().date_naive();
    let closed = (today + chrono::Duration::days(2)).format("%A").to_string();
    let mut hours = serde_json::Map::new();
    for day in [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ] {
        let open = !day.eq_ignore_ascii_case(&closed);
        let ranges = if open {
            serde_json::json!([{"open": "08:00", "close": "09:00"}])
        } else {
            serde_json::json!([])
        };
        hours.insert(day.into(), ranges);
    }
    reconfigure(
        &s,
        &serde_json::json!({
            "time_zone": "UTC",
            "hours": hours,
            "rules": {"min_notice_minutes": 60, "horizon_days": 1, "slot_step_minutes": 15,
                "beyond_horizon_days": 5},
            "payment_methods": [{"kind": "cash"}],
        }),
    )
    .await;
    let service_id = events(&s.app, "ServiceAdded").await[0]["service"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for day in [today, today.succ_opt().unwrap()] {
        // Today's may be past already: either way nothing is free within the horizon.
        s.app
            .client
            .post(format!("{}/v1/bookings", s.app.address))
            .bearer_auth(&s.owner.access_token)
            .json(&serde_json::json!({"service_id": service_id,
                "start": format!("{day}T08:00:00Z"),
                "customer": {"phone": "+34600910001", "name": "Pablo"}}))
            .send()
            .await
            .unwrap();
    }
    let first_free_day = async |me: &str, n: u32| {
        let phone = format!("+{me}");
        deliver(
            &s.app,
            &notification_from(me, "x", vec![text(me, &format!("{me}.{n}"), "hi")]),
        )
        .await;
        let (id, title) = last_choices(&s.app, &phone).await.remove(0);
        deliver(
            &s.app,
            &notification_from(
                me,
                "x",
                vec![list_reply(me, &format!("{me}.{}", n + 1), &id, &title)],
            ),
        )
        .await;
        assert!(
            last_text(&s.app, &phone)
                .await
                .contains("The first free day is"),
            "{}",
            last_text(&s.app, &phone).await
        );
        last_choices(&s.app, &phone).await.remove(0)
    };
    // Marta is offered the first open day past the horizon and keeps its 08:00.
    let (id, title) = first_free_day("34600910002", 1).await;
    assert_eq!(id, format!("day:{}", today + chrono::Duration::days(3)));
    deliver(
        &s.app,
        &notification_from(
            "34600910002",
            "Marta",
            vec![list_reply("34600910002", "34600910002.3", &id, &title)],
        ),
    )
    .await;
    let times = last_choices(&s.app, "+34600910002").await;
    let (id, title) = times[0].clone();
    assert_eq!(title, "08:00", "{times:?}");
    deliver(
        &s.app,
        &notification_from(
            "34600910002",
            "Marta",
            vec![list_reply("34600910002", "34600910002.4", &id, &title)],
        ),
    )
    .await;
    assert_eq!(events(&s.app, "SlotReserved").await.len(), 1);
    // Lucia is offered the day after, since Marta's time fills that day's agenda (read past
    // the horizon).
    let (id, _) = first_free_day("34600910003", 1).await;
    assert_eq!(id, format!("day:{}", today + chrono::Duration::days(4)));
}
