//! Every tenant endpoint of both APIs against the same refusals: no or bad credentials (401), a
//! role that may not (403), another tenant's ids (404, no existence leak) and a suspended
//! tenant (423), each as application/problem+json.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::access::Role;
use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    operator_token, projector_settings, query_api_settings, spawn_command_api, spawn_projector,
    spawn_query_api, test_auth_settings,
};
use serde_json::{Value, json};

/// (method, path, body, needs a write permission). `{booking}`, `{service}`, `{user}`, `{key}`
/// and `{phone}` are filled with the target tenant's ids.
pub(crate) fn command_routes() -> Vec<(&'static str, &'static str, Value, bool)> {
    let service = json!({"name": "Trim", "price": {"minor": 1000, "currency": "EUR"}, "duration_minutes": 30});
    vec![
        ("GET", "/v1/me", Value::Null, false),
        ("POST", "/v1/auth/mfa/enroll", json!({}), false),
        (
            "POST",
            "/v1/auth/mfa/verify",
            json!({"code": "000000"}),
            false,
        ),
        (
            "POST",
            "/v1/users",
            json!({"email": "new@x.example", "role": "staff"}),
            true,
        ),
        (
            "PUT",
            "/v1/users/{user}/role",
            json!({"role": "staff"}),
            true,
        ),
        ("POST", "/v1/users/{user}/deactivate", json!({}), true),
        (
            "POST",
            "/v1/api-keys",
            json!({"name": "k", "scopes": ["read_bookings"]}),
            true,
        ),
        ("DELETE", "/v1/api-keys/{key}", Value::Null, true),
        ("PUT", "/v1/bot-config", e2e_tests::tenant::settings(), true),
        ("POST", "/v1/services", service.clone(), true),
        ("PUT", "/v1/services/{service}", service, true),
        ("DELETE", "/v1/services/{service}", Value::Null, true),
        (
            "PUT",
            "/v1/whatsapp",
            json!({"phone_number_id": "106540352242922", "access_token": "t", "app_secret": "app-secret-0123456789", "verify_token": "verify-token-0123456789"}),
            true,
        ),
        (
            "POST",
            "/v1/bookings",
            json!({"service_id": "{service}", "start": "{start}", "customer": {"phone": "+34600000999"}}),
            true,
        ),
        ("POST", "/v1/bookings/{booking}/confirm", json!({}), true),
        ("POST", "/v1/bookings/{booking}/cancel", json!({}), true),
        (
            "POST",
            "/v1/bookings/{booking}/reschedule",
            json!({"start": "{start}"}),
            true,
        ),
        ("POST", "/v1/bookings/{booking}/arrived", json!({}), true),
        ("POST", "/v1/bookings/{booking}/complete", json!({}), true),
        ("POST", "/v1/bookings/{booking}/no-show", json!({}), true),
        (
            "POST",
            "/v1/webhook-endpoints",
            json!({"url": "https://hooks.example.com/new"}),
            true,
        ),
        (
            "POST",
            "/v1/webhook-endpoints/{hook}/disable",
            json!({}),
            true,
        ),
        (
            "POST",
            "/v1/webhook-endpoints/{hook}/enable",
            json!({}),
            true,
        ),
        (
            "POST",
            "/v1/webhook-endpoints/{hook}/deliveries/1/retry",
            json!({}),
            true,
        ),
        ("DELETE", "/v1/webhook-endpoints/{hook}", Value::Null, true),
        ("POST", "/v1/conversations/{phone}/handoff", json!({}), true),
        (
            "POST",
            "/v1/conversations/{phone}/messages",
            json!({"text": "Hello"}),
            true,
        ),
        ("POST", "/v1/conversations/{phone}/release", json!({}), true),
        ("POST", "/v1/customers/{phone}/erase", json!({}), true),
    ]
}

/// Query routes and whether a viewer is refused them.
fn query_routes() -> Vec<(&'static str, bool)> {
    vec![
        ("/v1/tenant", false),
        ("/v1/services", false),
        ("/v1/bot-config", false),
        (
            "/v1/availability?service_id={service}&date=2030-01-01",
            false,
        ),
        ("/v1/bookings", false),
        ("/v1/bookings/{booking}", false),
        ("/v1/conversations", false),
        ("/v1/conversations?waiting=true", false),
        ("/v1/conversations/{phone}", false),
        ("/v1/customers/{phone}/export", true),
        ("/v1/usage", true),
        ("/v1/analytics/overview", true),
        ("/v1/analytics/series?interval=week", true),
        ("/v1/analytics/busiest-hours", true),
        ("/v1/audit", true),
        ("/v1/security-events", true),
        ("/v1/events/stream", true),
        ("/v1/webhook-endpoints", true),
        ("/v1/webhook-endpoints/{hook}", true),
        ("/v1/webhook-endpoints/{hook}/deliveries", true),
        ("/v1/users", true),
        ("/v1/api-keys", true),
    ]
}

/// The customer of the tenant attacked: `{phone}` in every path.
pub(crate) const A_CUSTOMER: &str = "+34600000001";

pub(crate) struct Ids {
    /// The tenant's customer (booked by it): `{phone}`.
    pub phone: String,
    pub booking: String,
    pub service: String,
    pub user: String,
    pub key: String,
    pub hook: String,
}

pub(crate) fn fill(template: &str, ids: &Ids) -> String {
    template
        .replace("{booking}", &ids.booking)
        .replace("{service}", &ids.service)
        .replace("{user}", &ids.user)
        .replace("{key}", &ids.key)
        .replace("{hook}", &ids.hook)
        .replace("{phone}", &ids.phone.replace('+', "%2B"))
        .replace("{start}", &slot(15))
}

async fn send(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: &Value,
    token: Option<&str>,
) -> (u16, String) {
    let mut request = client.request(method.parse().unwrap(), format!("{base}{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if !body.is_null() {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    (status, kind)
}

/// A tenant with a service, a booking of `customer`'s, a second user and an API key; its ids.
/// `{phone}` fills in as that customer.
pub(crate) async fn populated(t: &Tenant<'_>, customer: &str) -> Ids {
    let service = t.configured().await;
    let (_, booked) = t.book(&service, &slot(10), customer, None).await;
    let (_, _, invited) = t
        .send(
            reqwest::Method::POST,
            "/v1/users",
            &[],
            Some(json!({"email": "staff@x.example", "role": "staff"})),
        )
        .await;
    let (_, _, key) = t
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "k", "scopes": ["read_bookings"]})),
        )
        .await;
    let (_, _, hook) = t
        .send(
            reqwest::Method::POST,
            "/v1/webhook-endpoints",
            &[],
            Some(json!({"url": "https://hooks.example.com/x"})),
        )
        .await;
    Ids {
        phone: customer.to_owned(),
        hook: hook["endpoint_id"].as_str().unwrap().to_owned(),
        booking: booked["booking_id"].as_str().unwrap().to_owned(),
        service,
        user: invited["user_id"].as_str().unwrap().to_owned(),
        key: key["key_id"].as_str().unwrap().to_owned(),
    }
}

#[tokio::test]
async fn every_endpoint_refuses_bad_credentials_other_tenants_ids_weak_roles_and_suspended_tenants()
{
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let a = Tenant {
        owner: app.onboard("matrix-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("matrix-b").await,
        app: &app,
    };
    let a_ids = populated(&a, A_CUSTOMER).await;
    let b_ids = populated(&b, "+34600000002").await;
    let tenant_a: uuid::Uuid = a.owner.tenant_id.parse().unwrap();
    let viewer =
        e2e_tests::member_token(&app.db.superuser_url_pool().await, tenant_a, Role::Viewer).await;
    // Forged: alg none, claims of tenant B under A's signature, another key, expired.
    let parts: Vec<&str> = a.owner.access_token.split('.').collect();
    let mut claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let alg_none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT","kid":"test-1"}"#),
        parts[1]
    );
    claims["tid"] = json!(b.owner.tenant_id);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    let other_key = platform::auth::JwtKeys::from_settings(&platform::auth::AuthSettings {
        keys: vec![platform::auth::KeySetting {
            kid: "test-1".into(),
            secret: "another-secret-another-secret-another".to_owned().into(),
        }],
        ..test_auth_settings()
    })
    .unwrap()
    .issue(
        tenant_a,
        uuid::Uuid::new_v4(),
        Role::Owner,
        platform::auth::SessionRef {
            id: uuid::Uuid::new_v4(),
            epoch: 0,
        },
    )
    .unwrap();
    let bad: Vec<(&str, Option<String>)> = vec![
        ("no token", None),
        ("alg none", Some(alg_none)),
        ("tampered", Some(tampered)),
        ("another key", Some(other_key)),
        ("revoked-style garbage", Some("bk_live_not-a-key".into())),
    ];

    for (method, template, body, write) in command_routes() {
        let path = fill(template, &a_ids);
        let body: Value = serde_json::from_str(&fill(&body.to_string(), &a_ids)).unwrap();
        for (what, token) in &bad {
            let (status, kind) = send(
                &app.client,
                &app.address,
                method,
                &path,
                &body,
                token.as_deref(),
            )
            .await;
            assert_eq!(
                (status, kind.as_str()),
                (401, "application/problem+json"),
                "{method} {template} with {what}"
            );
        }
        if write {
            let (status, kind) = send(
                &app.client,
                &app.address,
                method,
                &path,
                &body,
                Some(&viewer),
            )
            .await;
            assert_eq!(
                (status, kind.as_str()),
                (403, "application/problem+json"),
                "{method} {template} as a viewer"
            );
        }
        if template.contains('{') {
            // A's owner, B's ids: nothing there.
            let theirs = fill(template, &b_ids);
            let (status, kind) = send(
                &app.client,
                &app.address,
                method,
                &theirs,
                &body,
                Some(&a.owner.access_token),
            )
            .await;
            assert_eq!(
                (status, kind.as_str()),
                (404, "application/problem+json"),
                "{method} {template} with another tenant's id"
            );
        }
    }
    for (template, viewer_refused) in query_routes() {
        let path = fill(template, &a_ids);
        for (what, token) in &bad {
            let (status, kind) = send(
                &query.client,
                &query.address,
                "GET",
                &path,
                &Value::Null,
                token.as_deref(),
            )
            .await;
            assert_eq!(
                (status, kind.as_str()),
                (401, "application/problem+json"),
                "GET {template} with {what}"
            );
        }
        let (status, _) = send(
            &query.client,
            &query.address,
            "GET",
            &path,
            &Value::Null,
            Some(&viewer),
        )
        .await;
        assert_eq!(
            status == 403,
            viewer_refused,
            "GET {template} as a viewer: {status}"
        );
    }
    for template in [
        "/v1/webhook-endpoints/{hook}",
        "/v1/webhook-endpoints/{hook}/deliveries",
        "/v1/bookings/{booking}",
        "/v1/availability?service_id={service}&date=2030-01-01",
    ] {
        let (status, _) = send(
            &query.client,
            &query.address,
            "GET",
            &fill(template, &b_ids),
            &Value::Null,
            Some(&a.owner.access_token),
        )
        .await;
        assert_eq!(status, 404, "GET {template} with another tenant's id");
    }

    // Suspended: every endpoint answers 423 with the reason, for every credential of A.
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
    let at: Value = suspended.json().await.unwrap();
    let at = at["consistency_token"].as_str().unwrap().to_owned();
    for (method, template, body, _) in command_routes() {
        let path = fill(template, &a_ids);
        let body: Value = serde_json::from_str(&fill(&body.to_string(), &a_ids)).unwrap();
        let (status, kind) = send(
            &app.client,
            &app.address,
            method,
            &path,
            &body,
            Some(&a.owner.access_token),
        )
        .await;
        assert_eq!(
            (status, kind.as_str()),
            (423, "application/problem+json"),
            "{method} {template} while suspended"
        );
    }
    for (template, _) in query_routes() {
        let response = query
            .client
            .get(format!("{}{}", query.address, fill(template, &a_ids)))
            .bearer_auth(&a.owner.access_token)
            .header("x-consistency-token", &at)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            423,
            "GET {template} while suspended"
        );
    }
    // B is untouched.
    let (status, _) = send(
        &app.client,
        &app.address,
        "GET",
        "/v1/me",
        &Value::Null,
        Some(&b.owner.access_token),
    )
    .await;
    assert_eq!(status, 200);
}
