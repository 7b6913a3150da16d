//! Team members and API keys through the command API.

use e2e_tests::{CommandApp, spawn_command_api};
use serde_json::{Value, json};

async fn send(
    app: &CommandApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn invite_and_accept(
    app: &CommandApp,
    owner: &str,
    email: &str,
    role: &str,
) -> (String, Value) {
    let (status, invited) = send(
        app,
        owner,
        reqwest::Method::POST,
        "/v1/users",
        Some(json!({"email": email, "role": role})),
    )
    .await;
    assert_eq!(status, 201, "{invited}");
    let token = invited["invitation_token"].as_str().unwrap();
    let accepted = app
        .post(
            "/v1/auth/accept-invitation",
            &json!({"invitation_token": token, "password": "a long enough password"}),
        )
        .await;
    assert_eq!(accepted.status().as_u16(), 200);
    let tokens: Value = accepted.json().await.unwrap();
    (invited["user_id"].as_str().unwrap().to_owned(), tokens)
}

const SERVICE: &str =
    r#"{"name": "Haircut", "price": {"minor": 2500, "currency": "EUR"}, "duration_minutes": 45}"#;

#[tokio::test]
async fn an_invited_member_signs_in_once_with_the_rights_of_the_role() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let (status, invited) = send(
        &app,
        &owner.access_token,
        reqwest::Method::POST,
        "/v1/users",
        Some(json!({"email": "staff@demo.example", "role": "staff"})),
    )
    .await;
    assert_eq!(status, 201);
    let token = invited["invitation_token"].as_str().unwrap();
    let accept = json!({"invitation_token": token, "password": "a long enough password"});
    let accepted: Value = app
        .post("/v1/auth/accept-invitation", &accept)
        .await
        .json()
        .await
        .unwrap();
    let staff = accepted["access_token"].as_str().unwrap();
    assert_eq!(
        app.post("/v1/auth/accept-invitation", &accept)
            .await
            .status()
            .as_u16(),
        401,
        "an invitation works once"
    );

    let me: Value = app.get_with("/v1/me", staff).await.json().await.unwrap();
    assert_eq!(me["role"], "staff");
    assert_eq!(
        send(
            &app,
            staff,
            reqwest::Method::POST,
            "/v1/services",
            Some(serde_json::from_str(SERVICE).unwrap())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        send(
            &app,
            staff,
            reqwest::Method::POST,
            "/v1/users",
            Some(json!({"email": "x@demo.example", "role": "viewer"}))
        )
        .await
        .0,
        403
    );
    let login = json!({"slug": "demo-salon", "email": "staff@demo.example", "password": "a long enough password"});
    assert_eq!(
        app.post("/v1/auth/login", &login).await.status().as_u16(),
        200
    );

    let (status, _) = send(
        &app,
        &owner.access_token,
        reqwest::Method::POST,
        "/v1/users",
        Some(json!({"email": "staff@demo.example", "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 409, "already a member");
    let events: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .all(|p| !p.contains(token) && !p.contains("a long enough password"))
    );
}

#[tokio::test]
async fn roles_change_within_limits_and_a_deactivated_member_is_locked_out() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let (admin_id, admin) =
        invite_and_accept(&app, &owner.access_token, "admin@demo.example", "admin").await;
    let (staff_id, staff) =
        invite_and_accept(&app, &owner.access_token, "staff@demo.example", "staff").await;
    let admin_token = admin["access_token"].as_str().unwrap();

    assert_eq!(
        send(
            &app,
            admin_token,
            reqwest::Method::PUT,
            &format!("/v1/users/{staff_id}/role"),
            Some(json!({"role": "viewer"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        send(
            &app,
            admin_token,
            reqwest::Method::PUT,
            &format!("/v1/users/{staff_id}/role"),
            Some(json!({"role": "owner"}))
        )
        .await
        .0,
        403,
        "only owners make owners"
    );
    assert_eq!(
        send(
            &app,
            admin_token,
            reqwest::Method::PUT,
            &format!("/v1/users/{admin_id}/role"),
            Some(json!({"role": "owner"}))
        )
        .await
        .0,
        403
    );
    assert_eq!(
        send(
            &app,
            admin_token,
            reqwest::Method::POST,
            &format!("/v1/users/{}/deactivate", owner.owner_id),
            None
        )
        .await
        .0,
        403,
        "an admin cannot lock out an owner"
    );

    assert_eq!(
        send(
            &app,
            admin_token,
            reqwest::Method::POST,
            &format!("/v1/users/{staff_id}/deactivate"),
            None
        )
        .await
        .0,
        200
    );
    let refresh = json!({"refresh_token": staff["refresh_token"]});
    assert_eq!(
        app.post("/v1/auth/refresh", &refresh)
            .await
            .status()
            .as_u16(),
        401,
        "sessions end"
    );
    let login = json!({"slug": "demo-salon", "email": "staff@demo.example", "password": "a long enough password"});
    assert_eq!(
        app.post("/v1/auth/login", &login).await.status().as_u16(),
        401
    );

    let other = app.onboard("other-salon").await;
    assert_eq!(
        send(
            &app,
            &other.access_token,
            reqwest::Method::POST,
            &format!("/v1/users/{admin_id}/deactivate"),
            None
        )
        .await
        .0,
        404,
        "another tenant's user"
    );
}

#[tokio::test]
async fn an_api_key_is_shown_once_works_within_its_scopes_and_dies_when_revoked() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let (status, created) = send(
        &app,
        &owner.access_token,
        reqwest::Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "Website", "scopes": ["write_config", "read_config"]})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("bk_live_") && key.starts_with(created["prefix"].as_str().unwrap()));

    assert_eq!(
        send(
            &app,
            &key,
            reqwest::Method::POST,
            "/v1/services",
            Some(serde_json::from_str(SERVICE).unwrap())
        )
        .await
        .0,
        201
    );
    let actor: String = sqlx::query_scalar(
        "select metadata->>'actor' from events where event_type = 'ServiceAdded'",
    )
    .fetch_one(&app.db.operator_pool().await)
    .await
    .unwrap();
    assert_eq!(
        actor,
        format!("api_key:{}", created["key_id"].as_str().unwrap())
    );
    assert_eq!(
        send(
            &app,
            &key,
            reqwest::Method::POST,
            "/v1/users",
            Some(json!({"email": "x@demo.example", "role": "viewer"}))
        )
        .await
        .0,
        403,
        "outside its scopes"
    );
    assert_eq!(
        send(
            &app,
            &format!("{key}x"),
            reqwest::Method::POST,
            "/v1/services",
            Some(serde_json::from_str(SERVICE).unwrap())
        )
        .await
        .0,
        401
    );

    let stored: Vec<String> = sqlx::query_scalar("select payload::text from events")
        .fetch_all(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert!(
        stored.iter().all(|p| !p.contains(&key)),
        "the key is in no event"
    );

    let key_id = created["key_id"].as_str().unwrap();
    assert_eq!(
        send(
            &app,
            &owner.access_token,
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{key_id}"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        send(
            &app,
            &key,
            reqwest::Method::POST,
            "/v1/services",
            Some(serde_json::from_str(SERVICE).unwrap())
        )
        .await
        .0,
        401,
        "revoked"
    );
    assert_eq!(
        send(
            &app,
            &owner.access_token,
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{key_id}"),
            None
        )
        .await
        .0,
        409
    );

    let (status, body) = send(&app, &owner.access_token, reqwest::Method::POST, "/v1/api-keys", Some(json!({"name": "Old", "scopes": ["read_bookings"], "expires_at": "2020-01-01T00:00:00Z"}))).await;
    assert_eq!(
        (status, body["errors"][0]["field"].as_str()),
        (422, Some("expires_at"))
    );
    let (_, staff) =
        invite_and_accept(&app, &owner.access_token, "staff@demo.example", "staff").await;
    assert_eq!(
        send(
            &app,
            staff["access_token"].as_str().unwrap(),
            reqwest::Method::POST,
            "/v1/api-keys",
            Some(json!({"name": "Mine", "scopes": ["read_bookings"]}))
        )
        .await
        .0,
        403
    );
}

#[tokio::test]
async fn a_removal_a_demotion_or_a_logout_is_seen_by_the_very_next_request() {
    let app = spawn_command_api().await;
    let owner = app.onboard("epoch-salon").await;
    let (admin_id, admin) =
        invite_and_accept(&app, &owner.access_token, "admin@epoch.example", "admin").await;
    let (staff_id, staff) =
        invite_and_accept(&app, &owner.access_token, "staff@epoch.example", "staff").await;
    let token = |tokens: &Value| tokens["access_token"].as_str().unwrap().to_owned();
    let invite = |token: String, email: &'static str| {
        let app = &app;
        async move {
            send(
                app,
                &token,
                reqwest::Method::POST,
                "/v1/users",
                Some(json!({"email": email, "role": "owner"})),
            )
            .await
            .0
        }
    };
    let me = |token: String| {
        let app = &app;
        async move {
            send(app, &token, reqwest::Method::GET, "/v1/me", None)
                .await
                .0
        }
    };
    assert_eq!(me(token(&admin)).await, 200);

    // Demoted to viewer: the admin's token no longer invites anybody, nor is it anybody's.
    assert_eq!(
        send(
            &app,
            &owner.access_token,
            reqwest::Method::PUT,
            &format!("/v1/users/{admin_id}/role"),
            Some(json!({"role": "viewer"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(invite(token(&admin), "new-owner@epoch.example").await, 401);
    // Their session goes on with the new role.
    let refreshed: Value = app
        .post(
            "/v1/auth/refresh",
            &json!({"refresh_token": admin["refresh_token"]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        invite(token(&refreshed), "new-owner@epoch.example").await,
        403
    );

    // Deactivated: the staff member's token creates no API key and reads nothing.
    assert_eq!(
        send(
            &app,
            &owner.access_token,
            reqwest::Method::POST,
            &format!("/v1/users/{staff_id}/deactivate"),
            None
        )
        .await
        .0,
        200
    );
    let (status, _) = send(
        &app,
        &token(&staff),
        reqwest::Method::POST,
        "/v1/api-keys",
        Some(json!({"name": "Backdoor", "scopes": ["read_bookings"]})),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(me(token(&staff)).await, 401);

    // Logged out: that session's access token is over; another session of the owner goes on.
    let login = json!({"slug": "epoch-salon", "email": "owner@epoch-salon.example",
        "password": "correct horse battery staple"});
    let other: Value = app
        .post("/v1/auth/login", &login)
        .await
        .json()
        .await
        .unwrap();
    let logout = app
        .post(
            "/v1/auth/logout",
            &json!({"refresh_token": owner.refresh_token}),
        )
        .await;
    assert_eq!(logout.status().as_u16(), 204);
    assert_eq!(me(owner.access_token.clone()).await, 401);
    assert_eq!(me(token(&other)).await, 200);
}
