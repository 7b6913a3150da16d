//! Bot configuration, services and bookings through the command API.

use e2e_tests::tenant::{Tenant, haircut, settings, slot};
use e2e_tests::{CommandApp, spawn_command_api};
use serde_json::{Value, json};

async fn count(app: &CommandApp, event_type: &str) -> i64 {
    sqlx::query_scalar("select count(*) from events where event_type = $1")
        .bind(event_type)
        .fetch_one(&app.db.operator_pool().await)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_configuration_is_versioned_and_validated_field_by_field() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("demo-salon").await,
        app: &app,
    };
    let put = |if_match: Option<&'static str>, body: Value| {
        let headers: Vec<(&str, &str)> =
            if_match.map(|v| vec![("if-match", v)]).unwrap_or_default();
        let t = &t;
        async move {
            t.send(reqwest::Method::PUT, "/v1/bot-config", &headers, Some(body))
                .await
        }
    };
    assert_eq!(put(None, settings()).await.0, 428);
    let (status, headers, body) = put(Some("\"0\""), settings()).await;
    assert_eq!(
        (status, headers["etag"].to_str().unwrap()),
        (200, "\"1\""),
        "{body}"
    );
    let (status, _, body) = put(Some("\"0\""), settings()).await;
    assert_eq!(status, 412, "a stale version: {body}");

    let mut bad = settings();
    bad["hours"]["monday"] = json!([{"open": "12:00", "close": "10:00"}]);
    bad["time_zone"] = json!("UTC");
    let (status, _, body) = put(Some("\"1\""), bad).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "hours.monday[0]");

    let mut unparseable = settings();
    unparseable["hours"]["friday"][0]["close"] = json!("25:00");
    let (status, _, body) = put(Some("\"1\""), unparseable).await;
    assert_eq!(status, 422);
    assert_eq!(
        body["errors"][0]["field"], "hours.friday[0].close",
        "{body}"
    );
    // A field in the wrong place is named, not dropped.
    let mut misplaced = settings();
    misplaced["horizon_days"] = json!(60);
    let (status, _, body) = put(Some("\"1\""), misplaced).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("horizon_days")),
        "{body}"
    );
    assert_eq!(
        count(&app, "BotConfigured").await,
        1,
        "refused edits write nothing"
    );
}

#[tokio::test]
async fn services_are_added_once_per_idempotency_key_and_updated_and_retired() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("demo-salon").await,
        app: &app,
    };
    let key = [("idempotency-key", "add-haircut-1")];
    let (s1, _, first) = t
        .send(reqwest::Method::POST, "/v1/services", &key, Some(haircut()))
        .await;
    let (s2, _, second) = t
        .send(reqwest::Method::POST, "/v1/services", &key, Some(haircut()))
        .await;
    assert_eq!((s1, s2), (201, 201));
    assert_eq!(first["service_id"], second["service_id"]);
    assert_eq!(count(&app, "ServiceAdded").await, 1);
    let mut other = haircut();
    other["name"] = json!("Beard trim");
    assert_eq!(
        t.send(reqwest::Method::POST, "/v1/services", &key, Some(other))
            .await
            .0,
        422,
        "same key, other body"
    );

    let id = first["service_id"].as_str().unwrap();
    let mut pricier = haircut();
    pricier["price"]["minor"] = json!(3000);
    assert_eq!(
        t.send(
            reqwest::Method::PUT,
            &format!("/v1/services/{id}"),
            &[],
            Some(pricier)
        )
        .await
        .0,
        200
    );
    assert_eq!(
        t.send(
            reqwest::Method::DELETE,
            &format!("/v1/services/{id}"),
            &[],
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        t.send(
            reqwest::Method::DELETE,
            &format!("/v1/services/{id}"),
            &[],
            None
        )
        .await
        .0,
        409
    );
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        t.send(
            reqwest::Method::PUT,
            &format!("/v1/services/{unknown}"),
            &[],
            Some(haircut())
        )
        .await
        .0,
        404
    );

    let mut long = haircut();
    long["name"] = json!("Deluxe wash, cut, colour and style");
    let (status, _, body) = t
        .send(reqwest::Method::POST, "/v1/services", &[], Some(long))
        .await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("service.name"))
    );
}

#[tokio::test]
async fn a_booking_holds_its_slot_until_cancelled_and_can_be_moved() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("demo-salon").await,
        app: &app,
    };
    let service = t.configured().await;

    let (status, booked) = t.book(&service, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{booked}");
    assert_eq!(booked["status"], "confirmed");
    assert!(booked["reference"].as_str().unwrap().starts_with("BK-"));

    // 10:45 falls inside the buffer; the answer lists what is free.
    let (status, taken) = t
        .book(
            &service,
            &format!("{}T10:45:00Z", &slot(10)[..10]),
            "+34600000002",
            None,
        )
        .await;
    assert_eq!(status, 409, "{taken}");
    assert!(
        taken["detail"].as_str().unwrap().contains("11:00"),
        "{taken}"
    );

    let id = booked["booking_id"].as_str().unwrap();
    let (status, _, moved) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/reschedule"),
            &[],
            Some(json!({"start": slot(14)})),
        )
        .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["start"].as_str().unwrap(), slot(14));
    // The old time is free again.
    assert_eq!(
        t.book(&service, &slot(10), "+34600000002", None).await.0,
        201
    );

    let (status, _, cancelled) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            &[],
            Some(json!({"reason": "sick"})),
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    assert_eq!(
        t.send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            &[],
            None
        )
        .await
        .0,
        409,
        "already cancelled"
    );
    assert_eq!(
        t.book(&service, &slot(14), "+34600000003", None).await.0,
        201,
        "the slot is free again"
    );
    assert_eq!(
        t.send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/complete"),
            &[],
            None
        )
        .await
        .0,
        409
    );
}

#[tokio::test]
async fn fifty_customers_racing_for_one_slot_end_with_exactly_one_booking() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("demo-salon").await,
        app: &app,
    };
    let service = t.configured().await;
    let start = slot(12);
    let attempts = (0..50).map(|i| {
        let (t, service, start) = (&t, service.clone(), start.clone());
        async move {
            t.book(&service, &start, &format!("+346000001{i:02}"), None)
                .await
        }
    });
    let results = futures::future::join_all(attempts).await;
    let won: Vec<_> = results.iter().filter(|(s, _)| *s == 201).collect();
    let lost: Vec<_> = results.iter().filter(|(s, _)| *s == 409).collect();
    assert_eq!(won.len(), 1, "{results:?}");
    assert_eq!(lost.len(), 49, "everyone else is told the time is taken");
    assert!(
        lost.iter()
            .all(|(_, body)| body["detail"].as_str().unwrap().contains("free that day"))
    );
    assert_eq!(count(&app, "SlotHeld").await, 1);
    assert_eq!(count(&app, "AppointmentRequested").await, 1);
}

#[tokio::test]
async fn a_retried_booking_is_made_once_and_a_reused_key_is_refused() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("demo-salon").await,
        app: &app,
    };
    let service = t.configured().await;
    let (a, first) = t
        .book(&service, &slot(9), "+34600000001", Some("k-1"))
        .await;
    let (b, second) = t
        .book(&service, &slot(9), "+34600000001", Some("k-1"))
        .await;
    assert_eq!((a, b), (201, 201));
    assert_eq!(first["booking_id"], second["booking_id"]);
    assert_eq!(count(&app, "AppointmentRequested").await, 1);
    let (status, body) = t
        .book(&service, &slot(11), "+34600000001", Some("k-1"))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "Idempotency-Key");
}

#[tokio::test]
async fn another_tenants_ids_are_not_found_and_roles_are_enforced() {
    let app = spawn_command_api().await;
    let a = Tenant {
        owner: app.onboard("salon-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("salon-b").await,
        app: &app,
    };
    let service_a = a.configured().await;
    b.configured().await;
    let (_, booking) = a.book(&service_a, &slot(10), "+34600000001", None).await;
    let id = booking["booking_id"].as_str().unwrap();
    for action in ["cancel", "confirm", "arrived", "complete", "no-show"] {
        let (status, _, _) = b
            .send(
                reqwest::Method::POST,
                &format!("/v1/bookings/{id}/{action}"),
                &[],
                None,
            )
            .await;
        assert_eq!(status, 404, "{action} on another tenant's booking");
    }
    assert_eq!(
        b.send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/reschedule"),
            &[],
            Some(json!({"start": slot(15)}))
        )
        .await
        .0,
        404
    );
    assert_eq!(
        b.book(&service_a, &slot(11), "+34600000002", None).await.0,
        404,
        "another tenant's service"
    );
    assert_eq!(
        b.send(
            reqwest::Method::DELETE,
            &format!("/v1/services/{service_a}"),
            &[],
            None
        )
        .await
        .0,
        404
    );

    // A viewer of tenant A (signed with the server's key, a live session) may not change
    // anything.
    let viewer = e2e_tests::member_token(
        &app.db.superuser_url_pool().await,
        a.owner.tenant_id.parse().unwrap(),
        domain::access::Role::Viewer,
    )
    .await;
    let (status, _, body) = a
        .send_as(
            &viewer,
            reqwest::Method::POST,
            &format!("/v1/bookings/{id}/cancel"),
            &[],
            None,
        )
        .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        a.send_as(
            &viewer,
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"2\"")],
            Some(settings())
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn an_operator_suspends_a_tenant_which_then_gets_423_until_reinstated() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("demo-salon").await,
        app: &app,
    };
    let other = Tenant {
        owner: app.onboard("other-salon").await,
        app: &app,
    };
    let operator = e2e_tests::operator_token();
    let suspend = format!("/v1/operator/tenants/{}/suspend", t.owner.tenant_id);
    let reinstate = format!("/v1/operator/tenants/{}/reinstate", t.owner.tenant_id);

    // A request through the tenant gate caches the tenant as open...
    let probe = format!("/v1/bookings/{}/confirm", uuid::Uuid::new_v4());
    assert_eq!(
        t.send(reqwest::Method::POST, &probe, &[], None).await.0,
        404
    );

    // A tenant's own credential is no operator credential, whatever its role.
    assert_eq!(
        t.send(
            reqwest::Method::POST,
            &suspend,
            &[],
            Some(json!({"reason": "x"}))
        )
        .await
        .0,
        401
    );
    let (status, _, body) = t
        .send_as(
            &operator,
            reqwest::Method::POST,
            &suspend,
            &[],
            Some(json!({"reason": "payment failed"})),
        )
        .await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("suspended")),
        "{body}"
    );
    assert_eq!(
        t.send_as(
            &operator,
            reqwest::Method::POST,
            &suspend,
            &[],
            Some(json!({"reason": "again"}))
        )
        .await
        .0,
        409
    );

    // ...and the suspension drops that at once.
    assert_eq!(
        t.send(reqwest::Method::POST, &probe, &[], None).await.0,
        423
    );
    let (status, headers, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(settings()),
        )
        .await;
    assert_eq!(status, 423);
    assert_eq!(headers["content-type"], "application/problem+json");
    assert_eq!(body["detail"], "payment failed");
    let login = json!({"slug": "demo-salon", "email": "owner@demo-salon.example", "password": "correct horse battery staple"});
    assert_eq!(
        app.post("/v1/auth/login", &login).await.status().as_u16(),
        423
    );
    assert_eq!(
        other
            .send(
                reqwest::Method::PUT,
                "/v1/bot-config",
                &[("if-match", "\"0\"")],
                Some(settings())
            )
            .await
            .0,
        200,
        "others are unaffected"
    );

    assert_eq!(
        t.send_as(&operator, reqwest::Method::POST, &reinstate, &[], None)
            .await
            .0,
        200
    );
    assert_eq!(
        t.send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(settings())
        )
        .await
        .0,
        200
    );
    let unknown = format!("/v1/operator/tenants/{}/reinstate", uuid::Uuid::new_v4());
    assert_eq!(
        t.send_as(&operator, reqwest::Method::POST, &unknown, &[], None)
            .await
            .0,
        404
    );
    let actors: Vec<String> = sqlx::query_scalar(
        "select metadata->>'actor' from events where event_type = 'TenantSuspended'",
    )
    .fetch_all(&app.db.operator_pool().await)
    .await
    .unwrap();
    assert_eq!(
        actors,
        ["operator:alice"],
        "the audit trail names the operator"
    );
}

#[tokio::test]
async fn a_body_is_one_json_object_and_a_nul_character_is_refused_naming_its_field() {
    let app = spawn_command_api().await;
    let t = Tenant {
        owner: app.onboard("strict-salon").await,
        app: &app,
    };
    let raw = |path: &'static str, body: String| {
        let app = &app;
        let token = t.owner.access_token.clone();
        async move {
            let response = app
                .client
                .post(format!("{}{path}", app.address))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (
                status,
                body["errors"][0]["field"].as_str().map(str::to_owned),
            )
        }
    };
    let mut nul = haircut();
    nul["name"] = json!("Hair\u{0}cut");
    assert_eq!(
        raw("/v1/services", nul.to_string()).await,
        (422, Some("name".into()))
    );
    let mut nul = CommandApp::onboarding("nul-salon");
    nul["owner_email"] = json!("owner\u{0}@nul-salon.example");
    assert_eq!(
        raw("/v1/tenants", nul.to_string()).await,
        (422, Some("owner_email".into()))
    );
    assert_eq!(
        raw(
            "/v1/auth/login",
            json!([
                "strict-salon",
                "owner@strict-salon.example",
                "correct horse battery staple"
            ])
            .to_string()
        )
        .await,
        (422, Some("body".into())),
        "a positional array is not an object"
    );
    assert_eq!(
        raw("/v1/services", format!("{} {{\"more\": 1}}", haircut()))
            .await
            .0,
        400,
        "bytes after the object"
    );
    let mut huge = haircut();
    huge["description"] = json!("x".repeat(3 * 1024 * 1024));
    assert_eq!(raw("/v1/services", huge.to_string()).await.0, 413);
    // Values no business should see: a negative or enormous price, a currency that is none,
    // a category of 100 KB, a name of zero-width characters.
    for (field, value, at) in [
        ("price", json!({"minor": -5000, "currency": "EUR"}), "price"),
        (
            "price",
            json!({"minor": 9_007_199_254_740_993_i64, "currency": "EUR"}),
            "price",
        ),
        (
            "price",
            json!({"minor": 2500, "currency": "XXX"}),
            "price.currency",
        ),
        (
            "price",
            json!({"minor": 2500, "currency": "EUR", "tax": 1}),
            "price.tax",
        ),
        ("category", json!("x".repeat(100_000)), "service.category"),
        ("name", json!("\u{200B}\u{200D}"), "service.name"),
    ] {
        let mut service = haircut();
        service[field] = value;
        let (status, named) = raw("/v1/services", service.to_string()).await;
        assert_eq!((status, named.as_deref()), (422, Some(at)), "{field}");
    }
    assert_eq!(count(&app, "ServiceAdded").await, 0);
    assert_eq!(count(&app, "TenantOnboarded").await, 1);
}

/// The front desk marks a customer arrived: not days before the appointment (409, nothing
/// recorded), from two hours before it once (the same answer again records nothing new), and
/// the read side shows when.
#[tokio::test]
async fn a_customer_is_marked_arrived_once_and_not_days_early() {
    use chrono::{Duration, Timelike as _, Utc};
    let app = spawn_command_api().await;
    let projector =
        e2e_tests::spawn_projector(e2e_tests::projector_settings(&app.db, &app.nats)).await;
    let query = e2e_tests::spawn_query_api(e2e_tests::query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("arrivals").await,
        app: &app,
    };
    // A time zone where it is daytime now, open all day, no notice: a booking soon.
    let zone = ["UTC", "Asia/Tokyo", "America/New_York", "Asia/Kolkata"]
        .into_iter()
        .find(|z| {
            let tz: chrono_tz::Tz = z.parse().unwrap();
            (6..18).contains(&Utc::now().with_timezone(&tz).hour())
        })
        .unwrap();
    let day = json!([{"open": "00:00", "close": "23:55"}]);
    let mut config = settings();
    config["time_zone"] = json!(zone);
    config["hours"] = json!({"monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day, "saturday": day, "sunday": day});
    config["rules"] = json!({"min_notice_minutes": 0, "horizon_days": 30, "slot_step_minutes": 5});
    let (status, _, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(config),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, _, service) = t
        .send(reqwest::Method::POST, "/v1/services", &[], Some(haircut()))
        .await;
    let service = service["service_id"].as_str().unwrap();
    let now = Utc::now();
    let soon = now + Duration::minutes(30 - i64::from(now.minute() % 5));
    let soon = soon.with_second(0).unwrap().with_nanosecond(0).unwrap();
    let (status, soon_booking) = t
        .book(
            service,
            &soon.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "+34600000071",
            None,
        )
        .await;
    assert_eq!(status, 201, "{soon_booking}");
    let (status, later) = t
        .book(
            service,
            &(soon + Duration::days(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "+34600000072",
            None,
        )
        .await;
    assert_eq!(status, 201, "{later}");

    let arrive = |id: String| {
        let t = &t;
        async move {
            t.send(
                reqwest::Method::POST,
                &format!("/v1/bookings/{id}/arrived"),
                &[],
                None,
            )
            .await
        }
    };
    let (status, _, refused) = arrive(later["booking_id"].as_str().unwrap().to_owned()).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["detail"].as_str().unwrap().contains("two hours"),
        "{refused}"
    );

    let id = soon_booking["booking_id"].as_str().unwrap().to_owned();
    let (status, _, arrived) = arrive(id.clone()).await;
    assert_eq!(status, 200, "{arrived}");
    let at = arrived["arrived_at"].as_str().unwrap().to_owned();
    let (status, _, again) = arrive(id.clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["arrived_at"], at.as_str(), "recorded once");
    let token = arrived["consistency_token"].as_str().unwrap();
    let (status, read) = query
        .get(
            &format!("/v1/bookings/{id}"),
            &t.owner.access_token,
            Some(token),
        )
        .await;
    assert_eq!(status, 200, "{read}");
    let read_at: chrono::DateTime<Utc> = read["booking"]["arrived_at"]
        .as_str()
        .or(read["arrived_at"].as_str())
        .unwrap_or_else(|| panic!("{read}"))
        .parse()
        .unwrap();
    // The read model keeps microseconds, the event nanoseconds.
    let at: chrono::DateTime<Utc> = at.parse().unwrap();
    assert!(
        (read_at - at).num_microseconds().unwrap().abs() <= 1,
        "{read_at} {at}"
    );
    drop(projector);
}
