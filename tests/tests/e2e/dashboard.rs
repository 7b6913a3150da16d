//! The dashboard at the router level, over the real command and query APIs: signing in (and
//! the errors of a wrong one), Home and Bookings with the business's own data, a session that
//! outlives its access token, signing out, a cross-site form refused, and two businesses'
//! sessions that see only their own, and a business too new for the read side.

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

    /// A form sent by htmx from the page itself (the session's CSRF token is not needed: the
    /// browser says it is same-origin).
    async fn post_htmx(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let owned: Vec<(&str, String)> = form.iter().map(|(n, v)| (*n, (*v).to_owned())).collect();
        self.same_origin(path, &owned, true).await
    }

    /// A form of the page sent from the page itself (same-origin), its fields owned.
    async fn submit(
        &self,
        path: &str,
        fields: &[(&str, String)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        self.same_origin(path, fields, false).await
    }

    async fn same_origin(
        &self,
        path: &str,
        form: &[(&str, String)],
        htmx: bool,
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let mut request = self
            .client
            .post(format!("{}{path}", self.dashboard.address))
            .form(form)
            .header("sec-fetch-site", "same-origin")
            .header("cookie", self.cookie.as_deref().unwrap_or_default());
        if htmx {
            request = request.header("hx-request", "true");
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
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
    let (status, headers, home) = browser.get("/").await;
    assert_eq!(status, 200, "{home}");
    // Each page renews the cookie: a session lasts while it is used.
    let renewed = headers["set-cookie"].to_str().unwrap();
    assert!(
        renewed.starts_with(browser.cookie.as_deref().unwrap()) && renewed.contains("Max-Age="),
        "{renewed}"
    );
    assert!(home.contains("Demo Salon"));
    assert!(home.contains("This week against last week"), "{home}");
    assert!(home.contains("Bookings this month"), "{home}");
    // The booking made through the API above, once the projections have it (they may be a
    // moment behind on a busy machine).
    let (status, _, bookings) = eventually_page(&browser, "/bookings", "Haircut").await;
    assert_eq!(status, 200);
    assert!(bookings.contains("+34600000001"));
    assert!(bookings.contains(r#"aria-current="page">Upcoming"#));
    let (_, _, cancelled) = browser.get("/bookings?tab=cancelled").await;
    assert!(cancelled.contains("No bookings here."), "{cancelled}");
    // The business's own log, who did what.
    let (status, _, audit) = browser.get("/audit").await;
    assert_eq!(status, 200, "{audit}");
    for what in [
        "TenantOnboarded",
        "BotConfigured",
        "AppointmentRequested",
        "user:",
    ] {
        assert!(audit.contains(what), "the audit log shows {what}: {audit}");
    }
    // And its security events: the wrong password above.
    let (_, _, audit) = eventually_page(
        &browser,
        "/audit",
        "Wrong password for owner@dash-a.example",
    )
    .await;
    assert!(audit.contains(r#"id="security""#), "{audit}");

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

/// A member who signs in the moment their business is created, before the read side has it,
/// gets a page that says so and reloads itself (not an error); once the projector catches up,
/// Home.
#[tokio::test]
async fn a_business_the_read_side_has_not_caught_up_with_gets_a_page_that_reloads_itself() {
    let app = spawn_command_api().await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    app.onboard("dash-new").await;
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-new").await;

    let (status, headers, page) = browser.get("/").await;
    assert_eq!(status, 503, "{page}");
    assert_eq!(headers["refresh"], "2");
    assert!(page.contains("still being set up"), "{page}");

    // The projections catch up one by one: until all have, the same page, never an error.
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let mut home = String::new();
    for _ in 0..40 {
        let (status, _, page) = browser.get("/").await;
        home = page;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{home}");
        assert!(home.contains("still being set up"), "{home}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(home.contains("Demo Salon"), "{home}");
}

#[tokio::test]
async fn staff_confirm_and_cancel_from_the_list_and_see_it_at_once() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("dash-actions").await,
        app: &app,
    };
    let other = Tenant {
        owner: app.onboard("dash-actions-other").await,
        app: &app,
    };
    let service = t.configured().await;
    let (status, _, requested) = t
        .send(
            reqwest::Method::POST,
            "/v1/bookings",
            &[],
            Some(serde_json::json!({"service_id": service, "start": slot(10),
                "customer": {"phone": "+34600000001", "name": "Ana"}, "confirm": false})),
        )
        .await;
    assert_eq!(status, 201, "{requested}");
    let booking = requested["booking_id"].as_str().unwrap().to_owned();
    let other_service = other.configured().await;
    let (_, theirs) = other
        .book(&other_service, &slot(10), "+34600000009", None)
        .await;
    let theirs = theirs["booking_id"].as_str().unwrap().to_owned();

    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-actions").await;
    let (_, _, page) = eventually_page(&browser, "/bookings?tab=action", "+34600000001").await;
    assert!(
        page.contains(&format!(r#"action="/bookings/{booking}/confirm""#)),
        "{page}"
    );
    let key = page
        .split(r#"name="key" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // With htmx: the row comes back as it now stands.
    let (status, _, row) = browser
        .post_htmx(
            &format!("/bookings/{booking}/confirm"),
            &[("key", &key), ("back", "/bookings?tab=action")],
        )
        .await;
    assert_eq!(status, 200, "{row}");
    assert!(
        row.starts_with(&format!(r#"<tr id="booking-{booking}">"#)),
        "{row}"
    );
    assert!(row.contains(">confirmed<"), "{row}");
    assert!(
        !row.contains("/confirm\""),
        "nothing left to confirm: {row}"
    );

    // Without htmx: back to the list, which waits for the write.
    let (status, headers, _) = browser
        .post(
            &format!("/bookings/{booking}/cancel"),
            &[
                ("key", "cancel-1"),
                ("back", "/bookings?tab=upcoming"),
                ("reason", "The salon closes early"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let location = headers["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("/bookings?tab=upcoming&after="),
        "{location}"
    );
    let (_, _, upcoming) = browser.get(&location).await;
    assert!(
        !upcoming.contains("+34600000001"),
        "cancelled, gone from upcoming: {upcoming}"
    );
    let (_, _, cancelled) = browser.get("/bookings?tab=cancelled").await;
    assert!(cancelled.contains("+34600000001"), "{cancelled}");
    let (_, detail) = query
        .get(
            &format!("/v1/bookings/{booking}"),
            &t.owner.access_token,
            None,
        )
        .await;
    let last = detail["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event_type"], "AppointmentCancelled", "{detail}");
    assert_eq!(last["payload"]["reason"], "The salon closes early");
    assert!(
        last["actor"].as_str().unwrap().starts_with("user:"),
        "{last}"
    );

    // Cancelling again is refused, and the row says why.
    let (status, _, row) = browser
        .post_htmx(
            &format!("/bookings/{booking}/cancel"),
            &[("key", "cancel-2"), ("back", "/bookings")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(row.contains(r#"role="alert""#), "{row}");
    assert!(row.contains(">cancelled<"), "{row}");
    // Another business's booking is not there; another site may not post.
    let (status, _, _) = browser
        .post_htmx(&format!("/bookings/{theirs}/cancel"), &[("key", "x")])
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = browser
        .post(
            &format!("/bookings/{booking}/confirm"),
            &[("key", "y")],
            Some("cross-site"),
        )
        .await;
    assert_eq!(status, 403);
}

/// The page at `path` once it shows `text` (the projections catch up).
async fn eventually_page(
    browser: &Browser<'_>,
    path: &str,
    text: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    e2e_tests::eventually(std::time::Duration::from_secs(10), || async {
        let page = browser.get(path).await;
        page.2.contains(text).then_some(page)
    })
    .await
    .unwrap_or_else(|| panic!("{path} never showed {text}"))
}

#[tokio::test]
async fn the_inbox_shows_a_thread_and_staff_take_over_reply_and_hand_back() {
    let s = e2e_tests::wa::setup().await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let dashboard = spawn_dashboard(&s.app.db, &s.app.nats, &s.app.address, &query.address).await;
    let hello = e2e_tests::wa::notification_from(
        "34600000077",
        "Lucía",
        vec![e2e_tests::wa::text("34600000077", "wamid.inbox-1", "hola")],
    );
    e2e_tests::wa::deliver(&s.app, &hello).await;

    let mut browser = Browser::new(&dashboard);
    browser.sign_in("demo-salon").await;
    let (status, _, inbox) = eventually_page(&browser, "/inbox", "Lucía").await;
    assert_eq!(status, 200);
    assert!(inbox.contains(r#"href="/inbox/%2B34600000077""#), "{inbox}");
    let (status, _, thread) = eventually_page(&browser, "/inbox/%2B34600000077", "Haircut").await;
    assert_eq!(status, 200);
    assert!(thread.contains(r#"class="bubble in""#), "{thread}");
    assert!(thread.contains("<p>hola</p>"), "{thread}");
    assert!(
        thread.contains(r#"class="bubble out""#),
        "the bot's reply: {thread}"
    );
    assert!(
        thread.contains(r#"hx-trigger="every 5s""#),
        "the thread polls"
    );
    // Someone else's customer, or nobody: 404.
    let (status, _, _) = browser.get("/inbox/%2B34699999999").await;
    assert_eq!(status, 404);
    assert!(thread.contains("The bot is answering."), "{thread}");
    assert!(thread.contains("You can write freely for 23 h"), "{thread}");

    // Take over: the page says who answers now, and the inbox puts Lucía first.
    let lucia = "/inbox/%2B34600000077";
    let (status, _, page) = browser
        .post_htmx(&format!("{lucia}/take-over"), &[("key", "t-1")])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are answering Lucía"), "{page}");
    assert!(page.contains("Hand back to the bot"), "{page}");
    let (_, _, inbox) = browser.get("/inbox").await;
    assert!(inbox.contains("a person is answering"), "{inbox}");

    // An empty reply is refused next to the box; a reply is shown as yours.
    let (status, _, page) = browser
        .post_htmx(&format!("{lucia}/reply"), &[("key", "r-0"), ("text", " ")])
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains(
            r#"id="text-error" class="field-error" role="alert">a reply needs some text"#
        ),
        "{page}"
    );
    let (status, _, page) = browser
        .post_htmx(
            &format!("{lucia}/reply"),
            &[("key", "r-1"), ("text", "Te esperamos a las 10")],
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<p>Te esperamos a las 10</p>"), "{page}");
    assert!(
        page.contains(r#"<span class="author">You</span>"#),
        "{page}"
    );
    assert!(!page.contains(r#"id="text-error""#), "{page}");
    // Without htmx: the answer is a redirect to the thread, which waits for the write.
    let (status, headers, _) = browser
        .post(
            &format!("{lucia}/reply"),
            &[("key", "r-2"), ("text", "¿Te va bien?")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let to = headers["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with(&format!("{lucia}?after=")), "{to}");
    let (_, _, page) = browser.get(&to).await;
    assert!(page.contains("¿Te va bien?"), "{page}");
    // From another site: refused, nothing sent.
    let (status, _, _) = browser
        .post(
            &format!("{lucia}/reply"),
            &[("key", "r-3"), ("text", "forged")],
            Some("cross-site"),
        )
        .await;
    assert_eq!(status, 403);

    // Hand back: the bot answers again.
    let (status, _, page) = browser
        .post_htmx(&format!("{lucia}/hand-back"), &[("key", "h-1")])
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The bot is answering."), "{page}");
    assert!(!page.contains("forged"));
}

#[tokio::test]
async fn a_customer_s_request_to_delete_their_data_heads_the_inbox_and_is_erased_from_it() {
    let s = e2e_tests::wa::setup().await;
    let _projector = spawn_projector(projector_settings(&s.app.db, &s.app.nats)).await;
    let query = spawn_query_api(query_api_settings(&s.app.db, &s.app.nats)).await;
    let dashboard = spawn_dashboard(&s.app.db, &s.app.nats, &s.app.address, &query.address).await;
    let asks = e2e_tests::wa::notification_from(
        "34600000078",
        "Marisol",
        vec![e2e_tests::wa::text(
            "34600000078",
            "wamid.forget-1",
            "delete my data",
        )],
    );
    e2e_tests::wa::deliver(&s.app, &asks).await;

    let mut browser = Browser::new(&dashboard);
    browser.sign_in("demo-salon").await;
    let (_, _, inbox) = eventually_page(&browser, "/inbox", "asks to delete their data").await;
    assert!(inbox.contains("Marisol"), "{inbox}");
    let marisol = "/inbox/%2B34600000078";
    let (status, _, page) = eventually_page(&browser, marisol, "to have their data deleted").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("<details open>"),
        "the erasure is offered: {page}"
    );
    // Not without the box ticked: nothing is erased.
    let (status, _, page) = browser
        .post(
            &format!("{marisol}/erase"),
            &[("key", "e-1")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("Tick the box to confirm"), "{page}");
    let (status, _, _) = browser.get(marisol).await;
    assert_eq!(status, 200, "still there");
    // From another site: refused.
    let (status, _, _) = browser
        .post(
            &format!("{marisol}/erase"),
            &[("key", "e-2"), ("sure", "yes")],
            Some("cross-site"),
        )
        .await;
    assert_eq!(status, 403);
    // Confirmed: erased, and the inbox (read after the erasure) no longer has them.
    let (status, headers, _) = browser
        .post(
            &format!("{marisol}/erase"),
            &[("key", "e-3"), ("sure", "yes")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let to = headers["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/inbox?erased=1&after="), "{to}");
    let (status, _, inbox) = browser.get(&to).await;
    assert_eq!(status, 200);
    assert!(inbox.contains("data is deleted"), "{inbox}");
    assert!(!inbox.contains("Marisol"), "{inbox}");
    assert!(!inbox.contains("asks to delete their data"), "{inbox}");
    let (status, _, _) = browser.get(marisol).await;
    assert_eq!(status, 404);
}

/// Ana works mornings, Luis afternoons; both cut hair; UTC.
async fn two_staff(t: &Tenant<'_>) -> String {
    let every = |r: serde_json::Value| serde_json::json!({"monday": r, "tuesday": r, "wednesday": r, "thursday": r, "friday": r, "saturday": r, "sunday": r});
    let mut settings = e2e_tests::tenant::settings();
    settings["staff"] = serde_json::json!([
        {"id": "ana", "name": "Ana", "hours": every(serde_json::json!([{"open": "08:00", "close": "13:00"}]))},
        {"id": "luis", "name": "Luis", "hours": every(serde_json::json!([{"open": "14:00", "close": "20:00"}]))},
    ]);
    let (status, _, body) = t
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(settings),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = t
        .send(
            reqwest::Method::POST,
            "/v1/services",
            &[],
            Some(e2e_tests::tenant::haircut()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body["service_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_calendar_shows_each_person_s_day_books_a_walk_in_and_moves_a_booking() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("dash-cal").await,
        app: &app,
    };
    let other = Tenant {
        owner: app.onboard("dash-cal-other").await,
        app: &app,
    };
    let service = two_staff(&t).await;
    let theirs = other.configured().await;
    let (_, foreign) = other.book(&theirs, &slot(10), "+34600000009", None).await;
    let (status, booked) = t.book(&service, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{booked}");
    assert_eq!(booked["resource"], "ana");
    let booking = booked["booking_id"].as_str().unwrap().to_owned();
    let day = &slot(10)[..10];

    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-cal").await;
    // The day: a column each, the 10:00 booking in Ana's, 10:30 still hers (busy), and a free
    // half hour of each to book.
    let path = format!("/calendar?date={day}&view=day");
    let (status, _, page) = eventually_page(&browser, &path, "10:00–10:45").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"<th scope="col">Ana</th><th scope="col">Luis</th>"#),
        "{page}"
    );
    assert!(
        page.contains(&format!(r#"href="/bookings/{booking}""#)),
        "{page}"
    );
    assert!(
        page.contains(r#"aria-label="Book 11:00 with Ana""#),
        "{page}"
    );
    assert!(
        page.contains(r#"aria-label="Book 15:00 with Luis""#),
        "{page}"
    );
    assert!(
        !page.contains(r#"aria-label="Book 10:00 with Ana""#),
        "taken"
    );
    assert!(
        !page.contains(r#"aria-label="Book 10:30 with Ana""#),
        "still taken"
    );
    assert!(page.contains(r#"<td class="busy">"#), "{page}");
    // The week shows it on its day, with whom.
    let (_, _, week) = browser
        .get(&format!("/calendar?date={day}&view=week"))
        .await;
    assert!(week.contains("Haircut"), "{week}");
    assert!(week.contains("· Ana"), "{week}");

    // A walk-in from a free half hour: the form comes with the time and person picked.
    let (status, _, form) = browser
        .get(&format!(
            "/bookings/new?date={day}&time=11%3A00&resource=ana"
        ))
        .await;
    assert_eq!(status, 200);
    assert!(form.contains(r#"value="11:00""#), "{form}");
    assert!(
        form.contains(r#"<option value="ana" selected>Ana</option>"#),
        "{form}"
    );
    let walk_in = |phone: &'static str, time: &'static str, key: &'static str| {
        let service = service.clone();
        let day = day.to_owned();
        let browser = &browser;
        async move {
            let form = [
                ("key", key),
                ("service", service.as_str()),
                ("date", day.as_str()),
                ("time", time),
                ("resource", "ana"),
                ("phone", phone),
                ("name", "Pilar"),
                ("confirm", "yes"),
            ];
            let response = browser
                .client
                .post(format!("{}/bookings/new", browser.dashboard.address))
                .form(&form)
                .header("sec-fetch-site", "same-origin")
                .header("cookie", browser.cookie.as_deref().unwrap_or_default())
                .send()
                .await
                .unwrap();
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            (status, headers, response.text().await.unwrap())
        }
    };
    // A number that is not one, and a time that is taken: the form again, saying why.
    let (status, _, page) = walk_in("12", "11:00", "w-1").await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="phone-error""#), "{page}");
    assert!(page.contains(r#"value="Pilar""#), "what was typed is kept");
    let (status, _, page) = walk_in("+34600000002", "10:00", "w-2").await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains(r#"id="time-error""#), "{page}");
    let (status, headers, _) = walk_in("+34600000002", "11:00", "w-3").await;
    assert_eq!(status, 303);
    let to = headers["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with(&format!("/calendar?date={day}&view=day&after=")),
        "{to}"
    );
    let (_, _, page) = browser.get(&to).await;
    assert!(page.contains("11:00–11:45"), "the walk-in, at once: {page}");
    assert!(page.contains("Pilar"), "{page}");

    // The booking's page: what it is, what can be done, its history; moved to a taken time,
    // refused next to the time; to a free one, moved.
    let (status, _, page) = browser.get(&format!("/bookings/{booking}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Move to another time"), "{page}");
    assert!(page.contains("Booked"), "{page}");
    let reschedule = |time: &'static str, key: &'static str| {
        let browser = &browser;
        let path = format!("/bookings/{booking}/reschedule");
        let day = day.to_owned();
        async move {
            let response = browser
                .client
                .post(format!("{}{path}", browser.dashboard.address))
                .form(&[("key", key), ("date", day.as_str()), ("time", time)])
                .header("sec-fetch-site", "same-origin")
                .header("cookie", browser.cookie.as_deref().unwrap_or_default())
                .send()
                .await
                .unwrap();
            let (status, headers) = (response.status().as_u16(), response.headers().clone());
            (status, headers, response.text().await.unwrap())
        }
    };
    let (status, _, page) = reschedule("11:00", "m-1").await;
    assert_eq!(status, 409, "{page}");
    assert!(page.contains(r#"id="move-error""#), "{page}");
    let (status, headers, _) = reschedule("12:00", "m-2").await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("12:00–12:45"), "{page}");
    assert!(page.contains("Moved"), "{page}");

    // Another business's booking: nothing.
    let (status, _, _) = browser
        .get(&format!(
            "/bookings/{}",
            foreign["booking_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_owner_invites_changes_a_role_deactivates_and_manages_api_keys() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("dash-team").await,
        app: &app,
    };
    let mut owner = Browser::new(&dashboard);
    owner.sign_in("dash-team").await;
    let (status, _, page) = owner.get("/team").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("owner@dash-team.example (you)"), "{page}");

    // Invitations: a bad address and a taken one are refused next to the field.
    let (status, _, page) = owner
        .post(
            "/team/invite",
            &[("key", "i-1"), ("email", "not-an-email"), ("role", "staff")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="invite-error""#), "{page}");
    assert!(page.contains(r#"value="not-an-email""#), "{page}");
    let (status, headers, _) = owner
        .post(
            "/team/invite",
            &[
                ("key", "i-2"),
                ("email", "marta@dash-team.example"),
                ("role", "staff"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = owner.get(headers["location"].to_str().unwrap()).await;
    assert!(
        page.contains("Invitation emailed to marta@dash-team.example."),
        "{page}"
    );
    assert!(page.contains("marta@dash-team.example"), "{page}");
    let (status, _, page) = owner
        .post(
            "/team/invite",
            &[
                ("key", "i-3"),
                ("email", "marta@dash-team.example"),
                ("role", "admin"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 409, "{page}");

    // Another invitee accepts from the emailed link: a short password is refused, then they
    // are signed in, as staff, who may not manage the team.
    let (status, _, invited) = t
        .send(
            reqwest::Method::POST,
            "/v1/users",
            &[],
            Some(serde_json::json!({"email": "luis@dash-team.example", "role": "staff"})),
        )
        .await;
    assert_eq!(status, 201, "{invited}");
    let token = invited["invitation_token"].as_str().unwrap();
    let luis_id = invited["user_id"].as_str().unwrap().to_owned();
    let mut luis = Browser::new(&dashboard);
    let (status, _, page) = luis.get(&format!("/accept-invitation?token={token}")).await;
    assert_eq!(status, 200);
    assert!(page.contains("Choose a password"), "{page}");
    let (status, _, page) = luis
        .post(
            "/accept-invitation",
            &[("token", token), ("password", "short")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("Password:"), "{page}");
    let (status, headers, _) = luis
        .post(
            "/accept-invitation",
            &[("token", token), ("password", "a long enough password")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    assert_eq!(headers["location"], "/");
    let (status, _, home) = luis.get("/").await;
    assert_eq!(status, 200, "{home}");
    let (status, _, page) = luis.get("/team").await;
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("ask an owner"), "{page}");
    let (status, _, page) = luis.get("/audit").await;
    assert_eq!(status, 403);
    assert!(page.contains("Not for your role"), "{page}");
    assert!(page.contains(r#"<a href="/">Back to Home</a>"#), "{page}");
    // The link works once.
    let mut again = Browser::new(&dashboard);
    let (status, _, page) = again
        .post(
            "/accept-invitation",
            &[("token", token), ("password", "a long enough password")],
            Some("same-origin"),
        )
        .await;
    assert!(status >= 400, "{status}: {page}");
    assert!(page.contains("expired or was used"), "{page}");

    // A new role, then deactivation: Luis's session ends at once.
    let (status, headers, _) = owner
        .post(
            &format!("/team/users/{luis_id}/role"),
            &[("key", "r-1"), ("role", "viewer")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = owner.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("The role is changed."), "{page}");
    assert!(
        page.contains(r#"<option value="viewer" selected>viewer</option>"#),
        "{page}"
    );
    let (status, headers, _) = owner
        .post(
            &format!("/team/users/{luis_id}/deactivate"),
            &[("key", "d-1")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = owner.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("deactivated"), "{page}");
    let (status, headers, _) = luis.get("/").await;
    assert_eq!(
        (status, headers.get("location").map(|l| l.to_str().unwrap())),
        (303, Some("/login")),
        "a deactivated member is signed out"
    );

    // API keys: none allowed is refused; created, shown once, it works until revoked.
    let (status, _, page) = owner
        .post(
            "/team/keys",
            &[("key", "k-1"), ("name", "Widget")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="key-error""#), "{page}");
    let (status, _, page) = owner
        .post(
            "/team/keys",
            &[
                ("key", "k-2"),
                ("name", "Widget"),
                ("scope", "read_bookings"),
                ("scope", "read_config"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let secret = page
        .split(r#"<code id="new-key">"#)
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .unwrap_or_else(|| panic!("the key is shown: {page}"))
        .to_owned();
    assert!(page.contains("read_bookings, read_config"), "{page}");
    let (status, _) = query.get("/v1/bookings", &secret, None).await;
    assert_eq!(status, 200, "the new key reads bookings");
    let (_, _, listed) = owner.get("/team").await;
    assert!(!listed.contains(&secret), "the key is shown once");
    let key_id = listed
        .split("/team/keys/")
        .nth(1)
        .and_then(|rest| rest.split("/revoke").next())
        .unwrap()
        .to_owned();
    let (status, headers, _) = owner
        .post(
            &format!("/team/keys/{key_id}/revoke"),
            &[("key", "k-3")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = owner.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("The key is revoked"), "{page}");
    let (status, _) = query.get("/v1/bookings", &secret, None).await;
    assert_eq!(status, 401, "a revoked key no longer works");
}

/// A member who forgot their password asks for a link on the dashboard, gets it by email,
/// chooses a new password on the link's page, and signs in with it.
#[tokio::test]
async fn a_forgotten_password_is_changed_from_the_emailed_link_and_signs_in() {
    let sink = smtp_sink::Sink::new();
    let smtp_port = sink.clone().spawn().await;
    let app = spawn_command_api().await;
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.notifier.smtp_url = format!("smtp://127.0.0.1:{smtp_port}").into();
    settings.notifier.enabled = true;
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    app.onboard("dash-forgot").await;
    let email = "owner@dash-forgot.example";

    let mut browser = Browser::new(&dashboard);
    let (_, _, login) = browser.get("/login").await;
    assert!(login.contains(r#"href="/forgot-password""#), "{login}");
    let (status, _, page) = browser
        .post(
            "/forgot-password",
            &[("slug", "dash-forgot"), ("email", email)],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("is on its way"), "{page}");
    let mail = e2e_tests::eventually(std::time::Duration::from_secs(15), || async {
        e2e_tests::mails_to(&sink, email).into_iter().next()
    })
    .await
    .expect("the reset email");
    let link = mail
        .body
        .split_whitespace()
        .find(|w| w.contains("/reset-password?token="))
        .expect("a link to the dashboard's page")
        .to_owned();
    let token = link.split("token=").nth(1).unwrap();
    let path = format!("/reset-password?token={token}");
    let (status, _, page) = browser.get(&path).await;
    assert_eq!(status, 200);
    assert!(page.contains("Choose a new password"), "{page}");
    let (status, _, page) = browser
        .post(
            "/reset-password",
            &[("token", token), ("password", "short")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("Password:"), "{page}");
    let (status, headers, _) = browser
        .post(
            "/reset-password",
            &[("token", token), ("password", "a brand new passphrase")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, login) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(login.contains("Your password is changed"), "{login}");
    let (status, _, _) = browser
        .post(
            "/login",
            &[
                ("slug", "dash-forgot"),
                ("email", email),
                ("password", "a brand new passphrase"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303, "the new password signs in");
    // The link is spent.
    let (status, _, page) = browser
        .post(
            "/reset-password",
            &[("token", token), ("password", "another new passphrase")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("expired or was used"), "{page}");
}

/// An owner sets the business up from the dashboard: a service (a price that is not one is
/// refused), the week's hours with a break and the booking rules (hours that close before
/// they open are refused), a save over someone else's change refused with theirs shown, and a
/// service retired.
#[tokio::test]
async fn an_owner_adds_a_service_sets_the_week_and_a_conflicting_save_is_refused() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("dash-setup").await,
        app: &app,
    };
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-setup").await;
    let (status, _, page) = browser.get("/setup").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No services yet"), "{page}");

    let service = |price: &'static str, key: &'static str| {
        [
            ("key", key),
            ("name", "Colour"),
            ("minutes", "90"),
            ("price", price),
            ("buffer", "15"),
            ("currency", "EUR"),
        ]
    };
    let (status, _, page) = browser
        .post(
            "/setup/services",
            &service("lots", "s-1"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="service-error""#), "{page}");
    assert!(page.contains(r#"value="Colour""#), "what was typed is kept");
    let (status, headers, _) = browser
        .post(
            "/setup/services",
            &service("49.50", "s-2"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("Colour is added"), "{page}");
    assert!(page.contains("49.50 EUR"), "{page}");
    assert!(page.contains("+ 15 min after"), "{page}");
    let version: String = page
        .split(r#"name="version" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();

    // The week: Mondays with a lunch break, Saturdays mornings, 2 hours' notice, closed on a
    // day a month from now, paid at the venue or by transfer.
    let christmas = (chrono::Utc::now() + chrono::Duration::days(30))
        .date_naive()
        .to_string();
    let week = |monday_close: &'static str| {
        vec![
            ("version", version.clone()),
            ("monday_open", "09:00".to_owned()),
            ("monday_close", monday_close.to_owned()),
            ("monday_open2", "15:00".to_owned()),
            ("monday_close2", "19:00".to_owned()),
            ("saturday_open", "10:00".to_owned()),
            ("saturday_close", "14:00".to_owned()),
            ("min_notice", "120".to_owned()),
            ("horizon", "60".to_owned()),
            ("closure_from_0", christmas.clone()),
            ("closure_to_0", String::new()),
            ("closure_reason_0", "Christmas".to_owned()),
            ("closure_from_1", String::new()),
            ("closure_to_1", String::new()),
            ("closure_reason_1", String::new()),
            ("cash", "on".to_owned()),
            ("transfer", "IBAN ES00 1234".to_owned()),
            ("link", String::new()),
        ]
    };
    let (status, _, page) = browser.submit("/setup/week", &week("08:00")).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="week-errors""#), "{page}");
    assert!(page.contains("hours.monday"), "the field at fault: {page}");
    assert!(page.contains(r#"value="08:00""#), "what was typed is kept");
    let (status, headers, _) = browser.submit("/setup/week", &week("13:00")).await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("The week is saved"), "{page}");
    assert!(
        page.contains(r#"name="monday_open2" value="15:00""#),
        "{page}"
    );
    let (_, config) = query
        .get("/v1/bot-config", &t.owner.access_token, None)
        .await;
    assert_eq!(
        config["settings"]["hours"]["monday"],
        serde_json::json!([{"open": "09:00", "close": "13:00"}, {"open": "15:00", "close": "19:00"}])
    );
    assert_eq!(config["settings"]["hours"]["sunday"], serde_json::json!([]));
    assert_eq!(config["settings"]["rules"]["min_notice_minutes"], 120);
    assert_eq!(
        config["settings"]["closures"],
        serde_json::json!([{"from": christmas, "to": christmas, "reason": "Christmas"}])
    );
    assert_eq!(
        config["settings"]["payment_methods"],
        serde_json::json!([{"kind": "cash"}, {"kind": "bank_transfer", "details": "IBAN ES00 1234"}])
    );
    assert!(
        page.contains(r#"name="closure_reason_0" value="Christmas""#),
        "{page}"
    );

    // Saved again from the page read before that save: refused, the hours as they are now.
    let (status, _, page) = browser.submit("/setup/week", &week("12:00")).await;
    assert_eq!(status, 412, "{page}");
    assert!(page.contains(r#"id="conflict""#), "{page}");
    assert!(
        page.contains(r#"name="monday_close" value="13:00""#),
        "{page}"
    );
    let (_, config) = query
        .get("/v1/bot-config", &t.owner.access_token, None)
        .await;
    assert_eq!(
        config["settings"]["hours"]["monday"][0]["close"], "13:00",
        "nothing saved over"
    );

    // Retired: listed as such, no longer offered.
    let id = page
        .split("/retire")
        .next()
        .and_then(|before| before.rsplit("/setup/services/").next())
        .unwrap()
        .to_owned();
    let (status, headers, _) = browser
        .post(
            &format!("/setup/services/{id}/retire"),
            &[("csrf", "")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("The service is retired"), "{page}");
    assert!(page.contains(r#"data-label="Actions">retired"#), "{page}");

    // Changed, and offered again: the price and the category; a price that is not one is
    // refused next to it, with what was typed kept.
    let (status, _, page) = browser.get(&format!("/setup/services/{id}")).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Save and offer it again"), "{page}");
    assert!(page.contains(r#"name="price" value="49.50""#), "{page}");
    let version = form_value(&page, "version");
    let edit = |price: &'static str| {
        vec![
            ("version", version.clone()),
            ("name", "Colour".to_owned()),
            ("description", "Roots and lengths".to_owned()),
            ("minutes", "90".to_owned()),
            ("price", price.to_owned()),
            ("buffer", "15".to_owned()),
            ("capacity", "1".to_owned()),
            ("category", "Colour".to_owned()),
        ]
    };
    let path = format!("/setup/services/{id}");
    let (status, _, page) = browser.submit(&path, &edit("a lot")).await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="service-errors""#), "{page}");
    assert!(page.contains(r#"value="a lot""#), "{page}");
    let (status, headers, _) = browser.submit(&path, &edit("55")).await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("Colour is saved"), "{page}");
    assert!(page.contains("55.00 EUR"), "{page}");
    assert!(
        !page.contains(r#"data-label="Actions">retired"#),
        "offered again: {page}"
    );
    let (_, services) = query.get("/v1/services", &t.owner.access_token, None).await;
    let colour = &services["services"][0];
    assert_eq!(colour["category"], "Colour");
    assert_eq!(colour["description"], "Roots and lengths");
    assert_eq!(colour["active"], true);
}

/// An owner connects the business's WhatsApp number from the dashboard: a token Meta refuses
/// is said next to its field (and no secret is shown back), the right one connects, and the
/// page says where Meta posts.
#[tokio::test]
async fn an_owner_connects_the_whatsapp_number_and_a_refused_token_is_said_next_to_it() {
    let graph = e2e_tests::FakeGraph::start().await;
    let app = e2e_tests::spawn_command_api_with_graph(&graph.base_url).await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    app.onboard("dash-wa").await;
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-wa").await;
    let (status, _, page) = browser.get("/whatsapp").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("No number yet"), "{page}");
    assert!(
        page.contains(&format!("{}/webhooks/whatsapp", app.address)),
        "{page}"
    );
    let connect = |token: &'static str, key: &'static str| {
        [
            ("key", key),
            ("phone_number_id", e2e_tests::FAKE_NUMBER_ID),
            ("access_token", token),
            ("app_secret", "app-secret-0123456789abcdef"),
            ("verify_token", "verify-token-0123456789"),
        ]
    };
    let (status, _, page) = browser
        .post(
            "/whatsapp",
            &connect("EAAG-wrong-token", "c-1"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="token-error""#), "{page}");
    assert!(
        !page.contains("EAAG-wrong-token"),
        "a secret is never shown back"
    );
    assert!(
        page.contains(&format!(r#"value="{}""#, e2e_tests::FAKE_NUMBER_ID)),
        "{page}"
    );
    let (status, headers, _) = browser
        .post(
            "/whatsapp",
            &connect(e2e_tests::FAKE_TOKEN, "c-2"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("The number is connected"), "{page}");
    assert!(page.contains("Customers write to"), "{page}");
}

/// An owner subscribes from the Billing page through Stripe's checkout (the fake), sees the
/// subscription and its invoice, switches plan and ends the subscription; staff may not.
#[tokio::test]
async fn an_owner_subscribes_through_checkout_switches_plan_and_ends_it() {
    let fake = fake_stripe::Fake::new();
    let stripe_url = fake.clone().spawn().await;
    let app = e2e_tests::spawn_command_api_tuned("http://127.0.0.1:1", e2e_tests::REDIS_URL, |s| {
        s.stripe = e2e_tests::stripe_settings(&stripe_url);
    })
    .await;
    fake.configure_webhooks(fake_stripe::WebhookTarget {
        url: format!("{}/webhooks/stripe", app.address),
        secret: e2e_tests::TEST_STRIPE_WEBHOOK_SECRET.into(),
        repeat: 0,
        reverse: false,
    });
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let owner = app.onboard("dash-pay").await;
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-pay").await;
    let (status, _, page) = browser.get("/billing").await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Free trial until"), "{page}");
    assert!(page.contains("Subscribe"), "{page}");

    // Subscribe: off to Stripe's page, pay, back to the dashboard.
    let (status, headers, _) = browser
        .post(
            "/billing",
            &[
                ("key", "b-1"),
                ("action", "subscribe"),
                ("plan", "growth"),
                ("cycle", "monthly"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let checkout = headers["location"].to_str().unwrap().to_owned();
    assert!(checkout.starts_with(&stripe_url), "{checkout}");
    let paid = browser
        .client
        .post(format!("{checkout}/pay"))
        .form(&[("card", "4242 4242 4242 4242")])
        .send()
        .await
        .unwrap();
    assert_eq!(paid.status().as_u16(), 303);
    let (_, _, page) = browser.get("/billing?checkout=done").await;
    assert!(page.contains("Thank you"), "{page}");
    let (_, _, page) = eventually_page(&browser, "/billing", "Renews on").await;
    assert!(
        page.contains("Growth <span class=\"muted\">(yours)</span>"),
        "{page}"
    );
    let (_, _, page) = eventually_page(&browser, "/billing", ">paid<").await;
    assert!(page.contains("79.00 EUR"), "{page}");

    // Switch to Pro, then end the subscription.
    let (status, headers, _) = browser
        .post(
            "/billing",
            &[("key", "b-2"), ("action", "switch"), ("plan", "pro")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("The plan is changed."), "{page}");
    assert!(
        page.contains("Pro <span class=\"muted\">(yours)</span>"),
        "{page}"
    );
    let (status, headers, _) = browser
        .post(
            "/billing",
            &[("key", "b-3"), ("action", "cancel")],
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("Ends on"), "{page}");

    // Staff: not for them.
    let staff = e2e_tests::member_token(
        &app.db.superuser_url_pool().await,
        owner.tenant_id.parse().unwrap(),
        domain::access::Role::Staff,
    )
    .await;
    let (status, _) = query.get("/v1/billing", &staff, None).await;
    assert_eq!(status, 403, "the API refuses staff the billing");
}

/// The Analytics page over the analytics consumer's read side: the headline numbers, the
/// bookings chart with its table, the busiest hours, the split by service; per range.
#[tokio::test]
async fn the_analytics_page_shows_the_numbers_a_chart_and_its_table() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let _analytics =
        e2e_tests::spawn_analytics(e2e_tests::analytics_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("dash-stats").await,
        app: &app,
    };
    let service = t.configured().await;
    for (hour, phone) in [(10, "+34600000001"), (12, "+34600000002")] {
        let (status, body) = t.book(&service, &slot(hour), phone, None).await;
        assert_eq!(status, 201, "{body}");
    }
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-stats").await;
    let (status, _, page) =
        eventually_page(&browser, "/analytics?range=30d", r#"<p class="big">2</p>"#).await;
    assert_eq!(status, 200);
    assert!(page.contains("Bookings made, by day"), "{page}");
    assert!(
        page.contains(r#"aria-current="page">Last 30 days"#),
        "{page}"
    );
    assert!(page.contains(r#"<rect class="bar""#), "the chart: {page}");
    assert!(
        page.contains(r#"<td class="num">2</td>"#),
        "its table: {page}"
    );
    // The appointments are still to come: nothing to split yet.
    assert!(
        page.contains("By service: no appointments in this range yet."),
        "{page}"
    );
    assert!(!page.contains("<script>"), "no inline script");
    let (status, _, page) = browser.get("/analytics?range=12m").await;
    assert_eq!(status, 200);
    assert!(page.contains("Bookings made, by month"), "{page}");
    // An unknown range is the default one, not an error.
    let (status, _, page) = browser.get("/analytics?range=forever").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"aria-current="page">Last 12 weeks"#),
        "{page}"
    );
}

/// A business signs up from the dashboard: mistakes are said next to their fields (and what
/// was typed is kept, but the password), then the owner lands on Setup, signed in; the same
/// short name again is taken.
#[tokio::test]
async fn a_business_signs_up_and_lands_on_setup_signed_in() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let mut browser = Browser::new(&dashboard);
    let (status, _, page) = browser.get("/signup").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<label for="time_zone">"#), "{page}");
    let form = |slug: &'static str, password: &'static str| {
        [
            ("business_name", "Barbería Sol"),
            ("slug", slug),
            ("email", "owner@barberia-sol.example"),
            ("password", password),
            ("time_zone", "Europe/Madrid"),
        ]
    };
    let (status, _, page) = browser
        .post(
            "/signup",
            &form("Not A Slug!", "short"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="slug-error""#), "{page}");
    assert!(page.contains(r#"id="password-error""#), "{page}");
    assert!(page.contains(r#"value="Barbería Sol""#), "{page}");
    assert!(!page.contains("short\""), "the password is not shown back");
    let (status, headers, _) = browser
        .post(
            "/signup",
            &form("barberia-sol", "a long enough password"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 303);
    let to = headers["location"].to_str().unwrap().to_owned();
    assert!(to.starts_with("/setup?after="), "{to}");
    let (status, _, page) = browser.get(&to).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Welcome!"), "{page}");
    assert!(page.contains("Barbería Sol"), "{page}");
    let mut other = Browser::new(&dashboard);
    let (status, _, page) = other
        .post(
            "/signup",
            &form("barberia-sol", "a long enough password"),
            Some("same-origin"),
        )
        .await;
    assert_eq!(status, 409, "{page}");
    assert!(other.cookie.is_none());
}

/// The value of the form field `name` on `page`.
fn form_value(page: &str, name: &str) -> String {
    page.split(&format!(r#"name="{name}" value=""#))
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no {name} on {page}"))
        .to_owned()
}

/// An owner edits what the bot says: the preview is the bot's own engine on the draft (a new
/// greeting and a keyword reply answer in it before anything is saved), a text with a
/// placeholder the bot does not know is refused next to it, a save keeps only the texts the
/// business wrote (a change of language brings the other texts in the new language), and a
/// save over someone else's is refused.
#[tokio::test]
async fn an_owner_edits_what_the_bot_says_with_a_live_preview_and_saves_it() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("dash-bot").await,
        app: &app,
    };
    t.configured().await;
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-bot").await;
    // The page reads the configuration, then the services: it may show the service (the
    // configuration's version 2) beside the configuration at version 1 for a moment.
    let (_, _, page) = eventually_page(&browser, "/setup/bot", r#"name="version" value="2""#).await;
    assert!(page.contains("Haircut"), "{page}");
    assert!(page.contains("Hi! Welcome to Demo Salon"), "{page}");
    assert!(page.contains("Which service would you like?"), "{page}");
    assert!(
        page.contains("What name should I put the booking under?"),
        "the preview walks a booking through: {page}"
    );
    let version = form_value(&page, "version");

    let greeting = "Welcome to {business_name}, the best cuts in town!";
    let draft = |greeting: &'static str, language: &'static str, version: &str| {
        vec![
            ("version", version.to_owned()),
            ("language", language.to_owned()),
            ("ask_name", "on".to_owned()),
            ("ask_payment", "on".to_owned()),
            ("text_greeting", greeting.to_owned()),
            (
                "text_choose_service",
                "Which service would you like?".to_owned(),
            ),
            ("keywords_0", "parking, car".to_owned()),
            ("reply_0", "Free parking behind the salon.".to_owned()),
            ("keywords_1", String::new()),
            ("reply_1", String::new()),
            ("script", "Hi\nWhere can I leave the car?".to_owned()),
        ]
    };

    // The preview answers with the draft, and nothing is saved.
    let (status, _, preview) = browser
        .submit("/setup/bot/preview", &draft(greeting, "en", &version))
        .await;
    assert_eq!(status, 200, "{preview}");
    assert!(
        preview.starts_with(r#"<div id="preview""#),
        "a fragment: {preview}"
    );
    assert!(
        preview.contains("Welcome to Demo Salon, the best cuts in town!"),
        "{preview}"
    );
    assert!(
        preview.contains("Free parking behind the salon."),
        "{preview}"
    );
    let (_, config) = query
        .get("/v1/bot-config", &t.owner.access_token, None)
        .await;
    assert!(
        config["settings"]["keyword_replies"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );

    // A placeholder the bot does not know: said in the preview, and refused on save.
    let (_, _, preview) = browser
        .submit(
            "/setup/bot/preview",
            &draft("Hello {nickname}!", "en", &version),
        )
        .await;
    assert!(
        preview.contains("flow.texts.greeting: unknown placeholder {nickname}"),
        "{preview}"
    );
    let (status, _, page) = browser
        .submit("/setup/bot", &draft("Hello {nickname}!", "en", &version))
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains(r#"id="bot-errors""#), "{page}");
    assert!(
        page.contains("Hello {nickname}!"),
        "what was typed is kept: {page}"
    );

    // Saved.
    let (status, headers, _) = browser
        .submit("/setup/bot", &draft(greeting, "en", &version))
        .await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains("Saved: the bot answers this way"), "{page}");
    assert!(page.contains("the best cuts in town"), "{page}");
    let (_, config) = query
        .get("/v1/bot-config", &t.owner.access_token, None)
        .await;
    assert_eq!(config["settings"]["flow"]["texts"]["greeting"], greeting);
    assert_eq!(
        config["settings"]["keyword_replies"],
        serde_json::json!([{"keywords": ["parking", "car"], "reply": "Free parking behind the salon."}])
    );
    let saved_version = form_value(&page, "version");

    // In Spanish: the business's own greeting stays, the texts left as they were speak Spanish.
    // And a customer's "delete my data" erases them at once.
    assert_eq!(
        config["settings"]["privacy"]["erasure_requests"],
        "ask_business"
    );
    let mut spanish = draft(greeting, "es", &saved_version);
    spanish.push(("erasure_requests", "erase_at_once".to_owned()));
    let (status, headers, _) = browser.submit("/setup/bot", &spanish).await;
    assert_eq!(status, 303);
    let (_, _, page) = browser.get(headers["location"].to_str().unwrap()).await;
    assert!(page.contains(r#"<option value="es" selected>"#), "{page}");
    assert!(
        page.contains(r#"<option value="erase_at_once" selected>"#),
        "{page}"
    );
    let (_, config) = query
        .get("/v1/bot-config", &t.owner.access_token, None)
        .await;
    assert_eq!(
        config["settings"]["privacy"]["erasure_requests"],
        "erase_at_once"
    );
    let texts = &config["settings"]["flow"]["texts"];
    assert_eq!(texts["greeting"], greeting);
    assert_ne!(
        texts["choose_service"], "Which service would you like?",
        "{texts}"
    );

    // A save from the page read before the last one: refused, nothing saved over.
    let (status, _, page) = browser
        .submit("/setup/bot", &draft("Stale!", "en", &saved_version))
        .await;
    assert_eq!(status, 412, "{page}");
    assert!(page.contains(r#"id="conflict""#), "{page}");
    let (_, config) = query
        .get("/v1/bot-config", &t.owner.access_token, None)
        .await;
    assert_eq!(config["settings"]["flow"]["texts"]["greeting"], greeting);
}

/// A member switches the second factor on from Your account: the secret as a QR code drawn in
/// the page and as text, a wrong code refused next to its field (the same QR shown again),
/// the right one switches it on and signing in then asks for a code; the password is changed
/// through an emailed link.
#[tokio::test]
async fn a_member_switches_the_second_factor_on_from_a_qr_code_and_asks_for_a_new_password() {
    use totp_rs::{Algorithm, Secret, TOTP};
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    app.onboard("dash-account").await;
    let mut browser = Browser::new(&dashboard);
    browser.sign_in("dash-account").await;
    let (_, _, page) = eventually_page(&browser, "/account", "owner@dash-account.example").await;
    assert!(page.contains(r#"status-requested">off"#), "{page}");

    let (status, _, page) = browser.submit("/account/second-factor", &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<svg"), "the QR code is in the page: {page}");
    let secret = page
        .split(r#"<code id="mfa-secret">"#)
        .nth(1)
        .and_then(|rest| rest.split('<').next())
        .unwrap()
        .to_owned();
    let url = form_value(&page, "otpauth_url").replace("&amp;", "&");
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    let authenticator = TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        Secret::Encoded(secret).to_bytes().unwrap(),
        None,
        String::new(),
    )
    .unwrap();
    let verify = |code: String| vec![("otpauth_url", url.clone()), ("code", code)];
    if authenticator.generate_current().unwrap() != "000000" {
        let (status, _, page) = browser
            .submit("/account/second-factor/verify", &verify("000000".into()))
            .await;
        assert_eq!(status, 422, "{page}");
        assert!(page.contains(r#"id="code-error""#), "{page}");
        assert!(page.contains("<svg"), "the same QR again: {page}");
    }
    let (status, _, page) = browser
        .submit(
            "/account/second-factor/verify",
            &verify(authenticator.generate_current().unwrap()),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("The second factor is on"), "{page}");
    assert!(page.contains(r#"status-confirmed">on"#), "{page}");

    // Signing in now asks for the code.
    let mut other = Browser::new(&dashboard);
    let (status, _, page) = other
        .post(
            "/login",
            &[
                ("slug", "dash-account"),
                ("email", "owner@dash-account.example"),
                ("password", "correct horse battery staple"),
            ],
            Some("same-origin"),
        )
        .await;
    assert_ne!(status, 303, "not signed in without the code: {page}");
    assert!(page.contains(r#"name="totp""#), "{page}");

    let (status, _, page) = browser.submit("/account/password", &[]).await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("We emailed owner@dash-account.example a link"),
        "{page}"
    );
}
