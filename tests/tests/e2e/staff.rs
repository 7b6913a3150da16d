//! Staff over the binaries' code paths: two people whose hours differ, chosen by the customer
//! on WhatsApp or by the business over the API (by name or "anyone"), each on their own agenda,
//! and the query API's free times per person.

use std::time::Duration;

use e2e_tests::wa::*;
use e2e_tests::{
    eventually, projector_settings, query_api_settings, spawn_projector, spawn_query_api,
};
use serde_json::{Value, json};

/// Ana works mornings (08:00-13:00), Luis afternoons (14:00-20:00), every day, in UTC; both
/// cut hair.
async fn salon() -> Setup {
    let s = setup().await;
    let ana = json!([{"open": "08:00", "close": "13:00"}]);
    let luis = json!([{"open": "14:00", "close": "20:00"}]);
    let every = |r: &Value| json!({"monday": r, "tuesday": r, "wednesday": r, "thursday": r, "friday": r, "saturday": r, "sunday": r});
    let day = json!([{"open": "08:00", "close": "20:00"}]);
    let settings = json!({
        "time_zone": "UTC",
        "hours": every(&day),
        "payment_methods": [{"kind": "cash"}],
        "staff": [
            {"id": "ana", "name": "Ana", "hours": every(&ana)},
            {"id": "luis", "name": "Luis", "hours": every(&luis)},
        ],
    });
    reconfigure(&s, &settings).await;
    s
}

async fn book_over_api(s: &Setup, body: Value) -> (u16, Value) {
    let response = s
        .app
        .client
        .post(format!("{}/v1/bookings", s.app.address))
        .bearer_auth(&s.owner.access_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn two_staff_with_different_hours_are_chosen_by_name_or_anyone_each_on_their_own_agenda() {
    let s = salon().await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let me = "34600800001";
    let phone = format!("+{me}");
    let send = async |message: Value| {
        deliver(&s.app, &notification_from(me, "Marta", vec![message])).await;
    };
    // On WhatsApp: Haircut, then who: anyone or one of the two.
    send(text(me, "st.1", "hi")).await;
    let (id, title) = last_choices(&s.app, &phone).await.remove(0);
    send(list_reply(me, "st.2", &id, &title)).await;
    let who = last_choices(&s.app, &phone).await;
    let titles: Vec<&str> = who.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(titles, ["Anyone", "Ana", "Luis"]);
    let (id, title) = who[2].clone();
    send(button_reply(me, "st.3", &id, &title)).await;
    // Luis's days, then his times: afternoons only.
    let (id, title) = last_choices(&s.app, &phone)
        .await
        .into_iter()
        .find(|(id, _)| id.starts_with("day:") && id != "day:more:8")
        .unwrap();
    send(list_reply(me, "st.4", &id, &title)).await;
    let times: Vec<(String, String)> = last_choices(&s.app, &phone)
        .await
        .into_iter()
        .filter(|(id, _)| id.starts_with("time:") && !id.contains("more"))
        .collect();
    assert!(
        times.iter().all(|(_, t)| t.as_str() >= "14:00"),
        "Luis works afternoons: {times:?}"
    );
    let (id, title) = times[0].clone();
    send(list_reply(me, "st.5", &id, &title)).await;
    let summary = last_text(&s.app, &phone).await;
    assert!(summary.contains("With Luis."), "{summary}");
    send(button_reply(me, "st.6", "confirm", "Confirm")).await;
    let booked = events(&s.app, "AppointmentRequested").await;
    assert_eq!(booked.len(), 1);
    assert_eq!(booked[0]["resource"], "luis");
    let held = events(&s.app, "SlotHeld").await;
    assert!(held.iter().all(|h| h["resource"] == "luis"), "{held:?}");

    // Over the API: anyone at 09:00 is Ana (Luis does not work then), at 16:00 Luis; a name
    // the staff does not have is refused with the field at fault, and changes nothing.
    let service_id = {
        let pool = s.app.db.superuser_url_pool().await;
        eventually(Duration::from_secs(10), || async {
            sqlx::query_scalar::<_, uuid::Uuid>("select service_id from rm_services limit 1")
                .fetch_optional(&pool)
                .await
                .unwrap()
        })
        .await
        .expect("the service is projected")
    };
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let at = |hour: u32| format!("{tomorrow}T{hour:02}:00:00Z");
    let customer = json!({"phone": "+34600800002", "name": "Pablo"});
    let (status, body) = book_over_api(
        &s,
        json!({"service_id": service_id, "start": at(9), "customer": customer}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["resource"], "ana");
    let (status, body) = book_over_api(
        &s,
        json!({"service_id": service_id, "start": at(16), "customer": customer}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["resource"], "luis");
    // 09:00 again: Ana is taken and Luis does not work then.
    let (status, body) = book_over_api(
        &s,
        json!({"service_id": service_id, "start": at(9), "customer": customer}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = book_over_api(
        &s,
        json!({"service_id": service_id, "start": at(10), "customer": customer, "resource": "marco"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "resource", "{body}");
    assert_eq!(events(&s.app, "AppointmentRequested").await.len(), 3);

    // The query API says who is free when, and narrows to one person.
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let availability = |resource: Option<&str>| {
        let mut url = format!(
            "{}/v1/availability?service_id={service_id}&date={tomorrow}",
            query.address
        );
        if let Some(r) = resource {
            url.push_str(&format!("&resource={r}"));
        }
        let request = query
            .client
            .get(url)
            .bearer_auth(&s.owner.access_token)
            .send();
        async move { request.await.unwrap().json::<Value>().await.unwrap() }
    };
    let all = eventually(Duration::from_secs(10), || async {
        let all = availability(None).await;
        let slots = all["slots"].as_array().cloned().unwrap_or_default();
        // Ana's 09:00 booking is projected once 09:00 is gone.
        (!slots.is_empty() && !slots.iter().any(|s| s["start"] == at(9))).then_some(slots)
    })
    .await
    .expect("free times");
    assert!(all.iter().any(|s| s["resources"] == json!(["ana"])));
    assert!(all.iter().any(|s| s["resources"] == json!(["luis"])));
    // One column of the calendar: each person's bookings (once all three are projected).
    for (resource, count) in [("ana", 1), ("luis", 2), ("marco", 0)] {
        let url = format!("{}/v1/bookings?resource={resource}", query.address);
        let page = eventually(Duration::from_secs(10), || async {
            let page: Value = query
                .client
                .get(&url)
                .bearer_auth(&s.owner.access_token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (page["items"].as_array()?.len() == count).then_some(page)
        })
        .await
        .unwrap_or_else(|| panic!("{resource} never had {count} bookings"));
        let items = page["items"].as_array().unwrap();
        assert!(items.iter().all(|b| b["resource"] == resource), "{page}");
    }
    let ana = availability(Some("ana")).await;
    let ana = ana["slots"].as_array().unwrap();
    assert!(!ana.is_empty());
    assert!(
        ana.iter()
            .all(|s| s["local_start"].as_str().unwrap()[11..] < *"13:00"),
        "{ana:?}"
    );
}
