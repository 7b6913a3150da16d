//! The cross-tenant attack suite, generated from the APIs' own OpenAPI documents: every
//! operation either document lists is tried by business B against business A (A's ids in the
//! path, with B's owner token and with B's API key holding every scope), with A's tenant id
//! smuggled into the query, a header and the body, with the operator's token where a business's
//! is due, and with a business's token where the operator's is due. A route added to a document
//! is attacked without this file changing (an id parameter it cannot fill fails it, so that none
//! is skipped).
//!
//! The oracles: no attack succeeds (2xx), no answer carries anything of A's (its ids, slug,
//! owner's email), and A is unchanged (not one event more in the log, and the
//! same bookings, services and team as read by A).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use e2e_tests::tenant::Tenant;
use e2e_tests::{
    operator_token, projector_settings, query_api_settings, spawn_command_api_tuned,
    spawn_projector, spawn_query_api,
};
use serde_json::{Value, json};
use tracing_subscriber::layer::SubscriberExt as _;

use crate::access_matrix::{A_CUSTOMER, Ids, command_routes, fill, populated};

/// The security events the APIs log (`target: "security"`), each as its fields (the message
/// under `message`).
#[derive(Clone, Default)]
pub(crate) struct SecurityLog(pub(crate) Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for SecurityLog {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "security" {
            return;
        }
        struct Fields<'a>(&'a mut BTreeMap<String, String>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0.insert(
                    field.name().to_owned(),
                    format!("{value:?}").trim_matches('"').to_owned(),
                );
            }
        }
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        self.0.lock().unwrap().push(fields);
    }
}

/// The placeholder of `access_matrix` that names the kind of id `param` is in `path`; `None`
/// for a parameter that is not an id of the business's (a delivery's number).
fn placeholder(path: &str, param: &str) -> Option<&'static str> {
    let kind = path
        .trim_start_matches("/v1/")
        .split('/')
        .next()
        .unwrap_or_default();
    match (kind, param) {
        ("services", "id") => Some("{service}"),
        ("bookings", "id") => Some("{booking}"),
        ("users", "id") => Some("{user}"),
        ("api-keys", "id") => Some("{key}"),
        ("webhook-endpoints", "id") => Some("{hook}"),
        ("conversations" | "customers", "phone") => Some("{phone}"),
        (_, "seq") => None,
        _ => panic!("{path}: the attack suite does not know what `{param}` names; add it here"),
    }
}

/// `path` of the document in `access_matrix`'s placeholders, and whether it names any of the
/// business's ids.
fn as_template(path: &str) -> (String, bool) {
    let mut template = path.to_owned();
    let mut names_ids = false;
    for param in path.split('{').skip(1).filter_map(|p| p.split('}').next()) {
        let filled = match placeholder(path, param) {
            Some(name) => {
                names_ids = true;
                name
            }
            None => "1",
        };
        template = template.replace(&format!("{{{param}}}"), filled);
    }
    (template, names_ids)
}

struct Operation {
    method: String,
    path: String,
    /// The operator's own (`/v1/operator/`), a business's (bearer), or public.
    operator: bool,
    secured: bool,
}

fn operations(doc: &Value) -> Vec<Operation> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if !["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                continue;
            }
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            all.push(Operation {
                method: method.to_uppercase(),
                path: path.clone(),
                operator: path.starts_with("/v1/operator/"),
                secured,
            });
        }
    }
    all
}

struct Attack<'a> {
    client: &'a reqwest::Client,
    /// What of A's must never appear in an answer to someone else.
    secrets: Vec<String>,
    tried: usize,
    leaks: Vec<String>,
    /// The statuses of the attempts refused for who asked or what they asked for.
    refused: Vec<u16>,
}

impl Attack<'_> {
    #[allow(clippy::too_many_arguments)]
    async fn try_one(
        &mut self,
        what: &str,
        base: &str,
        method: &str,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
        body: &Value,
        refused: &[u16],
    ) {
        self.tried += 1;
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{base}{path}"))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if !body.is_null() {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if platform::security::is_refusal(status) {
            self.refused.push(status);
        }
        let streaming = response
            .headers()
            .get("content-type")
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        // A stream (B's own events) stays open: what it is is in its status and headers.
        let text = if streaming {
            String::new()
        } else {
            response.text().await.unwrap_or_default()
        };
        if !refused.is_empty() && !refused.contains(&status) {
            self.leaks.push(format!(
                "{what}: {method} {path} answered {status}, not one of {refused:?}: {text}"
            ));
        }
        if let Some(secret) = self.secrets.iter().find(|s| text.contains(s.as_str())) {
            self.leaks.push(format!(
                "{what}: {method} {path} answered with A's {secret}: {text}"
            ));
        }
    }
}

/// What A has, as A reads it: its bookings, services and team (the answer bodies).
async fn state_of(query: &e2e_tests::QueryApp, token: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for path in [
        "/v1/bookings",
        "/v1/services",
        "/v1/users",
        "/v1/api-keys",
        "/v1/webhook-endpoints",
    ] {
        let response = query
            .client
            .get(format!("{}{path}", query.address))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
        seen.push(response.json().await.unwrap());
    }
    seen
}

#[tokio::test]
async fn business_b_cannot_read_or_change_anything_of_business_a_through_any_documented_route() {
    // The APIs run on this test's thread (a current-thread runtime): what they log is seen here.
    let security = SecurityLog::default();
    let _log =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(security.clone()));
    let app = spawn_command_api_tuned("http://127.0.0.1:1", e2e_tests::REDIS_URL, |s| {
        // Hundreds of requests by one credential in a second: the limit's 429 would hide
        // what the route itself answers.
        s.limits.per_credential_per_minute = 1_000_000;
        s.limits.per_credential_burst = 100_000;
    })
    .await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let mut query_settings = query_api_settings(&app.db, &app.nats);
    query_settings.limits.per_credential_per_minute = 1_000_000;
    query_settings.limits.per_credential_burst = 100_000;
    let query = spawn_query_api(query_settings).await;
    let a = Tenant {
        owner: app.onboard("attack-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("attack-b").await,
        app: &app,
    };
    let a_ids: Ids = populated(&a, A_CUSTOMER).await;
    let b_ids: Ids = populated(&b, "+34600000002").await;
    let scopes = domain::access::Permission::labels();
    let (status, _, key) = b
        .send(
            reqwest::Method::POST,
            "/v1/api-keys",
            &[],
            Some(json!({"name": "everything", "scopes": scopes})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let b_key = key["key"].as_str().unwrap().to_owned();

    let pool = app.db.superuser_url_pool().await;
    let events_of_a = || async {
        sqlx::query_scalar::<_, i64>("select count(*) from events where tenant_id = $1")
            .bind(a.owner.tenant_id.parse::<uuid::Uuid>().unwrap())
            .fetch_one(&pool)
            .await
            .unwrap()
    };
    // Everything A did is read back before the attacks (the projections have caught up).
    let before = e2e_tests::eventually(std::time::Duration::from_secs(20), || async {
        let state = state_of(&query, &a.owner.access_token).await;
        let bookings = state[0]["items"].as_array().map_or(0, Vec::len);
        let endpoints = state[4].as_array().map_or(0, Vec::len);
        // Settled: the booking and the webhook endpoint are there (both projected), and a
        // second read a moment later is the same.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        (bookings == 1 && endpoints == 1 && state_of(&query, &a.owner.access_token).await == state)
            .then_some(state)
    })
    .await
    .expect("A's data is read back");
    let events_before = events_of_a().await;

    let mut attack = Attack {
        client: &app.client,
        secrets: vec![
            a.owner.tenant_id.clone(),
            a_ids.booking.clone(),
            a_ids.service.clone(),
            a_ids.user.clone(),
            a_ids.key.clone(),
            a_ids.hook.clone(),
            a.owner.owner_id.clone(),
            "attack-a".into(),
        ],
        tried: 0,
        leaks: Vec::new(),
        refused: Vec::new(),
    };
    let logged_before = security.0.lock().unwrap().len();
    let attacks_began = chrono::Utc::now();
    let bodies = command_routes();
    let body_for = |method: &str, template: &str, ids: &Ids| -> Value {
        let body = bodies
            .iter()
            .find(|(m, t, _, _)| *m == method && *t == template)
            .map(|(_, _, body, _)| body.clone())
            .unwrap_or_else(|| {
                if method == "GET" || method == "DELETE" {
                    Value::Null
                } else {
                    json!({})
                }
            });
        serde_json::from_str(&fill(&body.to_string(), ids)).unwrap()
    };
    let a_tenant = a.owner.tenant_id.clone();
    let operator = operator_token();
    for (base, document) in [(&app.address, "command"), (&query.address, "query")] {
        let doc: Value = app
            .client
            .get(format!("{base}/openapi.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ops = operations(&doc);
        assert!(ops.len() > 20, "{document}: {} operations", ops.len());
        for op in ops.iter().filter(|op| op.secured) {
            let method = op.method.as_str();
            if op.operator {
                // A business's owner where the operator's token is due, on A's tenant.
                let path = op.path.replace("{id}", &a_tenant);
                let body = if method == "POST" {
                    json!({"reason": "attack"})
                } else {
                    Value::Null
                };
                attack
                    .try_one(
                        "a business on the operator's route",
                        base,
                        method,
                        &path,
                        &b.owner.access_token,
                        &[],
                        &body,
                        &[401, 403],
                    )
                    .await;
                continue;
            }
            let (template, names_ids) = as_template(&op.path);
            let path = fill(&template, &a_ids);
            let body = body_for(method, &template, &a_ids);
            if names_ids {
                for (what, token) in [
                    ("B's owner with A's ids", b.owner.access_token.as_str()),
                    ("B's API key with A's ids", b_key.as_str()),
                ] {
                    attack
                        .try_one(what, base, method, &path, token, &[], &body, &[404])
                        .await;
                }
            }
            // A's tenant id smuggled in where a client might think it chooses the business:
            // the query, a header, the body, of a request about B's own. Whatever is
            // answered, or changed, is B's.
            let own = fill(&template, &b_ids);
            let own_body = body_for(method, &template, &b_ids);
            let smuggled_path = format!(
                "{own}{}tenant_id={a_tenant}",
                if own.contains('?') { '&' } else { '?' }
            );
            attack
                .try_one(
                    "A's tenant id in the query",
                    base,
                    method,
                    &smuggled_path,
                    &b.owner.access_token,
                    &[],
                    &own_body,
                    &[],
                )
                .await;
            attack
                .try_one(
                    "A's tenant id in headers",
                    base,
                    method,
                    &own,
                    &b.owner.access_token,
                    &[("X-Tenant-Id", &a_tenant), ("X-Tenant", &a_tenant)],
                    &own_body,
                    &[],
                )
                .await;
            if let Value::Object(fields) = &own_body {
                let mut smuggled = fields.clone();
                smuggled.insert("tenant_id".into(), json!(a_tenant));
                attack
                    .try_one(
                        "A's tenant id in the body",
                        base,
                        method,
                        &own,
                        &b.owner.access_token,
                        &[],
                        &Value::Object(smuggled),
                        &[],
                    )
                    .await;
            }
            // The operator is not a member of any business.
            attack
                .try_one(
                    "the operator on a business's route",
                    base,
                    method,
                    &path,
                    &operator,
                    &[],
                    &body,
                    &[401, 403],
                )
                .await;
        }
    }
    assert!(
        attack.leaks.is_empty(),
        "{} of {} attacks got through:\n{}",
        attack.leaks.len(),
        attack.tried,
        attack.leaks.join("\n")
    );
    assert!(attack.tried >= 200, "only {} attacks tried", attack.tried);
    // Every refusal is a security event; B's probes with a genuine credential name B.
    let logged: Vec<_> = security.0.lock().unwrap()[logged_before..]
        .iter()
        .filter(|e| e.get("message").is_some_and(|m| m == "refused"))
        .cloned()
        .collect();
    assert_eq!(
        logged.len(),
        attack.refused.len(),
        "a security event for each refused attempt: {logged:?}"
    );
    // Each kept (the writer is asynchronous); B's probes with a genuine credential name B.
    let superuser = app.db.superuser_url_pool().await;
    let kept = e2e_tests::eventually(std::time::Duration::from_secs(30), || async {
        let rows: Vec<(Option<uuid::Uuid>, Option<String>, Value)> = sqlx::query_as(
            "select tenant_id, actor, detail from security_events
              where kind = 'refused' and at >= $1",
        )
        .bind(attacks_began)
        .fetch_all(&superuser)
        .await
        .unwrap();
        (rows.len() == attack.refused.len()).then_some(rows)
    })
    .await;
    let Some(kept) = kept else {
        let counted: i64 = sqlx::query_scalar(
            "select count(*) from security_events where kind = 'refused' and at >= $1",
        )
        .bind(attacks_began)
        .fetch_one(&superuser)
        .await
        .unwrap();
        panic!("{counted} refusals kept of {}", attack.refused.len());
    };
    let probes: Vec<_> = kept.iter().filter(|r| r.2["status"] == 404).collect();
    assert!(!probes.is_empty());
    let b_tenant: uuid::Uuid = b.owner.tenant_id.parse().unwrap();
    for probe in probes {
        assert_eq!(probe.0, Some(b_tenant), "{probe:?}");
        assert!(
            probe.1.is_some() && probe.2["route"].is_string(),
            "{probe:?}"
        );
    }
    // B's owner reads B's own events, and none of A's.
    let (status, page) = query
        .get("/v1/security-events?limit=200", &b.owner.access_token, None)
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty());
    let a_tenant = &a.owner.tenant_id;
    assert!(!page.to_string().contains(a_tenant.as_str()), "{page}");
    assert_eq!(events_of_a().await, events_before, "A's log changed");
    assert_eq!(
        state_of(&query, &a.owner.access_token).await,
        before,
        "A's data changed"
    );
}
