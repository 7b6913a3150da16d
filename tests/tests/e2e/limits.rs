//! Rate limits: brute force on logins, and what happens when Redis is down.

use e2e_tests::{
    CommandApp, REDIS_URL, eventually, spawn_command_api_custom, spawn_command_api_tuned,
};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt as _;

const WRONG: &str = "not the password";
const RIGHT: &str = "correct horse battery staple";

/// Logs in to the owner's account `n` times from `from` (behind the trusted proxy); each
/// answer's status, `Retry-After` and how long it took.
async fn logins(
    app: &CommandApp,
    from: &str,
    password: &str,
    n: usize,
) -> Vec<(u16, Option<u64>, std::time::Duration)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let started = std::time::Instant::now();
        let response = app
            .client
            .post(format!("{}/v1/auth/login", app.address))
            .header("x-forwarded-for", from)
            .json(&json!({"slug": "demo-salon", "email": "owner@demo-salon.example", "password": password}))
            .send()
            .await
            .unwrap();
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().parse().unwrap());
        out.push((response.status().as_u16(), retry, started.elapsed()));
    }
    out
}

/// Guessing is throttled where it comes from, never where it aims: the guesser waits, the
/// owner with the right password from an address of their own signs in at once, and guesses
/// from everywhere at once are answered late; each failure is a security event.
async fn brute_force_is_limited(redis_url: &str) {
    // The APIs run on this test's thread: what they log goes to this (cheap) subscriber, as
    // before the events were kept, not through the suite's log output.
    let _log = tracing::subscriber::set_default(
        tracing_subscriber::registry().with(crate::attacks::SecurityLog::default()),
    );
    let app = spawn_command_api_tuned("http://127.0.0.1:1", redis_url, |s| {
        s.limits.trusted_proxies = "127.0.0.1, ::1".into();
    })
    .await;
    app.onboard("demo-salon").await;
    let guesser = "203.0.113.7";
    let attempts = logins(&app, guesser, WRONG, 7).await;
    assert!(
        attempts[..5].iter().all(|(s, ..)| *s == 401),
        "{attempts:?}"
    );
    for (status, retry_after, _) in &attempts[5..] {
        assert_eq!(*status, 429, "{attempts:?}");
        assert!(retry_after.unwrap() >= 1);
    }
    // The guesser is refused even with the right password: it is the guesser.
    assert_eq!(logins(&app, guesser, RIGHT, 1).await[0].0, 429);
    // The owner, from an address that has not been guessing, is signed in at once.
    let owner = logins(&app, "198.51.100.2", RIGHT, 1).await;
    assert_eq!(owner[0].0, 200, "{owner:?}");

    // Guesses from many addresses, one each: none is refused, but once the account has drawn
    // many failures, each further one is answered late. The owner still is not.
    let spread: Vec<_> = futures::future::join_all((0..25).map(|i| {
        let app = &app;
        async move { logins(app, &format!("198.18.0.{i}"), WRONG, 1).await[0] }
    }))
    .await;
    assert!(spread.iter().all(|(s, ..)| *s == 401), "{spread:?}");
    let late = spread
        .iter()
        .filter(|(.., took)| *took >= std::time::Duration::from_secs(2))
        .count();
    assert!(
        late >= 3,
        "past twenty failures, each is answered late: {spread:?}"
    );
    let owner = logins(&app, "198.51.100.3", RIGHT, 1).await;
    assert_eq!(owner[0].0, 200);
    assert!(owner[0].2 < std::time::Duration::from_secs(2), "{owner:?}");

    // Kept: each failure with the account and the address, and the guesser's refusals.
    let superuser = app.db.superuser_url_pool().await;
    let kept = eventually(std::time::Duration::from_secs(10), || async {
        let rows: Vec<(
            String,
            Option<uuid::Uuid>,
            Option<String>,
            serde_json::Value,
        )> = sqlx::query_as("select kind, tenant_id, source, detail from security_events")
            .fetch_all(&superuser)
            .await
            .unwrap();
        (rows.iter().filter(|r| r.0 == "login_failed").count() == 5 + 25).then_some(rows)
    })
    .await
    .expect("every failed sign-in is kept");
    assert!(
        kept.iter()
            .filter(|r| r.0 == "login_failed")
            .all(|r| r.3["account"] == "owner@demo-salon.example"
                && r.1.is_some()
                && r.2.is_some()),
        "{kept:?}"
    );
    assert!(
        kept.iter()
            .any(|r| r.0 == "login_throttled" && r.2.as_deref() == Some(guesser)),
        "{kept:?}"
    );
}

#[tokio::test]
async fn password_guessing_against_an_account_is_limited() {
    brute_force_is_limited(REDIS_URL).await;
}

#[tokio::test]
async fn with_redis_down_requests_still_work_and_limits_hold_in_process() {
    // Nothing listens on port 1: every Redis call fails at once.
    let app = spawn_command_api_custom("http://127.0.0.1:1", "redis://127.0.0.1:1").await;
    let owner = app.onboard("demo-salon").await;
    assert_eq!(
        app.get_with("/v1/me", &owner.access_token)
            .await
            .status()
            .as_u16(),
        200
    );
    // The tenant gate's cache is bypassed: the tenant is read from its stream.
    let gated = app
        .client
        .post(format!(
            "{}/v1/bookings/{}/confirm",
            app.address,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&owner.access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(gated.status().as_u16(), 404);
    drop(app);
    brute_force_is_limited("redis://127.0.0.1:1").await;
}

#[tokio::test]
async fn one_credential_cannot_flood_the_api() {
    let app = spawn_command_api_custom("http://127.0.0.1:1", REDIS_URL).await;
    let owner = app.onboard("demo-salon").await;
    let path = format!(
        "{}/v1/bookings/{}/confirm",
        app.address,
        uuid::Uuid::new_v4()
    );
    // All at once: the burst (100) passes and the rest is limited, however slow the machine
    // (the bucket refills one request per 100 ms).
    let requests = (0..160).map(|_| {
        let request = app
            .client
            .post(&path)
            .bearer_auth(&owner.access_token)
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(requests).await;
    let passed = statuses.iter().filter(|s| **s == 404).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(passed + limited, 160, "{statuses:?}");
    assert!(passed >= 100, "the burst passes: {passed}");
    assert!(limited >= 20, "then the credential is limited: {limited}");
}

#[tokio::test]
async fn sign_ups_from_one_address_are_limited() {
    let app = spawn_command_api_custom("http://127.0.0.1:1", REDIS_URL).await;
    // At once, so that the bucket (20, refilling one per 3 s) cannot refill in between.
    let sign_ups = (0..30).map(|i| {
        let request = app
            .client
            .post(format!("{}/v1/tenants", app.address))
            .json(&CommandApp::onboarding(&format!("salon-{i}")))
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(sign_ups).await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(created + limited, 30, "{statuses:?}");
    assert!(created >= 20 && limited >= 5, "{statuses:?}");
}

#[tokio::test]
async fn sign_ups_from_many_addresses_together_are_capped() {
    // One address may sign up as often as it likes here; the platform as a whole may not.
    let app = spawn_command_api_tuned("http://127.0.0.1:1", REDIS_URL, |s| {
        s.limits.onboard_per_ip_per_minute = 1_000;
        s.limits.onboard_per_minute = 5;
    })
    .await;
    let sign_ups = (0..12).map(|i| {
        let request = app
            .client
            .post(format!("{}/v1/tenants", app.address))
            .json(&CommandApp::onboarding(&format!("capped-{i}")))
            .send();
        async move { request.await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(sign_ups).await;
    let created = statuses.iter().filter(|s| **s == 201).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(created + limited, 12, "{statuses:?}");
    assert!((5..=6).contains(&created), "{statuses:?}");
}

/// Behind a trusted proxy (the dashboard, a load balancer) each client is counted by the
/// address the proxy names; a client that is not the proxy cannot pick the address it is
/// counted under.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_has_its_own_limit_and_nobody_else_can_pick_one() {
    let sign_up = |app: &CommandApp, i: usize, from: &'static str| {
        let request = app
            .client
            .post(format!("{}/v1/tenants", app.address))
            .header("x-forwarded-for", from)
            .json(&CommandApp::onboarding(&format!("proxied-{i}")))
            .send();
        async move { request.await.unwrap().status().as_u16() }
    };
    let trusting = spawn_command_api_tuned("http://127.0.0.1:1", REDIS_URL, |s| {
        s.limits.onboard_per_ip_per_minute = 2;
        s.limits.trusted_proxies = "127.0.0.1, ::1".into();
    })
    .await;
    let mut statuses = vec![];
    for (i, from) in [(0, "203.0.113.7"), (1, "203.0.113.7"), (2, "203.0.113.7")] {
        statuses.push(sign_up(&trusting, i, from).await);
    }
    assert_eq!(statuses, [201, 201, 429], "one client's limit");
    // Another client behind the same proxy has its own; a forged earlier entry changes nothing.
    assert_eq!(sign_up(&trusting, 3, "198.51.100.1").await, 201);
    assert_eq!(sign_up(&trusting, 4, "192.0.2.1, 203.0.113.7").await, 429);

    // Not a trusted proxy: the header is ignored, every request is the peer's.
    let wary = spawn_command_api_tuned("http://127.0.0.1:1", REDIS_URL, |s| {
        s.limits.onboard_per_ip_per_minute = 2;
    })
    .await;
    let mut statuses = vec![];
    for (i, from) in [(10, "203.0.113.7"), (11, "198.51.100.1"), (12, "192.0.2.9")] {
        statuses.push(sign_up(&wary, i, from).await);
    }
    assert_eq!(
        statuses,
        [201, 201, 429],
        "counted as the peer, whatever it says"
    );
}

#[tokio::test]
async fn one_credential_cannot_flood_the_query_api_either_and_the_limit_is_a_setting() {
    let app = spawn_command_api_custom("http://127.0.0.1:1", REDIS_URL).await;
    let owner = app.onboard("demo-salon").await;
    let mut settings = e2e_tests::query_api_settings(&app.db, &app.nats);
    settings.limits.per_credential_per_minute = 6;
    settings.limits.per_credential_burst = 5;
    let query = e2e_tests::spawn_query_api(settings).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let response = app
            .client
            .get(format!("{}/v1/bookings", query.address))
            .bearer_auth(&owner.access_token)
            .send()
            .await
            .unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        statuses.push((response.status().as_u16(), retry_after));
    }
    // The burst, then a refusal that says when to come back (a request per 10 s refills).
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200), "{statuses:?}");
    let (status, retry_after) = &statuses[7];
    assert_eq!(*status, 429, "{statuses:?}");
    let wait: u64 = retry_after
        .as_ref()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    // Another business's owner is not limited by this one.
    let other = app.onboard("other-salon").await;
    let (status, _) = query.get("/v1/bookings", &other.access_token, None).await;
    assert_eq!(status, 200);
}
