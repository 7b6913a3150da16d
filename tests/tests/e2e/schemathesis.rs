//! Schemathesis, a tool nobody here wrote, against each API's own OpenAPI document with a
//! real business's credential and data: every check (no server error, every status and body as
//! documented, schema-valid requests accepted, schema-invalid ones refused, ...). What it cannot
//! know from the document is in `tests/schemathesis/` (the platform's string formats, and the
//! few refusals no schema can express, each with its reason). `just test` installs the pinned
//! version first (`scripts/schemathesis.sh`).

use std::path::PathBuf;
use std::process::Stdio;

use e2e_tests::tenant::{Tenant, haircut, slot};
use e2e_tests::wa::{APP_SECRET, Setup, notification, post_signed, setup, setup_tuned, text};
use e2e_tests::{
    analytics_settings, operator_token, projector_settings, query_api_settings, spawn_analytics,
    spawn_projector, spawn_query_api, stripe_settings,
};
use serde_json::json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs schemathesis on `base`'s `/openapi.json` with `tests/schemathesis/{config}` and `env`
/// (the credentials and ids the configuration names); its report, an error on failure.
async fn schemathesis(config: &str, base: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let root = root();
    let program = root.join(".data/venv/bin/schemathesis");
    assert!(
        program.exists(),
        "schemathesis is not installed: run scripts/schemathesis.sh (just test does)"
    );
    let dir = root.join("tests/schemathesis");
    let output = tokio::process::Command::new(program)
        .arg("--config-file")
        .arg(dir.join(config))
        .args(["run", &format!("{base}/openapi.json")])
        .args(["--seed", "1", "--no-color", "--request-timeout", "20"])
        .env("SCHEMATHESIS_HOOKS", dir.join("hooks.py"))
        .envs(env.iter().copied())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .await
        .expect("schemathesis runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(report)
    } else {
        Err(report)
    }
}

#[tokio::test]
async fn the_query_api_answers_as_its_openapi_document_says_under_every_schemathesis_check() {
    // A business with its number connected, hours and a service (`setup`), and more to read:
    // two bookings, a conversation, a webhook endpoint; the ids of each go to the operations
    // that read one.
    let Setup { app, owner, _graph } = setup().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let _analytics = spawn_analytics(analytics_settings(&app.db, &app.nats)).await;
    // Schemathesis sends a thousand requests in seconds: the per-credential limit (its 429s
    // are tested in `limits`) would leave most of them unanswered.
    let mut settings = query_api_settings(&app.db, &app.nats);
    settings.limits.per_credential_per_minute = 1_000_000;
    settings.limits.per_credential_burst = 100_000;
    // The events stream is open until its client leaves or its lifetime ends; schemathesis
    // reads a response to its end, so each of its requests there would wait for the lifetime.
    settings.limits.stream_max_seconds = 1;
    let query = spawn_query_api(settings).await;
    let t = Tenant { owner, app: &app };
    let (status, _, body) = t
        .send(reqwest::Method::POST, "/v1/services", &[], Some(haircut()))
        .await;
    assert_eq!(status, 201, "{body}");
    let service = body["service_id"].as_str().unwrap().to_owned();
    let mut booking = String::new();
    for (i, hour) in [10, 12].into_iter().enumerate() {
        let (status, body) = t
            .book(&service, &slot(hour), &format!("+3460000010{i}"), None)
            .await;
        assert_eq!(status, 201, "{body}");
        booking = body["booking_id"].as_str().unwrap().to_owned();
    }
    let hello = notification(vec![text("34600000100", "wamid.st1", "hi")]);
    assert_eq!(post_signed(&app, &hello, APP_SECRET).await, 200);
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/webhook-endpoints",
            &[],
            Some(json!({"url": "https://hooks.example.com/booking"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let endpoint = body["endpoint_id"].as_str().unwrap().to_owned();
    let token = body["consistency_token"].as_str().unwrap().to_owned();

    let report = schemathesis(
        "query-api.toml",
        &query.address,
        &[
            ("BOOKING_TOKEN", &t.owner.access_token),
            ("BOOKING_OPERATOR_TOKEN", &operator_token()),
            ("BOOKING_CONSISTENCY_TOKEN", &token),
            ("BOOKING_TENANT_ID", &t.owner.tenant_id),
            ("BOOKING_SERVICE_ID", &service),
            ("BOOKING_BOOKING_ID", &booking),
            ("BOOKING_WEBHOOK_ENDPOINT_ID", &endpoint),
            ("BOOKING_CUSTOMER", "+34600000100"),
        ],
    )
    .await
    .unwrap_or_else(|report| panic!("schemathesis found failures:\n{report}"));
    assert_tested(&report, 24);
}

/// The run tested at least `at_least` operations of the document, not none of them.
fn assert_tested(report: &str, at_least: u32) {
    let tested = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .unwrap_or_default();
    assert!(
        tested.parse::<u32>().is_ok_and(|n| n >= at_least),
        "operations tested: {tested}\n{report}"
    );
}

#[tokio::test]
async fn the_command_api_answers_as_its_openapi_document_says_under_every_schemathesis_check() {
    // Schemathesis sends a thousand requests in seconds: the per-credential limit (its 429s
    // are tested in `limits`) would leave most of them unanswered.
    // Stripe is the fake, so that a checkout reaches it.
    let stripe = fake_stripe::Fake::new().spawn().await;
    let Setup { app, owner, _graph } = setup_tuned(|settings| {
        settings.limits.per_credential_per_minute = 1_000_000;
        settings.limits.per_credential_burst = 100_000;
        // Sign-ups too, so that onboarding is tested and not mostly 429 (its limits are
        // tested in `limits`).
        settings.limits.onboard_per_ip_per_minute = 100_000;
        settings.limits.onboard_per_minute = 100_000;
        settings.stripe = stripe_settings(&stripe);
        // As shipped: webhook endpoints are https only.
        settings.webhooks.allow_http = false;
    })
    .await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let t = Tenant { owner, app: &app };
    // What the operations that take an id act on: a service, a booking, a conversation, a
    // second member, an API key, a webhook endpoint.
    let (status, _, body) = t
        .send(reqwest::Method::POST, "/v1/services", &[], Some(haircut()))
        .await;
    assert_eq!(status, 201, "{body}");
    let service = body["service_id"].as_str().unwrap().to_owned();
    let (status, body) = t.book(&service, &slot(10), "+34600000100", None).await;
    assert_eq!(status, 201, "{body}");
    let booking = body["booking_id"].as_str().unwrap().to_owned();
    let hello = notification(vec![text("34600000100", "wamid.st1", "hi")]);
    assert_eq!(post_signed(&app, &hello, APP_SECRET).await, 200);
    let created = |path: &'static str, body: serde_json::Value| {
        let t = &t;
        async move {
            let (status, _, answer) = t.send(reqwest::Method::POST, path, &[], Some(body)).await;
            assert_eq!(status, 201, "{path}: {answer}");
            answer
        }
    };
    let user = created(
        "/v1/users",
        json!({"email": "staff@st.example", "role": "staff"}),
    )
    .await["user_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = created(
        "/v1/api-keys",
        json!({"name": "Our CRM", "scopes": ["read_bookings"]}),
    )
    .await["key_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hook = created(
        "/v1/webhook-endpoints",
        json!({"url": "https://hooks.example.com/booking"}),
    )
    .await;
    let endpoint = hook["endpoint_id"].as_str().unwrap();
    let token = hook["consistency_token"].as_str().unwrap();
    // What is deleted, or suspended, is not what the other operations act on: a second
    // endpoint, and a second business for the operator.
    let doomed = created(
        "/v1/webhook-endpoints",
        json!({"url": "https://hooks.example.com/old"}),
    )
    .await["endpoint_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.onboard("st-other-salon").await.tenant_id;

    let report = schemathesis(
        "command-api.toml",
        &app.address,
        &[
            ("BOOKING_TOKEN", &t.owner.access_token),
            ("BOOKING_OPERATOR_TOKEN", &operator_token()),
            ("BOOKING_CONSISTENCY_TOKEN", token),
            ("BOOKING_TENANT_ID", &t.owner.tenant_id),
            ("BOOKING_SERVICE_ID", &service),
            ("BOOKING_BOOKING_ID", &booking),
            ("BOOKING_USER_ID", &user),
            ("BOOKING_API_KEY_ID", &key),
            ("BOOKING_WEBHOOK_ENDPOINT_ID", endpoint),
            ("BOOKING_DOOMED_ENDPOINT_ID", &doomed),
            ("BOOKING_OTHER_TENANT_ID", &other),
            ("BOOKING_CUSTOMER", "+34600000100"),
        ],
    )
    .await
    .unwrap_or_else(|report| panic!("schemathesis found failures:\n{report}"));
    assert_tested(&report, 40);
}
