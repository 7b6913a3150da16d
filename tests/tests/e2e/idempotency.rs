//! `Idempotency-Key` on every authenticated POST: a retry gets the first answer and writes
//! nothing; another request under the same key is refused; answers that a retry should not
//! repeat (a conflict) are not kept; stored answers are sealed.

use e2e_tests::spawn_command_api;
use e2e_tests::tenant::{Tenant, slot};
use serde_json::json;

/// How many events of `event_type` the log holds (every tenant's: each test has its database).
async fn events_of_type(pool: &sqlx::PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar("select count(*) from events where event_type = $1")
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_retried_post_gets_its_first_answer_and_writes_nothing_new() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("idem-salon").await,
        app: &app,
    };
    let operator = app.db.operator_pool().await;
    let count = |event_type: &'static str| events_of_type(&operator, event_type);
    let key = |k: &'static str| [("idempotency-key", k)];

    // An API key, created twice under one key: one key, shown identically both times.
    let body = json!({"name": "Website", "scopes": ["read_bookings"]});
    let (s1, h1, first) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &key("key-1"),
            Some(body.clone()),
        )
        .await;
    let (s2, h2, second) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &key("key-1"),
            Some(body),
        )
        .await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first, second);
    assert!(h1.get("idempotent-replayed").is_none());
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(count("ApiKeyIssued").await, 1);
    // Kept sealed: the secret is not in the table.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("select response_enc from idempotency_keys")
        .fetch_all(&app.db.superuser_url_pool().await)
        .await
        .unwrap();
    let secret = first["key"].as_str().unwrap().as_bytes();
    assert!(
        stored
            .iter()
            .all(|s| !s.windows(secret.len()).any(|w| w == secret))
    );

    // An invitation, a cancellation: the same.
    let invite = json!({"email": "staff@idem.example", "role": "staff"});
    let (_, _, a) = t
        .send(
            reqwest::Method::POST,
            "/v1/users",
            &key("inv-1"),
            Some(invite.clone()),
        )
        .await;
    let (_, _, b) = t
        .send(
            reqwest::Method::POST,
            "/v1/users",
            &key("inv-1"),
            Some(invite),
        )
        .await;
    assert_eq!(a["invitation_token"], b["invitation_token"]);
    assert_eq!(
        count("UserInvited").await,
        2,
        "the owner and one invitation"
    );
    let service = t.configured().await;
    let (_, booked) = t.book(&service, &slot(10), "+34600000001", None).await;
    let cancel = format!(
        "/v1/bookings/{}/cancel",
        booked["booking_id"].as_str().unwrap()
    );
    let (c1, _, first) = t
        .send(
            reqwest::Method::POST,
            &cancel,
            &key("cancel-1"),
            Some(json!({})),
        )
        .await;
    let (c2, _, second) = t
        .send(
            reqwest::Method::POST,
            &cancel,
            &key("cancel-1"),
            Some(json!({})),
        )
        .await;
    assert_eq!((c1, c2), (200, 200), "{first} {second}");
    assert_eq!(first, second);
    assert_eq!(count("AppointmentCancelled").await, 1);

    // The same key for another request.
    let (status, _, problem) = t
        .send(
            reqwest::Method::POST,
            &cancel,
            &key("key-1"),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");

    // A conflict is not kept: once the slot is free, the same request under the same key books.
    let (_, taken) = t.book(&service, &slot(12), "+34600000002", None).await;
    let (status, _) = t
        .book(&service, &slot(12), "+34600000003", Some("late-1"))
        .await;
    assert_eq!(status, 409);
    let cancel_taken = format!(
        "/v1/bookings/{}/cancel",
        taken["booking_id"].as_str().unwrap()
    );
    assert_eq!(
        t.send(reqwest::Method::POST, &cancel_taken, &[], Some(json!({})))
            .await
            .0,
        200
    );
    let (status, body) = t
        .book(&service, &slot(12), "+34600000003", Some("late-1"))
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn a_key_reused_by_another_credential_for_another_command_is_refused_not_a_500() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("idem-shared").await,
        app: &app,
    };
    let service = t.configured().await;
    // A booking left to confirm.
    let (status, _, booked) = t
        .send(
            reqwest::Method::POST,
            "/v1/bookings",
            &[],
            Some(
                json!({"service_id": service, "start": slot(10), "confirm": false,
                "customer": {"phone": "+34600000001"}}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{booked}");
    let booking = booked["booking_id"].as_str().unwrap();
    // A second credential of the same business: stored answers are kept per credential, so
    // the same key from it reaches the use case itself.
    let (_, _, key) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "Front desk", "scopes": ["write_bookings"]})),
        )
        .await;
    let api_key = key["key"].as_str().unwrap();
    let shared = [("idempotency-key", "front-desk-7")];
    let (status, _, confirmed) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{booking}/confirm"),
            &shared,
            None,
        )
        .await;
    assert_eq!(status, 200, "{confirmed}");
    // The same key, another command on the same booking: part of its events would reuse the
    // first command's ids.
    let (status, _, problem) = t
        .send_as(
            api_key,
            reqwest::Method::POST,
            &format!("/v1/bookings/{booking}/cancel"),
            &shared,
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "Idempotency-Key");
    let (status, _, _) = t
        .send_as(
            api_key,
            reqwest::Method::POST,
            &format!("/v1/bookings/{booking}/cancel"),
            &[("idempotency-key", "front-desk-8")],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "with a key of its own it cancels");
}

#[tokio::test]
async fn a_key_whose_request_was_cut_off_is_free_again_once_the_time_limit_has_passed() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("cut-salon").await,
        app: &app,
    };
    let service = t.configured().await;
    let superuser = app.db.superuser_url_pool().await;
    let (status, first) = t
        .book(&service, &slot(10), "+34600000001", Some("cut-1"))
        .await;
    assert_eq!(status, 201, "{first}");
    // As a request cut off after its claim (its process killed mid-way) leaves the key: a
    // claim without an answer, `age` seconds old.
    let cut_off = |age: u64| {
        let superuser = superuser.clone();
        async move {
            sqlx::query(
                "update idempotency_keys set status = null, response_enc = null,
                        created_at = now() - make_interval(secs => $1)",
            )
            .bind(age as f64)
            .execute(&superuser)
            .await
            .unwrap();
        }
    };
    // Younger than the time limit (30 s): it may still be running; the retry waits.
    cut_off(10).await;
    let (status, body) = t
        .book(&service, &slot(10), "+34600000001", Some("cut-1"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("in progress"));
    // Past the limit it cannot be: the retry runs, and finds what the first one committed.
    cut_off(36).await;
    let (status, again) = t
        .book(&service, &slot(10), "+34600000001", Some("cut-1"))
        .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["booking_id"], first["booking_id"]);
    assert_eq!(events_of_type(&superuser, "AppointmentRequested").await, 1);

    // A move and a cancellation cut off after their commit: their retries find the booking
    // moved and cancelled by themselves, and answer as the first runs did, not "already
    // there" or "already cancelled" (a client would think its request had failed).
    let id = first["booking_id"].as_str().unwrap();
    let (path, key) = (
        format!("/v1/bookings/{id}/reschedule"),
        [("idempotency-key", "move-1")],
    );
    let moved = json!({"start": slot(11)});
    let (status, _, first_move) = t
        .send(reqwest::Method::POST, &path, &key, Some(moved.clone()))
        .await;
    assert_eq!(status, 200, "{first_move}");
    cut_off(36).await;
    let (status, _, again) = t
        .send(reqwest::Method::POST, &path, &key, Some(moved))
        .await;
    assert_eq!((status, &again), (200, &first_move));

    let (path, key) = (
        format!("/v1/bookings/{id}/cancel"),
        [("idempotency-key", "cancel-1")],
    );
    let (status, _, cancelled) = t
        .send(reqwest::Method::POST, &path, &key, Some(json!({})))
        .await;
    assert_eq!(status, 200, "{cancelled}");
    cut_off(36).await;
    let (status, _, again) = t
        .send(reqwest::Method::POST, &path, &key, Some(json!({})))
        .await;
    assert_eq!((status, &again), (200, &cancelled));
    // Under another key the booking is cancelled already: that is refused.
    let (status, _, refused) = t
        .send(
            reqwest::Method::POST,
            &path,
            &[("idempotency-key", "cancel-2")],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 409, "{refused}");
    let count = |event_type: &'static str| events_of_type(&superuser, event_type);
    assert_eq!(count("AppointmentRescheduled").await, 1);
    assert_eq!(count("AppointmentCancelled").await, 1);
}
