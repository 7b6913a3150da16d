//! A second factor: enrolling, switching it on, and logging in with a code, once per code.

use e2e_tests::spawn_command_api;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Secret, TOTP};

#[tokio::test]
async fn with_a_second_factor_login_needs_a_fresh_code() {
    let app = spawn_command_api().await;
    let owner = app.onboard("demo-salon").await;
    let post = |path: &str, body: Value| {
        let request = app
            .client
            .post(format!("{}{path}", app.address))
            .bearer_auth(&owner.access_token)
            .json(&body);
        async move { request.send().await.unwrap() }
    };
    let enrolled: Value = post("/v1/auth/mfa/enroll", json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        enrolled["otpauth_url"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/Booking")
    );
    let secret = Secret::Encoded(enrolled["secret"].as_str().unwrap().to_owned())
        .to_bytes()
        .unwrap();
    let authenticator = TOTP::new(Algorithm::SHA1, 6, 1, 30, secret, None, String::new()).unwrap();

    let wrong = post("/v1/auth/mfa/verify", json!({"code": "000000"})).await;
    if authenticator.generate_current().unwrap() != "000000" {
        assert_eq!(wrong.status().as_u16(), 422);
    }
    // Switching on uses the current step's code...
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert_eq!(
        post(
            "/v1/auth/mfa/verify",
            json!({"code": authenticator.generate(now)})
        )
        .await
        .status()
        .as_u16(),
        200
    );
    // ...and is recorded on the user's stream (who and when, never the secret).
    let switched: Vec<(String, Value)> = sqlx::query_as(
        "select stream_id, metadata from events where event_type = 'SecondFactorEnabled'",
    )
    .fetch_all(&app.db.operator_pool().await)
    .await
    .unwrap();
    assert_eq!(switched.len(), 1);
    assert_eq!(switched[0].0, owner.owner_id);
    assert_eq!(switched[0].1["actor"], format!("user:{}", owner.owner_id));

    let login = |totp: Option<String>| json!({"slug": "demo-salon", "email": "owner@demo-salon.example", "password": "correct horse battery staple", "totp": totp});
    let without = app.post("/v1/auth/login", &login(None)).await;
    assert_eq!(without.status().as_u16(), 401);
    let body: Value = without.json().await.unwrap();
    assert_eq!(body["type"], "https://errors.booking.invalid/mfa-required");
    // ...so the same code cannot log in: it was used. The next step's code (within the
    // one-step skew) can, once.
    assert_eq!(
        app.post("/v1/auth/login", &login(Some(authenticator.generate(now))))
            .await
            .status()
            .as_u16(),
        401,
        "a code is good once"
    );
    let next = authenticator.generate(now + 30);
    assert_eq!(
        app.post("/v1/auth/login", &login(Some(next.clone())))
            .await
            .status()
            .as_u16(),
        200
    );
    assert_eq!(
        app.post("/v1/auth/login", &login(Some(next)))
            .await
            .status()
            .as_u16(),
        401,
        "replayed"
    );
    assert_eq!(
        post("/v1/auth/mfa/enroll", json!({}))
            .await
            .status()
            .as_u16(),
        409,
        "already on"
    );
}
