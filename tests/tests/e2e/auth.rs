//! Onboarding and sessions over the real HTTP surface, with real Postgres.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use e2e_tests::{CommandApp, spawn_command_api};
use serde_json::{Value, json};

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn a_business_onboards_and_its_owner_is_signed_in() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    assert_eq!(owner.body["tenant"]["slug"], "demo-salon");
    assert_eq!(owner.body["tenant"]["status"], "active");
    assert_eq!(owner.body["tenant"]["plan"], "starter");
    assert!(
        owner.body["consistency_token"]
            .as_str()
            .unwrap()
            .contains('.')
    );

    let me: Value = app
        .get_with("/v1/me", &owner.access_token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant_id"], owner.tenant_id.as_str());
    assert_eq!(me["user_id"], owner.owner_id.as_str());
    assert_eq!(me["role"], "owner");
    // The scheme is case-insensitive; an empty token is none.
    for (authorization, status) in [
        (format!("bearer {}", owner.access_token), 200),
        (format!("BEARER  {}", owner.access_token), 200),
        ("Bearer ".to_owned(), 401),
        (format!("Basic {}", owner.access_token), 401),
    ] {
        let response = app
            .client
            .get(format!("{}/v1/me", app.address))
            .header("authorization", &authorization)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{authorization:.12}");
    }
    // An API key says which key it is and what it may do.
    let key: Value = app
        .client
        .post(format!("{}/v1/api-keys", app.address))
        .bearer_auth(&owner.access_token)
        .json(&json!({"name": "Website", "scopes": ["read_bookings"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let as_key: Value = app
        .get_with("/v1/me", key["key"].as_str().expect("the key's secret"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(as_key["tenant_id"], owner.tenant_id.as_str());
    assert_eq!(as_key["api_key_id"], key["key_id"]);
    assert_eq!(as_key["scopes"], json!(["read_bookings"]));
    assert!(as_key.get("user_id").is_none(), "{as_key}");

    // The events say what happened, and nothing secret.
    let log: Vec<(String, String)> =
        sqlx::query_as("select event_type, payload::text from events order by global_position")
            .fetch_all(&app.db.operator_pool().await)
            .await
            .unwrap();
    let types: Vec<&str> = log.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "TenantOnboarded",
            "EmailVerificationRequested",
            "UserInvited",
            "TrialStarted",
            "EmailVerified",
            "ApiKeyIssued"
        ]
    );
    assert!(
        log.iter()
            .all(|(_, p)| !p.contains("correct horse") && !p.contains("argon2"))
    );
}

#[tokio::test]
async fn every_invalid_field_is_named_and_nothing_is_written() {
    let app = spawn_command_api().await;
    let body = json!({
        "business_name": "",
        "slug": "Bad Slug",
        "owner_email": "not-an-email",
        "owner_password": "short",
        "time_zone": "Mars/Olympus",
    });
    let (status, body) = problem(app.post("/v1/tenants", &body).await).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "business_name",
            "slug",
            "owner_email",
            "time_zone",
            "owner_password"
        ]
    );

    let (status, body) = problem(
        app.post("/v1/tenants", &json!({"business_name": "X"}))
            .await,
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "body", "{body}");

    let response = app
        .client
        .post(format!("{}/v1/tenants", app.address))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 400);

    let count: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert_eq!(count, 0);
}

#[tokio::test]
async fn a_taken_slug_is_a_conflict_and_writes_nothing() {
    let app = spawn_command_api().await;
    app.onboard("demo-salon").await;
    let mut again = CommandApp::onboarding("demo-salon");
    again["owner_email"] = json!("someone@else.example");
    let (status, body) = problem(app.post("/v1/tenants", &again).await).await;
    assert_eq!(status, 409);
    assert_eq!(body["errors"][0]["field"], "slug");
    let count: i64 = sqlx::query_scalar("select count(*) from events")
        .fetch_one(&app.db.operator_pool().await)
        .await
        .unwrap();
    assert_eq!(
        count, 5,
        "only the first tenant's events (and its email verified)"
    );
}

#[tokio::test]
async fn login_works_with_the_right_password_only() {
    let app = spawn_command_api().await;
    app.onboard("demo-salon").await;
    let login = |password: &str, slug: &str| json!({"slug": slug, "email": "owner@demo-salon.example", "password": password});
    let ok = app
        .post(
            "/v1/auth/login",
            &login("correct horse battery staple", "demo-salon"),
        )
        .await;
    assert_eq!(ok.status().as_u16(), 200);
    let tokens: Value = ok.json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(
        app.get_with("/v1/me", tokens["access_token"].as_str().unwrap())
            .await
            .status()
            .as_u16(),
        200
    );

    for (password, slug) in [
        ("wrong password!", "demo-salon"),
        ("correct horse battery staple", "no-such-salon"),
    ] {
        let (status, _) = problem(app.post("/v1/auth/login", &login(password, slug)).await).await;
        assert_eq!(status, 401);
    }
}

/// A member whose password was hashed with the settings of before (19 MiB, two passes) logs
/// in as ever, and from then on has a hash of today's; a wrong password replaces nothing.
#[tokio::test]
async fn a_login_replaces_a_hash_of_older_settings_with_one_of_todays() {
    const OLDER: &str = "$argon2id$v=19$m=19456,t=2,p=1$YWJjZGVmZ2hpamtsbW5vcA$tYM9MB84HzixZzEE9k31RooSQOXU5MDh49LUoxVPEUY";
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let superuser = app.db.superuser_url_pool().await;
    let stored = || async {
        sqlx::query_scalar::<_, String>(
            "select password_hash from user_credentials where user_id = $1::text::uuid",
        )
        .bind(&owner.owner_id)
        .fetch_one(&superuser)
        .await
        .unwrap()
    };
    sqlx::query("update user_credentials set password_hash = $1 where user_id = $2::text::uuid")
        .bind(OLDER)
        .bind(&owner.owner_id)
        .execute(&superuser)
        .await
        .unwrap();
    let login = |password: &str| json!({"slug": "demo-salon", "email": "owner@demo-salon.example", "password": password});

    let (status, _) = problem(app.post("/v1/auth/login", &login("wrong password!")).await).await;
    assert_eq!(status, 401);
    assert_eq!(stored().await, OLDER, "a failed login replaces nothing");

    for _ in 0..2 {
        let ok = app
            .post("/v1/auth/login", &login("correct horse battery staple"))
            .await;
        assert_eq!(ok.status().as_u16(), 200);
        let hash = stored().await;
        assert!(hash.starts_with("$argon2id$v=19$m=7168,t=5,p=1$"), "{hash}");
        assert!(!vault::needs_rehash(&hash));
    }
}

#[tokio::test]
async fn a_refresh_token_rotates_and_its_reuse_revokes_the_whole_family() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let refresh = |token: &str| json!({ "refresh_token": token });

    let first = app
        .post("/v1/auth/refresh", &refresh(&owner.refresh_token))
        .await;
    assert_eq!(first.status().as_u16(), 200);
    let rotated: Value = first.json().await.unwrap();
    let next = rotated["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(next, owner.refresh_token);

    // The old token again: someone holds a copy. Both copies die.
    assert_eq!(
        problem(
            app.post("/v1/auth/refresh", &refresh(&owner.refresh_token))
                .await
        )
        .await
        .0,
        401
    );
    assert_eq!(
        problem(app.post("/v1/auth/refresh", &refresh(&next)).await)
            .await
            .0,
        401,
        "the family is revoked"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let body = json!({ "refresh_token": owner.refresh_token });
    assert_eq!(
        app.post("/v1/auth/logout", &body).await.status().as_u16(),
        204
    );
    assert_eq!(
        problem(app.post("/v1/auth/refresh", &body).await).await.0,
        401
    );
    assert_eq!(
        app.post("/v1/auth/logout", &body).await.status().as_u16(),
        204,
        "idempotent"
    );
}

#[tokio::test]
async fn missing_forged_and_tampered_tokens_are_refused() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let no_token = app
        .client
        .get(format!("{}/v1/me", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem(no_token).await.0, 401);

    let parts: Vec<&str> = owner.access_token.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

    // alg: none, with the signature dropped.
    let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"test-1"}"#);
    let alg_none = format!("{none_header}.{}.", parts[1]);
    // Claims changed to another tenant, signature kept.
    let mut other = claims.clone();
    other["tid"] = json!(uuid::Uuid::new_v4());
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(other.to_string()),
        parts[2]
    );
    // Properly signed, but with a key the server does not have.
    let sign = |claims: &Value, secret: &[u8]| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some("test-1".into());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let wrong_key = sign(&claims, b"another-secret-another-secret-another");
    // Properly signed with the server's key, but expired.
    let mut expired = claims.clone();
    expired["exp"] = json!(1);
    let expired = sign(&expired, b"test-secret-test-secret-test-secret-42");
    // And the control: the same signing gives a token the server accepts.
    assert_eq!(
        app.get_with(
            "/v1/me",
            &sign(&claims, b"test-secret-test-secret-test-secret-42")
        )
        .await
        .status()
        .as_u16(),
        200
    );

    for (what, token) in [
        ("alg none", alg_none),
        ("tampered", tampered),
        ("wrong key", wrong_key),
        ("expired", expired),
        ("garbage", "abc".into()),
    ] {
        let (status, _) = problem(app.get_with("/v1/me", &token).await).await;
        assert_eq!(status, 401, "{what}");
    }
}
