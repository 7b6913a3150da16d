//! Writes through the command API become visible through the query API: read-your-writes with
//! a consistency token, cursor pagination, filters, availability, audit, and every query
//! refusing what is not the caller's.

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    operator_token, projector_settings, query_api_settings, spawn_command_api, spawn_projector,
    spawn_query_api,
};
use serde_json::{Value, json};

#[tokio::test]
async fn writes_are_readable_with_their_consistency_token() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let t = Tenant {
        owner: app.onboard("reads").await,
        app: &app,
    };
    let token = t.owner.access_token.clone();
    let service = t.configured().await;

    let mut ids = Vec::new();
    let mut last = String::new();
    for (i, hour) in [14, 10, 12].into_iter().enumerate() {
        let (status, body) = t
            .book(&service, &slot(hour), &format!("+3460000000{i}"), None)
            .await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["booking_id"].as_str().unwrap().to_owned());
        last = body["consistency_token"].as_str().unwrap().to_owned();
    }

    // Read-your-writes: the token makes the read wait for the projections.
    let (status, booking) = query
        .get(&format!("/v1/bookings/{}", ids[2]), &token, Some(&last))
        .await;
    assert_eq!(status, 200, "{booking}");
    assert_eq!(booking["status"], "confirmed", "cash: confirmed at once");
    assert_eq!(
        booking["starts_at"]
            .as_str()
            .unwrap()
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap(),
        slot(12).parse::<chrono::DateTime<chrono::Utc>>().unwrap()
    );
    assert_eq!(booking["history"][0]["event_type"], "AppointmentRequested");
    assert_eq!(
        booking["history"][0]["actor"],
        format!("user:{}", t.owner.owner_id)
    );

    // Pages in start order, two at a time.
    let (status, page) = query.get("/v1/bookings?limit=2", &token, None).await;
    assert_eq!(status, 200, "{page}");
    let first: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["booking_id"].as_str().unwrap())
        .collect();
    assert_eq!(first, vec![ids[1].as_str(), ids[2].as_str()]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page) = query
        .get(
            &format!("/v1/bookings?limit=2&cursor={cursor}"),
            &token,
            None,
        )
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["booking_id"], ids[0]);
    assert!(page.get("next_cursor").is_none());

    // Filters.
    let (_, by_customer) = query
        .get("/v1/bookings?customer=%2B34600000001", &token, None)
        .await;
    assert_eq!(by_customer["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_customer["items"][0]["booking_id"], ids[1]);
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            &format!("/v1/bookings/{}/cancel", ids[0]),
            &[],
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let cancelled_at = body["consistency_token"].as_str().unwrap().to_owned();
    let (_, cancelled) = query
        .get("/v1/bookings?status=cancelled", &token, Some(&cancelled_at))
        .await;
    assert_eq!(cancelled["items"].as_array().unwrap().len(), 1);
    assert_eq!(cancelled["items"][0]["booking_id"], ids[0]);

    // Bad parameters name the field at fault.
    for (path, field) in [
        ("/v1/bookings?status=lost", "status"),
        ("/v1/bookings?limit=0", "limit"),
        ("/v1/bookings?cursor=nonsense", "cursor"),
        ("/v1/bookings?from=yesterday", "from"),
        ("/v1/bookings?customer=12", "customer"),
        ("/v1/availability?date=2030-01-01", "service_id"),
        ("/v1/usage?period=2030-13", "period"),
    ] {
        let (status, problem) = query.get(path, &token, None).await;
        assert_eq!(status, 422, "{path}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
    }

    // Availability leaves out the booked times (10:00 and 12:00, held with their buffers) and
    // offers the cancelled 14:00 again.
    let date = &slot(12)[..10];
    let (status, free) = query
        .get(
            &format!("/v1/availability?service_id={service}&date={date}"),
            &token,
            None,
        )
        .await;
    assert_eq!(status, 200, "{free}");
    let starts: Vec<&str> = free["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .collect();
    assert!(starts.iter().any(|s| s.contains("T08:00:00")), "{starts:?}");
    assert!(
        !starts.iter().any(|s| s.contains("T12:00:00")),
        "{starts:?}"
    );
    assert!(
        !starts.iter().any(|s| s.contains("T12:30:00")),
        "{starts:?}"
    );
    assert!(
        !starts.iter().any(|s| s.contains("T10:00:00")),
        "{starts:?}"
    );
    assert!(
        starts.iter().any(|s| s.contains("T14:00:00")),
        "cancelled frees it: {starts:?}"
    );

    // Profile, services, configuration (with its version as ETag), usage.
    let (_, tenant) = query.get("/v1/tenant", &token, None).await;
    assert_eq!(tenant["slug"], "reads");
    let (_, services) = query.get("/v1/services", &token, None).await;
    assert_eq!(services["services"][0]["name"], "Haircut");
    let (_, config) = query.get("/v1/bot-config", &token, None).await;
    assert_eq!(config["version"], 2);
    let (_, usage) = query.get("/v1/usage", &token, None).await;
    assert_eq!(
        (
            usage["bookings_created"].as_i64(),
            usage["bookings_cancelled"].as_i64()
        ),
        (Some(3), Some(1))
    );

    // The audit log: the tenant's own events with their actors, page by page.
    let (status, audit) = query.get("/v1/audit?limit=3", &token, None).await;
    assert_eq!(status, 200, "{audit}");
    assert_eq!(audit["items"].as_array().unwrap().len(), 3);
    assert_eq!(audit["items"][0]["event_type"], "TenantOnboarded");
    let after = audit["next_after"].as_str().unwrap();
    let (_, more) = query
        .get(&format!("/v1/audit?after={after}&limit=100"), &token, None)
        .await;
    assert!(more["items"].as_array().unwrap().len() >= 8, "{more}");

    // The operator reads any tenant's log; a tenant's token is no operator's.
    let path = format!("/v1/operator/tenants/{}/audit", t.owner.tenant_id);
    let (status, operator_view) = query.get(&path, &operator_token(), None).await;
    assert_eq!(status, 200, "{operator_view}");
    assert_eq!(operator_view["items"][0]["event_type"], "TenantOnboarded");
    assert_eq!(query.get(&path, &token, None).await.0, 401);
}

#[tokio::test]
async fn every_query_refuses_what_is_not_the_callers() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let settings = query_api_settings(&app.db, &app.nats);
    let query = spawn_query_api(settings).await;
    let a = Tenant {
        owner: app.onboard("tenant-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("tenant-b").await,
        app: &app,
    };
    let service = a.configured().await;
    let (_, booked) = a.book(&service, &slot(10), "+34600000001", None).await;
    let id = booked["booking_id"].as_str().unwrap();
    let token = booked["consistency_token"].as_str().unwrap();
    assert_eq!(
        query
            .get(
                &format!("/v1/bookings/{id}"),
                &a.owner.access_token,
                Some(token)
            )
            .await
            .0,
        200
    );

    // B sees none of A's data, whatever id it asks for.
    let b_token = &b.owner.access_token;
    assert_eq!(
        query
            .get(&format!("/v1/bookings/{id}"), b_token, Some(token))
            .await
            .0,
        404
    );
    let (_, list) = query.get("/v1/bookings", b_token, None).await;
    assert_eq!(list["items"], json!([]));
    let (status, _) = query
        .get(
            &format!("/v1/availability?service_id={service}&date=2030-01-01"),
            b_token,
            None,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        query
            .get("/v1/conversations/%2B34600000001", b_token, None)
            .await
            .0,
        404
    );
    let (_, audit) = query.get("/v1/audit", b_token, None).await;
    assert!(
        audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["stream"] != format!("booking/{id}"))
    );

    // No token, a forged one, a token for a position not reached yet.
    let paths = [
        "/v1/tenant",
        "/v1/services",
        "/v1/bot-config",
        "/v1/bookings",
        "/v1/conversations",
        "/v1/usage",
        "/v1/audit",
    ];
    for path in paths {
        let response = query
            .client
            .get(format!("{}{path}", query.address))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
        assert_eq!(query.get(path, "not.a.jwt", None).await.0, 401, "{path}");
    }
    // A made-up token ahead of the log is refused at once, not held for the wait.
    let asked = std::time::Instant::now();
    let (status, body) = query
        .get(
            "/v1/bookings",
            &a.owner.access_token,
            Some("999999999.999999999"),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["errors"][0]["field"], "consistency_token");
    assert!(
        asked.elapsed() < std::time::Duration::from_secs(1),
        "not held"
    );
    assert_eq!(
        query
            .get("/v1/bookings", &a.owner.access_token, Some("soon"))
            .await
            .0,
        422
    );

    // A key scoped to configuration reads no bookings (403); a suspended tenant reads nothing.
    let (status, _, created) = a
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "Website", "scopes": ["read_config"]})),
        )
        .await;
    assert_eq!(status, 201);
    let key = created["key"].as_str().unwrap();
    assert_eq!(query.get("/v1/services", key, None).await.0, 200);
    assert_eq!(query.get("/v1/bookings", key, None).await.0, 403);
    let suspended = app
        .client
        .post(format!(
            "{}/v1/operator/tenants/{}/suspend",
            app.address, a.owner.tenant_id
        ))
        .bearer_auth(operator_token())
        .json(&json!({"reason": "unpaid invoice"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status().as_u16(), 200);
    let suspended: Value = suspended.json().await.unwrap();
    let at = suspended["consistency_token"].as_str().unwrap();
    let (status, problem) = query
        .get("/v1/bookings", &a.owner.access_token, Some(at))
        .await;
    assert_eq!(status, 423, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("unpaid"),
        "{problem}"
    );
    assert_eq!(query.get("/v1/bookings", b_token, None).await.0, 200);
}

#[tokio::test]
async fn a_genuine_token_the_projections_have_not_reached_waits_then_answers_503() {
    let app = spawn_command_api().await;
    // No projector: nothing reaches the read models. The wait as shipped.
    let mut settings = query_api_settings(&app.db, &app.nats);
    settings.consistency.max_wait_ms = 2000;
    let query = spawn_query_api(settings).await;
    let t = Tenant {
        owner: app.onboard("unprojected").await,
        app: &app,
    };
    let (status, _, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(e2e_tests::tenant::settings()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token = body["consistency_token"].as_str().unwrap().to_owned();
    let asked = std::time::Instant::now();
    let response = query
        .client
        .get(format!("{}/v1/bookings", query.address))
        .bearer_auth(&t.owner.access_token)
        .header("x-consistency-token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    assert!(
        asked.elapsed() >= std::time::Duration::from_secs(2),
        "it waited"
    );
}
