//! The dashboard in a real browser: Debian's headless Chromium driven over WebDriver
//! (`chromedriver`, which `.ci/run` installs), as a member uses it: sign in, Home, Bookings, a
//! phone-size screen, cancelling from a row (htmx), sign out. Each step leaves a screenshot under the target directory
//! (`tmp/screenshots/`), and the assertions are on what the page shows.
//!
//! The WebDriver calls are the protocol's own few JSON requests (`Chrome` below): a WebDriver
//! crate would bring a second TLS stack with a C build (aws-lc) into every build of the suite
//! for nothing this needs.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    eventually, free_port, projector_settings, query_api_settings, spawn_command_api,
    spawn_dashboard, spawn_projector, spawn_query_api,
};
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A headless Chromium under its own chromedriver, until dropped.
struct Chrome {
    driver: tokio::process::Child,
    base: String,
    client: reqwest::Client,
    _profile: PathBuf,
}

impl Chrome {
    async fn start(width: u32, height: u32) -> Self {
        let port = free_port();
        let driver = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver (Debian's chromium-driver; .ci/run installs it)");
        let client = reqwest::Client::new();
        let root = format!("http://127.0.0.1:{port}");
        eventually(Duration::from_secs(20), || async {
            let ready = client.get(format!("{root}/status")).send().await.ok()?;
            let status: Value = ready.json().await.ok()?;
            status["value"]["ready"].as_bool().filter(|r| *r)
        })
        .await
        .expect("chromedriver is ready");
        let profile = std::env::temp_dir().join(format!("chrome-{}", uuid::Uuid::new_v4()));
        let created: Value = client
            .post(format!("{root}/session"))
            .json(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": "/usr/bin/chromium",
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run",
                        "--disable-quic", format!("--window-size={width},{height}"),
                        format!("--user-data-dir={}", profile.display()),
                    ],
                },
            }}}))
            .send()
            .await
            .expect("a WebDriver session")
            .json()
            .await
            .unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_owned();
        Self {
            driver,
            base: format!("{root}/session/{session}"),
            client,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if !body.is_null() {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if answer["value"]["error"].is_string() {
            panic!("WebDriver {path}: {answer}");
        }
        answer["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The element `css` finds, once it is there (within 10 s).
    async fn find(&self, css: &str) -> String {
        let found = eventually(Duration::from_secs(10), || async {
            let answer: Value = self
                .client
                .post(format!("{}/element", self.base))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            answer["value"][ELEMENT].as_str().map(str::to_owned)
        })
        .await;
        found.unwrap_or_else(|| panic!("no {css} on {}", self.url_now()))
    }

    fn url_now(&self) -> &str {
        &self.base
    }

    async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/value"),
            json!({"text": text}),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            json!({}),
        )
        .await;
    }

    /// The visible text of the page's `main` (read again while a navigation replaces it).
    async fn text(&self) -> String {
        eventually(Duration::from_secs(10), || async {
            let found: Value = self
                .client
                .post(format!("{}/element", self.base))
                .json(&json!({"using": "css selector", "value": "main"}))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let id = found["value"][ELEMENT].as_str()?;
            let text: Value = self
                .client
                .get(format!("{}/element/{id}/text", self.base))
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            text["value"].as_str().map(str::to_owned)
        })
        .await
        .expect("the page's main text")
    }

    /// Whether the page's scripts loaded (htmx, from the dashboard itself).
    async fn script(&self, code: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": code, "args": []}),
        )
        .await
    }

    /// Saves a PNG of the window as `name` under the target directory; returns its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        use base64::Engine as _;
        let png = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &bytes).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        path
    }
}

impl Drop for Chrome {
    /// Ends the WebDriver session first, so chromedriver quits the browser it started (killing
    /// chromedriver alone would leave Chromium and its helpers running after every test), then
    /// stops chromedriver. A blocking `DELETE /session/{id}` on a plain socket: `Drop` cannot
    /// await, and it must run when a test panics too.
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let rest = self.base.trim_start_matches("http://");
        let (host, path) = rest.split_once('/').expect("host/session/id");
        if let Ok(mut socket) = std::net::TcpStream::connect(host) {
            let _ = socket.set_read_timeout(Some(Duration::from_secs(10)));
            let request =
                format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            if socket.write_all(request.as_bytes()).is_ok() {
                let _ = socket.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.start_kill();
    }
}

#[tokio::test]
async fn an_owner_signs_in_and_reads_the_day_and_the_bookings_in_a_browser_also_on_a_phone() {
    let app = spawn_command_api().await;
    let _projector = spawn_projector(projector_settings(&app.db, &app.nats)).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let t = Tenant {
        owner: app.onboard("browser-salon").await,
        app: &app,
    };
    let service = t.configured().await;
    for (hour, phone) in [(10, "+34600000001"), (12, "+34600000002")] {
        let (status, body) = t.book(&service, &slot(hour), phone, None).await;
        assert_eq!(status, 201, "{body}");
    }

    let chrome = Chrome::start(1280, 900).await;
    chrome.goto(&format!("{}/", dashboard.address)).await;
    assert!(chrome.url().await.ends_with("/login"), "sent to sign in");
    chrome.screenshot("login").await;
    chrome.type_into("#slug", "browser-salon").await;
    chrome
        .type_into("#email", "owner@browser-salon.example")
        .await;
    chrome.type_into("#password", "not the password").await;
    chrome.click("button[type=submit]").await;
    // The refusal is a new page: wait for it rather than read the one being left.
    text_with(&chrome, "do not match").await;
    chrome.screenshot("login-refused").await;

    chrome
        .type_into("#password", "correct horse battery staple")
        .await;
    chrome.click("button[type=submit]").await;
    let home = eventually(Duration::from_secs(10), || async {
        let text = chrome.text().await;
        text.contains("Today's appointments").then_some(text)
    })
    .await
    .expect("Home after signing in");
    assert!(home.contains("This week against last week"), "{home}");
    assert!(home.contains("Bookings this month"), "{home}");
    assert_eq!(
        chrome.script("return typeof htmx").await,
        "object",
        "htmx loads from the dashboard under its CSP"
    );
    chrome.screenshot("home").await;

    chrome.click("nav a[href='/bookings']").await;
    let bookings = eventually(Duration::from_secs(10), || async {
        let text = chrome.text().await;
        text.contains("+34600000002").then_some(text)
    })
    .await
    .expect("the bookings");
    assert!(bookings.contains("Haircut"), "{bookings}");
    assert!(bookings.contains("+34600000001"), "{bookings}");
    chrome.screenshot("bookings").await;

    // A phone: the same page, the appointments as labelled lines, nothing wider than the
    // screen.
    let phone = Chrome::start(390, 844).await;
    phone.goto(&format!("{}/login", dashboard.address)).await;
    phone.type_into("#slug", "browser-salon").await;
    phone
        .type_into("#email", "owner@browser-salon.example")
        .await;
    phone
        .type_into("#password", "correct horse battery staple")
        .await;
    phone.click("button[type=submit]").await;
    phone.find("#today-title").await;
    phone.goto(&format!("{}/bookings", dashboard.address)).await;
    let text = phone.text().await;
    assert!(text.contains("+34600000001"), "{text}");
    let overflow = phone
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(overflow, false, "nothing wider than a phone's screen");
    phone.screenshot("bookings-phone").await;

    // Cancel the 13:00 appointment from its row, with a reason: htmx swaps the row in place
    // (no page load), and it says cancelled.
    chrome
        .script("window.__same_page = true; return true")
        .await;
    let second = "tbody tr:nth-child(2)";
    chrome
        .type_into(
            &format!("{second} input[name=reason]"),
            "The salon closes early",
        )
        .await;
    chrome.click(&format!("{second} .action-cancel")).await;
    let swapped = eventually(Duration::from_secs(30), || async {
        let status = chrome
            .script("return document.querySelector('tbody tr:nth-child(2) .status').textContent")
            .await;
        (status == "cancelled").then_some(())
    })
    .await;
    assert!(swapped.is_some(), "the row shows the cancellation");
    assert_eq!(
        chrome.script("return window.__same_page === true").await,
        true,
        "the row was swapped by htmx, not by loading the page again"
    );
    chrome.screenshot("bookings-cancelled").await;

    // The calendar of that day: the 10:00 booking as a block (the bot's hours are in UTC);
    // open it and move it to 15:00.
    let day = &slot(10)[..10];
    chrome
        .goto(&format!("{}/calendar?date={day}", dashboard.address))
        .await;
    let calendar = chrome.text().await;
    assert!(calendar.contains("Appointments"), "{calendar}");
    assert!(calendar.contains("Haircut"), "{calendar}");
    assert_eq!(
        chrome
            .script("return document.querySelectorAll('table.day thead th').length")
            .await,
        2,
        "one column, the business's appointments, beside the times"
    );
    chrome.screenshot("calendar-day").await;
    chrome.click("a.block").await;
    chrome.find("#move-time").await;
    chrome
        .script("document.querySelector('#move-time').value = '15:00'; return true")
        .await;
    chrome.click("form.move button").await;
    let moved = eventually(Duration::from_secs(10), || async {
        let text = chrome.text().await;
        text.contains("15:00–15:45").then_some(text)
    })
    .await
    .expect("the booking at its new time");
    assert!(moved.contains("Moved"), "{moved}");
    chrome.screenshot("booking-moved").await;

    chrome.click(".logout button").await;
    eventually(Duration::from_secs(10), || async {
        chrome.url().await.ends_with("/login").then_some(())
    })
    .await
    .expect("signed out");
    chrome
        .goto(&format!("{}/bookings", dashboard.address))
        .await;
    assert!(
        chrome.url().await.ends_with("/login"),
        "the session is over"
    );
}

/// Staff answer a customer from the Inbox in a browser: open the conversation waiting for a
/// person, take it over, type a reply and send it (htmx, no page load); the customer gets it
/// on WhatsApp (the fake Cloud API), and the thread shows it as theirs with its ticks.
#[tokio::test]
async fn staff_take_over_a_conversation_and_reply_in_a_browser_and_the_customer_gets_it() {
    let w = crate::takeover::world("inbox-salon").await;
    let dashboard = spawn_dashboard(&w.app.db, &w.app.nats, &w.app.address, &w.query.address).await;
    let ana = "34600000005";
    w.say(ana, "hi").await;
    w.say(ana, "agent").await;
    w.conversation(ana, |c| c["handed_off"] == true).await;

    let chrome = Chrome::start(1280, 900).await;
    chrome.goto(&format!("{}/login", dashboard.address)).await;
    chrome.type_into("#slug", "inbox-salon").await;
    chrome
        .type_into("#email", "owner@inbox-salon.example")
        .await;
    chrome
        .type_into("#password", "correct horse battery staple")
        .await;
    chrome.click("button[type=submit]").await;
    chrome.find("#today-title").await;
    chrome.click("nav a[href='/inbox']").await;
    let inbox = eventually(Duration::from_secs(10), || async {
        let text = chrome.text().await;
        text.contains("waiting for a person").then_some(text)
    })
    .await
    .expect("the inbox shows Ana waiting");
    assert!(inbox.contains("Ana"), "{inbox}");
    chrome.screenshot("inbox").await;

    chrome.click(".inbox li a").await;
    let thread = eventually(Duration::from_secs(10), || async {
        let text = chrome.text().await;
        text.contains("asked for a person").then_some(text)
    })
    .await
    .expect("the conversation");
    assert!(thread.contains("You can write freely"), "{thread}");
    chrome
        .script("window.__same_page = true; return true")
        .await;
    chrome.click(".handling-actions button").await;
    eventually(Duration::from_secs(10), || async {
        chrome
            .text()
            .await
            .contains("You are answering Ana")
            .then_some(())
    })
    .await
    .expect("taken over");

    let reply = "Hi Ana, Marta here: how can I help?";
    chrome.type_into("#text", reply).await;
    chrome.click(".composer .send").await;
    let sent = eventually(Duration::from_secs(20), || async {
        w.received(ana).iter().any(|t| t == reply).then_some(())
    })
    .await;
    assert!(sent.is_some(), "the customer got the reply on WhatsApp");
    let shown = eventually(Duration::from_secs(15), || async {
        let ticks = chrome
            .script("return Array.from(document.querySelectorAll('.bubble.staff .tick')).map(t => t.textContent).join(',')")
            .await;
        (ticks == "read").then_some(())
    })
    .await;
    assert!(
        shown.is_some(),
        "the reply is shown as the business's, read"
    );
    assert_eq!(
        chrome
            .script("return document.querySelector('#text').value")
            .await,
        "",
        "the box is empty again"
    );
    assert_eq!(
        chrome.script("return window.__same_page === true").await,
        true,
        "htmx swapped the conversation in place"
    );
    chrome.screenshot("conversation-taken-over").await;

    // A phone: the thread and the box fit the screen.
    let phone = Chrome::start(390, 844).await;
    phone.goto(&format!("{}/login", dashboard.address)).await;
    phone.type_into("#slug", "inbox-salon").await;
    phone.type_into("#email", "owner@inbox-salon.example").await;
    phone
        .type_into("#password", "correct horse battery staple")
        .await;
    phone.click("button[type=submit]").await;
    phone.find("#today-title").await;
    phone
        .goto(&format!("{}/inbox/%2B{ana}", dashboard.address))
        .await;
    phone.find("#text").await;
    let overflow = phone
        .script("return document.documentElement.scrollWidth > window.innerWidth")
        .await;
    assert_eq!(overflow, false, "nothing wider than a phone's screen");
    phone.screenshot("conversation-phone").await;
}

#[tokio::test]
async fn an_owner_erases_a_customer_who_asked_on_whatsapp_from_the_conversation() {
    let w = crate::takeover::world("forget-salon").await;
    let dashboard = spawn_dashboard(&w.app.db, &w.app.nats, &w.app.address, &w.query.address).await;
    let ana = "34600000006";
    w.say(ana, "hi").await;
    w.conversation(ana, |_| true).await;

    let chrome = Chrome::start(1280, 900).await;
    sign_in(
        &chrome,
        &dashboard.address,
        "forget-salon",
        "owner@forget-salon.example",
        "correct horse battery staple",
    )
    .await;
    chrome.click("nav a[href='/inbox']").await;
    chrome.click(".inbox li a").await;
    text_with(&chrome, "Ana").await;
    // The owner has the conversation open when Ana asks: the page's refresh brings the
    // request, and its link opens the erase form, without a reload.
    w.say(ana, "please delete my data").await;
    let thread = text_with(&chrome, "to have their data deleted").await;
    assert!(
        !thread.contains("Erase Ana"),
        "the form is folded until asked for: {thread}"
    );
    chrome.click("#erasure-requested a").await;
    text_with(&chrome, "Erase Ana").await;
    chrome.screenshot("conversation-erasure-requested").await;
    chrome.click(".erase-form input[name=sure]").await;
    chrome.click(".erase-form button").await;
    let inbox = text_with(&chrome, "data is deleted").await;
    assert!(!inbox.contains("asks to delete their data"), "{inbox}");
    assert!(inbox.contains("Erased customer"), "{inbox}");
    chrome.screenshot("inbox-erased").await;
    let superuser = w.app.db.superuser_url_pool().await;
    let keys: i64 = sqlx::query_scalar("select count(*) from customer_keys")
        .fetch_one(&superuser)
        .await
        .unwrap();
    assert_eq!(keys, 0, "the customer's key is gone");
}

/// Signs `chrome` in to `slug` as its owner (the suite's password), on Home.
async fn sign_in(chrome: &Chrome, dashboard: &str, slug: &str, email: &str, password: &str) {
    chrome.goto(&format!("{dashboard}/login")).await;
    chrome.type_into("#slug", slug).await;
    chrome.type_into("#email", email).await;
    chrome.type_into("#password", password).await;
    chrome.click("button[type=submit]").await;
    chrome.find("#today-title").await;
}

/// The main text once it shows `wanted`.
async fn text_with(chrome: &Chrome, wanted: &str) -> String {
    eventually(Duration::from_secs(20), || async {
        let text = chrome.text().await;
        text.contains(wanted).then_some(text)
    })
    .await
    .unwrap_or_else(|| panic!("the page never said {wanted:?}"))
}

/// A business's first day, in one browser session, against the real platform and the fake
/// Cloud API: it signs up, adds its service, sets its week, connects its WhatsApp number; a
/// customer books through the bot and the booking appears; the owner moves it from its page
/// (the customer is told), takes the conversation over and replies (the customer gets it),
/// and cancels with a reason (the customer is told). Another business's owner, signed in
/// beside, sees none of it, even with the booking's own address.
#[tokio::test]
async fn a_new_business_signs_up_sets_up_takes_a_whatsapp_booking_moves_it_answers_and_cancels() {
    use fake_whatsapp::{Fake, Inbound, WebhookConfig};
    const NUMBER: &str = "106540352242933";
    const APP_SECRET: &str = "app-secret-for-the-browser-flow";
    let fake = Fake::new(fake_whatsapp::DEFAULT_TOKEN);
    let fake_url = fake.clone().spawn().await;
    let app = e2e_tests::spawn_command_api_with_graph(&fake_url).await;
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.sender.api_base_url = fake_url;
    let _projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let dashboard = spawn_dashboard(&app.db, &app.nats, &app.address, &query.address).await;
    let site = dashboard.address.as_str();
    let password = "a long and private password";

    // Sign up: Setup, signed in.
    let chrome = Chrome::start(1280, 1000).await;
    chrome.goto(&format!("{site}/signup")).await;
    chrome.type_into("#business_name", "Peluquería Luna").await;
    chrome.type_into("#slug", "luna-flow").await;
    chrome.type_into("#email", "owner@luna-flow.example").await;
    chrome.type_into("#password", password).await;
    chrome
        .script("document.querySelector('#time_zone').value = 'UTC'; return true")
        .await;
    chrome.click("button[type=submit]").await;
    text_with(&chrome, "No services yet").await;
    chrome.screenshot("flow-1-signed-up").await;

    // A service, then the week: every day 08:00-20:00.
    chrome.type_into("#service-name", "Corte").await;
    chrome
        .script("document.querySelector('#service-minutes').value = '30'; return true")
        .await;
    chrome.type_into("#service-price", "20").await;
    chrome.click(".service-form button").await;
    text_with(&chrome, "Corte is added").await;
    chrome
        .script(
            "document.querySelectorAll('table.hours tbody tr').forEach(row => { \
               const [open, close] = row.querySelectorAll('input'); \
               open.value = '08:00'; close.value = '20:00'; }); return true",
        )
        .await;
    chrome
        .click("form[action='/setup/week'] button.primary")
        .await;
    let setup = text_with(&chrome, "The week is saved").await;
    assert!(setup.contains("20.00 EUR"), "{setup}");
    chrome.screenshot("flow-2-set-up").await;

    // The email to confirm first: Home asks for it, and the emailed link's page confirms it.
    chrome.click("nav a[href='/']").await;
    text_with(&chrome, "Confirm your email").await;
    chrome.screenshot("flow-2b-confirm-email").await;
    let token = {
        let superuser = app.db.superuser_url_pool().await;
        let sealed: Vec<u8> = sqlx::query_scalar(
            "select token_enc from email_verifications where email = $1 and token_enc is not null",
        )
        .bind("owner@luna-flow.example")
        .fetch_one(&superuser)
        .await
        .unwrap();
        let sealer = vault::Sealer::from_base64(e2e_tests::TEST_ENCRYPTION_KEY).unwrap();
        String::from_utf8(sealer.open(&sealed).unwrap()).unwrap()
    };
    chrome
        .goto(&format!("{site}/verify-email?token={token}"))
        .await;
    chrome
        .click("form[action='/verify-email'] button.primary")
        .await;
    text_with(&chrome, "Your email is confirmed").await;
    chrome.screenshot("flow-2c-email-confirmed").await;
    chrome.click("a[href='/']").await;
    text_with(&chrome, "Today's appointments").await;

    // The WhatsApp number, checked against the (fake) Cloud API.
    chrome.click("nav a[href='/whatsapp']").await;
    chrome.type_into("#phone_number_id", NUMBER).await;
    chrome
        .type_into("#access_token", fake_whatsapp::DEFAULT_TOKEN)
        .await;
    chrome.type_into("#app_secret", APP_SECRET).await;
    chrome
        .type_into("#verify_token", "verify-token-for-the-flow")
        .await;
    chrome
        .click("form[action='/whatsapp'] button.primary")
        .await;
    text_with(&chrome, "Customers write to").await;
    chrome.screenshot("flow-3-whatsapp").await;
    fake.configure(WebhookConfig {
        webhook_url: Some(format!("{}/webhooks/whatsapp", app.address)),
        app_secret: Some(APP_SECRET.into()),
        status_webhooks: true,
        redeliver_for_ms: None,
    });

    // A customer books on WhatsApp, answering each question with its first choice (their
    // name is their WhatsApp profile's), and says yes to the summary.
    let ana = "34611000111";
    for text in ["hola", "1", "1", "1", "yes"] {
        let before = fake.messages_to(ana).len();
        fake.deliver_inbound(&Inbound {
            phone_number_id: NUMBER.into(),
            from: ana.into(),
            name: Some("Ana".into()),
            text: Some(text.into()),
            button_reply: None,
            list_reply: None,
            template_reply: None,
        })
        .await
        .unwrap();
        // The turn's answer, all of it: nothing more for half a second.
        let seen = std::cell::Cell::new(before);
        eventually(Duration::from_secs(20), || async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = fake.messages_to(ana).len();
            let settled = now > before && now == seen.replace(now);
            settled.then_some(())
        })
        .await
        .unwrap_or_else(|| panic!("the bot never answered {text:?}"));
    }
    let said = |m: &fake_whatsapp::Received| m.body.to_string();
    assert!(
        fake.messages_to(ana)
            .iter()
            .any(|m| said(m).contains("Booked!")),
        "{:?}",
        fake.messages_to(ana).iter().map(said).collect::<Vec<_>>()
    );
    chrome.click("nav a[href='/bookings']").await;
    let bookings = text_with(&chrome, "+34611000111").await;
    assert!(bookings.contains("Corte"), "{bookings}");
    chrome.screenshot("flow-4-whatsapp-booking").await;

    // Moved to the next day from the booking's page: the customer is told.
    chrome.click("a.open-booking").await;
    chrome.find("#move-date").await;
    let booking_url = chrome.url().await;
    chrome
        .script(
            "const d = document.querySelector('#move-date'); \
             const next = new Date(d.value + 'T12:00:00Z'); next.setUTCDate(next.getUTCDate() + 1); \
             d.value = next.toISOString().slice(0, 10); return true",
        )
        .await;
    chrome.click("form.move button").await;
    text_with(&chrome, "Moved").await;
    let told = |what: &'static str| {
        let fake = &fake;
        async move {
            eventually(Duration::from_secs(20), || async {
                fake.messages_to(ana)
                    .iter()
                    .any(|m| m.body.to_string().contains(what))
                    .then_some(())
            })
            .await
            .is_some()
        }
    };
    assert!(
        told("is now on").await,
        "the customer is told of the move: {:?}",
        fake.messages_to(ana)
            .iter()
            .map(|m| m.body.to_string())
            .collect::<Vec<_>>()
    );
    chrome.screenshot("flow-5-moved").await;

    // The conversation: taken over, answered; the customer gets the answer.
    chrome.click("nav a[href='/inbox']").await;
    text_with(&chrome, "Ana").await;
    chrome.click(".inbox li a").await;
    chrome.find(".handling-actions button").await;
    chrome.click(".handling-actions button").await;
    text_with(&chrome, "You are answering Ana").await;
    let answer = "Hola Ana, see you tomorrow!";
    chrome.type_into("#text", answer).await;
    chrome.click(".composer .send").await;
    assert!(told(answer).await, "the customer gets the reply");
    chrome.screenshot("flow-6-answered").await;

    // Cancelled with a reason: the customer is told.
    chrome.goto(&booking_url).await;
    chrome
        .type_into(
            ".actions input[name=reason]",
            "The salon is closed that day",
        )
        .await;
    chrome.click(".actions .action-cancel").await;
    let cancelled = text_with(&chrome, "cancelled").await;
    assert!(
        cancelled.contains("Cancelled by a member of the team"),
        "{cancelled}"
    );
    assert!(
        cancelled.contains("Moved by a member of the team"),
        "{cancelled}"
    );
    assert!(
        !cancelled.contains("RemindersScheduled"),
        "bookkeeping is not history: {cancelled}"
    );
    assert!(
        told("is cancelled").await,
        "the customer is told of the cancellation"
    );
    chrome.screenshot("flow-7-cancelled").await;

    // Another business, signed in beside: none of it.
    let other = app.onboard("luna-other").await;
    assert!(!other.tenant_id.is_empty());
    let neighbour = Chrome::start(1280, 900).await;
    sign_in(
        &neighbour,
        site,
        "luna-other",
        "owner@luna-other.example",
        "correct horse battery staple",
    )
    .await;
    for page in ["/bookings?tab=cancelled", "/inbox", "/calendar"] {
        neighbour.goto(&format!("{site}{page}")).await;
        let text = neighbour.text().await;
        assert!(!text.contains("34611000111"), "{page}: {text}");
        assert!(!text.contains("Corte"), "{page}: {text}");
    }
    neighbour.goto(&booking_url).await;
    let text = neighbour.text().await;
    assert!(text.contains("Nothing here"), "{text}");
    assert!(!text.contains("Corte"), "{text}");
    assert!(!text.contains("34611000111"), "{text}");
    neighbour.screenshot("flow-8-other-business").await;
}
