//! The dashboard at the router level, over the real command and query APIs: signing in (and
//! the errors of a wrong one), Home and Bookings with the business's own data, a session that
//! outlives its access token, signing out, a cross-site form refused, and two businesses'
//! sessions that see only their own.

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    DashboardApp, projector_settings, query_api_settings, spawn_command_api, spawn_dashboard,
    spawn_projector, spawn_query_api,
};
use redis::AsyncCommands as _;
use sha2::{Digest as _, Sha256};

/// A browser of the dashboard: keeps the session cookie, says where its forms come from.
struct Browser<'a> {
    dashboard: &'a DashboardApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(dashboard: &'a DashboardApp) -> Self {
        Self {
            dashboard,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self.client.get(format!("{}{path}", self.dashboard.address));
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.unwrap())
    }

    async fn post(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        site: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.dashboard.address))
            .form(form);
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        if let Some(c) = &self.cookie {
            request = request.header("cookie", c);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        if let Some(set) = headers.get("set-cookie") {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        (status, headers, response.text().await.unwrap())
    }

    async fn sign_in(&mut self, slug: &str) {
        let email = format!("owner@{slug}.example");
        let (status, headers, body) = self
            .post(
                "/login",
                &[
                    ("slug", slug),
                    ("email", &email),
                    ("password", "correct horse battery staple"),
                ],
                Some("same-origin"),
            )
            .await;
        assert_eq!(status, 303, "{body}");
        assert_eq!(headers["location"], "/");
        let cookie = headers["set-cookie"].to_str().unwrap();
        assert!(cookie.starts_with("session="), "{cookie}");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(cookie.contains(attribute), "{cookie} lacks {attribute}");
        }
    }
}

#[tokio::test]
async fn a_member_signs_in_sees_their_business_and_signs_out_and_another_site_cannot_post() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let a = Tenant {
        owner: app.onboard("dash-a").await,
        app: &app,
    };
    let b = Tenant {
        owner: app.onboard("dash-b").await,
        app: &app,
    };
    let service = a.configured().await;
    let (status, booked) = a.book(&service, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{booked}");
    b.configured().await;

    // Not signed in: the login page, with its security headers.
    let mut browser = Browser::new(&dashboard);
    let (status, headers, _) = browser.get("/").await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (303, "/login")
    );
    let (status, headers, page) = browser.get("/login").await;
    assert_eq!(status, 200);
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(page.contains(r#"<label for="password">Password</label>"#));
    assert!(!page.contains("<script>"), "no inline script");

    // A wrong password: the page again, with what was typed (but the password) and why.
    let (status, _, page) = browser
        .post(
            "/login",
            &[
                ("slug", "dash-a"),
                ("email", "owner@dash-a.example"),
                ("password", "wrong"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 401);
    assert!(page.contains("do not match"), "{page}");
    assert!(page.contains(r#"value="owner@dash-a.example""#));
    assert!(browser.cookie.is_none());
    // From another site, not even tried.
    let (status, _, _) = browser
        .post(
            "/login",
            &[
                ("slug", "dash-a"),
                ("email", "owner@dash-a.example"),
                ("password", "x"),
            ],
            Some("cross-site"),
        )
        .await;
    assert_eq!(status, 403);

    browser.sign_in("dash-a").await;
    let (status, _, home) = browser.get("/").await;
    assert_eq!(status, 200, "{home}");
    assert!(home.contains("Demo Salon"));
    assert!(home.contains("This week against last week"), "{home}");
    assert!(home.contains("Bookings this month"), "{home}");
    let (status, _, bookings) = browser.get("/bookings").await;
    assert_eq!(status, 200);
    assert!(bookings.contains("Haircut"), "{bookings}");
    assert!(bookings.contains("+34600000001"));
    assert!(bookings.contains(r#"aria-current="page">Upcoming"#));
    let (_, _, cancelled) = browser.get("/bookings?tab=cancelled").await;
    assert!(cancelled.contains("No bookings here."), "{cancelled}");

    // Another business's session sees its own only.
    let mut other = Browser::new(&dashboard);
    other.sign_in("dash-b").await;
    let (_, _, theirs) = other.get("/bookings").await;
    assert!(!theirs.contains("+34600000001"), "{theirs}");

    // The access token runs out (here: is spoilt): the session renews it with its refresh
    // token and the page shows.
    let id = browser
        .cookie
        .as_ref()
        .unwrap()
        .trim_start_matches("session=")
        .to_owned();
    let key = format!(
        "{}dashboard:session:{}",
        dashboard.key_prefix,
        hex::encode(Sha256::digest(id.as_bytes()))
    );
    let mut redis = redis::Client::open(e2e_tests::REDIS_URL)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let stored: String = redis.get(&key).await.unwrap();
    let mut session: serde_json::Value = serde_json::from_str(&stored).unwrap();
    let old_refresh = session["refresh_token"].clone();
    session["access_token"] = "spoilt".into();
    let _: () = redis.set(&key, session.to_string()).await.unwrap();
    let (status, _, home) = browser.get("/").await;
    assert_eq!(status, 200, "{home}");
    let renewed: serde_json::Value =
        serde_json::from_str(&redis.get::<_, String>(&key).await.unwrap()).unwrap();
    assert_ne!(
        renewed["refresh_token"], old_refresh,
        "the refresh token rotated"
    );
    assert_ne!(renewed["access_token"], "spoilt");

    // A cross-site sign-out is refused; the session goes on.
    let csrf = renewed["csrf"].as_str().unwrap().to_owned();
    let (status, _, _) = browser
        .post("/logout", &[("csrf", &csrf)], Some("cross-site"))
        .await;
    assert_eq!(status, 403);
    assert_eq!(browser.get("/").await.0, 200);
    // Without Sec-Fetch-Site the form's token is needed.
    let (status, _, _) = browser.post("/logout", &[("csrf", "forged")], None).await;
    assert_eq!(status, 403);

    let cookie = browser.cookie.clone();
    let (status, headers, _) = browser
        .post("/logout", &[("csrf", &csrf)], Some("same-origin"))
        .await;
    assert_eq!(
        (status, headers["location"].to_str().unwrap()),
        (303, "/login")
    );
    assert!(browser.cookie.is_none(), "the cookie is cleared");
    // The old cookie opens nothing, and the platform revoked the refresh token.
    browser.cookie = cookie;
    assert_eq!(browser.get("/").await.0, 303);
    let refreshed = app
        .post(
            "/v1/auth/refresh",
            &serde_json::json!({"refresh_token": renewed["refresh_token"]}),
        )
        .await;
    assert_eq!(refreshed.status().as_u16(), 401);
}
