//! Each API describes itself: `/openapi.json` lists every endpoint with its problem+json
//! errors, every documented operation is really routed, and `/docs` renders it with no network.

use e2e_tests::{query_api_settings, spawn_command_api, spawn_query_api};
use serde_json::Value;

const COMMAND_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/tenants"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/me"),
    ("post", "/v1/auth/mfa/enroll"),
    ("post", "/v1/auth/mfa/verify"),
    ("post", "/v1/auth/accept-invitation"),
    ("post", "/v1/users"),
    ("put", "/v1/users/{id}/role"),
    ("post", "/v1/users/{id}/deactivate"),
    ("post", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{id}"),
    ("put", "/v1/bot-config"),
    ("post", "/v1/services"),
    ("put", "/v1/services/{id}"),
    ("delete", "/v1/services/{id}"),
    ("put", "/v1/whatsapp"),
    ("get", "/webhooks/whatsapp"),
    ("post", "/webhooks/whatsapp"),
    ("post", "/v1/operator/tenants/{id}/suspend"),
    ("post", "/v1/operator/tenants/{id}/reinstate"),
    ("post", "/v1/billing/plan"),
    ("post", "/v1/billing/cancel"),
    ("post", "/v1/billing/checkout"),
    ("post", "/webhooks/stripe"),
    ("post", "/v1/auth/password-reset"),
    ("post", "/v1/auth/password-reset/confirm"),
    ("post", "/v1/auth/verify-email"),
    ("post", "/v1/auth/verify-email/resend"),
    ("post", "/v1/bookings"),
    ("post", "/v1/bookings/{id}/confirm"),
    ("post", "/v1/bookings/{id}/cancel"),
    ("post", "/v1/bookings/{id}/reschedule"),
    ("post", "/v1/bookings/{id}/arrived"),
    ("post", "/v1/bookings/{id}/complete"),
    ("post", "/v1/bookings/{id}/no-show"),
    ("post", "/v1/webhook-endpoints"),
    ("post", "/v1/webhook-endpoints/{id}/disable"),
    ("post", "/v1/webhook-endpoints/{id}/enable"),
    ("post", "/v1/webhook-endpoints/{id}/deliveries/{seq}/retry"),
    ("delete", "/v1/webhook-endpoints/{id}"),
    ("post", "/v1/conversations/{phone}/handoff"),
    ("post", "/v1/conversations/{phone}/messages"),
    ("post", "/v1/conversations/{phone}/release"),
    ("post", "/v1/customers/{phone}/erase"),
];

const QUERY_ROUTES: &[(&str, &str)] = &[
    ("get", "/v1/tenant"),
    ("get", "/v1/services"),
    ("get", "/v1/bot-config"),
    ("get", "/v1/availability"),
    ("get", "/v1/bookings"),
    ("get", "/v1/bookings/{id}"),
    ("get", "/v1/conversations"),
    ("get", "/v1/conversations/{phone}"),
    ("get", "/v1/customers/{phone}/export"),
    ("get", "/v1/usage"),
    ("get", "/v1/plans"),
    ("get", "/v1/billing"),
    ("get", "/v1/billing/invoices"),
    ("get", "/v1/audit"),
    ("get", "/v1/security-events"),
    ("get", "/v1/operator/tenants/{id}/audit"),
    ("get", "/v1/events/stream"),
    ("get", "/v1/analytics/overview"),
    ("get", "/v1/analytics/series"),
    ("get", "/v1/analytics/busiest-hours"),
    ("get", "/v1/operator/analytics"),
    ("get", "/v1/webhook-endpoints"),
    ("get", "/v1/webhook-endpoints/{id}"),
    ("get", "/v1/webhook-endpoints/{id}/deliveries"),
    ("get", "/v1/users"),
    ("get", "/v1/api-keys"),
];

async fn check(client: &reqwest::Client, base: &str, routes: &[(&str, &str)]) {
    let response = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200, "{base}/openapi.json");
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.push((method.clone(), path.clone()));
            for (code, response) in op["responses"].as_object().unwrap() {
                if code.starts_with('4') || code.starts_with('5') {
                    assert!(
                        response["content"]["application/problem+json"].is_object(),
                        "{method} {path} {code} is problem+json"
                    );
                }
            }
            assert!(op["summary"].is_string(), "{method} {path} has a summary");
        }
    }
    documented.sort();
    let mut expected: Vec<(String, String)> = routes
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(
        documented, expected,
        "{base}: the document lists exactly the routes"
    );
    // Every documented operation is routed (never axum's bare 404/405).
    for (method, path) in routes {
        let url = format!(
            "{base}{}",
            path.replace("{id}", &uuid::Uuid::nil().to_string())
                .replace("{phone}", "%2B34600000001")
        );
        let response = client
            .request(method.to_uppercase().parse().unwrap(), url)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        assert!(
            status != 405 && (status != 404 || kind == "application/problem+json"),
            "{method} {path} is routed: {status} {kind}"
        );
    }
    // The docs page works offline: it loads nothing from elsewhere.
    let page = client
        .get(format!("{base}/docs"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("openapi.json"));
    assert!(!page.contains("src=\"http") && !page.contains("href=\"http"));
}

#[tokio::test]
async fn both_apis_document_every_endpoint_and_serve_an_offline_docs_page() {
    let app = spawn_command_api().await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    check(&app.client, &app.address, COMMAND_ROUTES).await;
    check(&query.client, &query.address, QUERY_ROUTES).await;

    // What no handler takes still answers problem+json.
    for (method, url, status) in [
        ("GET", format!("{}/v1/nothing-here", app.address), 404),
        ("DELETE", format!("{}/v1/tenants", app.address), 405),
        ("GET", format!("{}/v1/services", app.address), 405),
        ("GET", format!("{}/v1/bookings/x/cancel", app.address), 405),
        ("PATCH", format!("{}/v1/services/x", app.address), 405),
        ("POST", format!("{}/v1/bookings", query.address), 405),
        ("GET", format!("{}/nothing", query.address), 404),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), &url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {url}");
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let oversize = app
        .client
        .post(format!("{}/webhooks/whatsapp", app.address))
        .header("x-hub-signature-256", "sha256=00")
        .body(vec![b' '; 2 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(oversize.status().as_u16(), 413);
    assert_eq!(
        oversize.headers()["content-type"],
        "application/problem+json"
    );
}

/// The routes that check no role or scope: they never claim a 403 for one.
const WITHOUT_ROLES: &[(&str, &str)] = &[
    ("post", "/v1/tenants"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/auth/logout"),
    ("get", "/v1/me"),
    ("post", "/v1/auth/mfa/enroll"),
    ("post", "/v1/auth/mfa/verify"),
    ("post", "/v1/auth/accept-invitation"),
    ("get", "/webhooks/whatsapp"),
    ("post", "/webhooks/whatsapp"),
    ("post", "/v1/operator/tenants/{id}/suspend"),
    ("post", "/v1/operator/tenants/{id}/reinstate"),
    ("get", "/v1/tenant"),
    ("get", "/v1/operator/tenants/{id}/audit"),
    ("get", "/v1/operator/analytics"),
    ("get", "/v1/plans"),
    ("post", "/webhooks/stripe"),
    ("post", "/v1/auth/password-reset"),
    ("post", "/v1/auth/password-reset/confirm"),
    ("post", "/v1/auth/verify-email"),
];

#[tokio::test]
async fn only_routes_that_check_a_role_document_a_403_for_it() {
    for doc in [command_api::openapi(), query_api::openapi()] {
        let doc = serde_json::to_value(doc).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let forbidden = op["responses"]["403"]["description"]
                    .as_str()
                    .unwrap_or_default();
                let checks_roles = !WITHOUT_ROLES.contains(&(method.as_str(), path.as_str()));
                assert_eq!(
                    forbidden.contains("role or scopes"),
                    checks_roles,
                    "{method} {path}: 403 {forbidden:?}"
                );
            }
        }
    }
}
