//! Schemathesis, a tool nobody here wrote, against the query API's own OpenAPI document with a
//! real business's credential and data: every check (no server error, every status and body as
//! documented, schema-valid requests accepted, schema-invalid ones refused, ...). What it cannot
//! know from the document is in `tests/schemathesis/` (the platform's string formats, and the
//! few refusals no schema can express, each with its reason). `just test` installs the pinned
//! version first (`scripts/schemathesis.sh`).

use std::path::PathBuf;
use std::process::Stdio;

use e2e_tests::tenant::{Tenant, haircut, slot};
use e2e_tests::wa::{APP_SECRET, Setup, notification, post_signed, setup, text};
use e2e_tests::{
    analytics_settings, operator_token, projector_settings, query_api_settings, spawn_analytics,
    spawn_projector, spawn_query_api,
};
use serde_json::json;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs schemathesis on `base`'s `/openapi.json` with `env` (the credentials and ids
/// `tests/schemathesis/schemathesis.toml` names); its report on failure.
async fn schemathesis(base: &str, env: &[(&str, &str)]) -> Result<String, String> {
    let root = root();
    let program = root.join(".data/venv/bin/schemathesis");
    assert!(
        program.exists(),
        "schemathesis is not installed: run scripts/schemathesis.sh (just test does)"
    );
    let dir = root.join("tests/schemathesis");
    let output = tokio::process::Command::new(program)
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
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
    // It ran every operation of the document, not none of them.
    assert!(report.contains("Tested: "), "{report}");
    let tested = report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Tested: "))
        .unwrap_or_default();
    assert!(
        tested.parse::<u32>().is_ok_and(|n| n >= 20),
        "operations tested: {tested}\n{report}"
    );
}
