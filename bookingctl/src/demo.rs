//! `bookingctl demo`: seeds the demo tenant through the platform's own APIs (idempotent: a
//! second run logs in and leaves what exists), points the fake Cloud API at the webhook, and
//! writes `.data/demo.env` for people and scripts.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

pub const SLUG: &str = "demo-salon";
pub const PHONE_NUMBER_ID: &str = "100000000000001";
const EMAIL: &str = "owner@demo-salon.example";
const PASSWORD: &str = "demo-salon-password";
const VERIFY_TOKEN: &str = "demo-verify-token";

/// The past to import for a new demo tenant (see [`crate::history`]).
pub struct Past {
    /// The application role's database URL.
    pub database_url: String,
    pub days: i64,
}

pub struct Urls {
    pub command_api: String,
    pub query_api: String,
    pub fake_whatsapp: String,
    pub fake_token: String,
    pub fake_stripe: String,
    pub stripe_webhook_secret: String,
    pub smtp_sink: String,
}

/// Follows the owner's verification link from the SMTP sink's copy of the email. A tenant seeded
/// before asks for another link first (a 409 says its email is verified already).
async fn verify_email(
    client: &reqwest::Client,
    urls: &Urls,
    token: &str,
    fresh: bool,
) -> anyhow::Result<()> {
    let c = &urls.command_api;
    let since = chrono::Utc::now() - chrono::Duration::seconds(if fresh { 60 } else { 0 });
    if !fresh {
        let (status, body) = send(
            client,
            reqwest::Method::POST,
            format!("{c}/v1/auth/verify-email/resend"),
            Some(token),
            &[],
            None,
        )
        .await?;
        match status {
            409 => return Ok(()),
            202 => {}
            _ => bail!("asking for a verification link failed ({status}): {body}"),
        }
    }
    let link = "verify-email?token=";
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    let verification = loop {
        let (_, mails) = send(
            client,
            reqwest::Method::GET,
            format!("{}?to={EMAIL}", urls.smtp_sink),
            None,
            &[],
            None,
        )
        .await?;
        let newest = mails.as_array().and_then(|mails| {
            mails.iter().rev().find_map(|m| {
                let at: chrono::DateTime<chrono::Utc> = m["received_at"].as_str()?.parse().ok()?;
                let body = m["body"].as_str()?;
                let token = body.split(link).nth(1)?.split_whitespace().next()?;
                (at >= since).then(|| token.to_owned())
            })
        });
        if let Some(token) = newest {
            break token;
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "no verification email reached the SMTP sink at {}",
                urls.smtp_sink
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let (status, body) = send(
        client,
        reqwest::Method::POST,
        format!("{c}/v1/auth/verify-email"),
        None,
        &[],
        Some(json!({ "token": verification })),
    )
    .await?;
    if status != 200 {
        bail!("verifying the demo owner's email failed ({status}): {body}");
    }
    Ok(())
}

/// Reads `KEY=value` lines.
pub fn read_env(path: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

async fn send(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut request = client.request(method, &url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.json().await.unwrap_or(Value::Null)))
}

pub async fn seed(
    urls: &Urls,
    past: Option<&Past>,
    env_file: &Path,
) -> anyhow::Result<BTreeMap<String, String>> {
    let client = reqwest::Client::new();
    let previous = read_env(env_file);
    let app_secret = previous
        .get("DEMO_APP_SECRET")
        .cloned()
        .unwrap_or_else(|| format!("demo-app-secret-{}", uuid::Uuid::new_v4().simple()));
    let c = &urls.command_api;

    // The tenant: onboard, or log in when it exists.
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        format!("{c}/v1/tenants"),
        None,
        &[],
        Some(
            json!({"business_name": "Demo Salon", "slug": SLUG, "owner_email": EMAIL,
            "owner_password": PASSWORD, "time_zone": "Europe/Madrid"}),
        ),
    )
    .await?;
    let fresh = status == 201;
    let token = if fresh {
        body["access_token"].as_str().unwrap_or_default().to_owned()
    } else {
        let (status, login) = send(
            &client,
            reqwest::Method::POST,
            format!("{c}/v1/auth/login"),
            None,
            &[],
            Some(json!({"slug": SLUG, "email": EMAIL, "password": PASSWORD})),
        )
        .await?;
        if status != 200 {
            bail!("the demo tenant exists but its owner cannot log in ({status}): {login}");
        }
        login["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let (_, me) = send(
        &client,
        reqwest::Method::GET,
        format!("{c}/v1/me"),
        Some(&token),
        &[],
        None,
    )
    .await?;
    let tenant_id = me["tenant_id"]
        .as_str()
        .context("no tenant in /v1/me")?
        .to_owned();

    // Its owner's email, verified with the link the platform emailed (to the SMTP sink), as
    // the owner would: nothing connects before.
    verify_email(&client, urls, &token, fresh).await?;

    // Its WhatsApp number, on the fake.
    let (status, body) = send(
        &client,
        reqwest::Method::PUT,
        format!("{c}/v1/whatsapp"),
        Some(&token),
        &[],
        Some(
            json!({"phone_number_id": PHONE_NUMBER_ID, "access_token": urls.fake_token,
            "app_secret": app_secret, "verify_token": VERIFY_TOKEN}),
        ),
    )
    .await?;
    if status != 200 {
        bail!("connecting the demo number failed ({status}): {body}");
    }

    // The bot: open every day 08:00-20:00 (so the demo books at any hour), three services and
    // two people: Ana all day with a lunch break, Luis from noon; haircuts with either,
    // colour with Ana, beards with Luis.
    let day = json!([{"open": "08:00", "close": "20:00"}]);
    let every = |ranges: serde_json::Value| {
        json!({"monday": ranges, "tuesday": ranges, "wednesday": ranges, "thursday": ranges,
            "friday": ranges, "saturday": ranges, "sunday": ranges})
    };
    let ana =
        every(json!([{"open": "08:00", "close": "14:00"}, {"open": "15:00", "close": "20:00"}]));
    let luis = every(json!([{"open": "12:00", "close": "20:00"}]));
    let (status, body) = send(
        &client,
        reqwest::Method::PUT,
        format!("{c}/v1/bot-config"),
        Some(&token),
        &[("if-match", "\"0\"")],
        Some(json!({
            "time_zone": "Europe/Madrid",
            "hours": {"monday": day, "tuesday": day, "wednesday": day, "thursday": day,
                "friday": day, "saturday": day, "sunday": day},
            "rules": {"min_notice_minutes": 30, "horizon_days": 30, "slot_step_minutes": 30,
                "beyond_horizon_days": 30},
            "payment_methods": [{"kind": "cash"},
                {"kind": "payment_link", "url": "https://pay.demo-salon.example/checkout"}],
            // A customer writing in Spanish or Portuguese is answered in it.
            "flow": {"ask_name": true, "ask_payment": true, "session_timeout_minutes": 60,
                "answer_in_customer_language": true},
            "staff": [{"id": "ana", "name": "Ana", "hours": ana},
                {"id": "luis", "name": "Luis", "hours": luis}],
            // Reminders a day and two hours before, and waitlist offers, as the templates the
            // fake Cloud API has approved (they reach a customer who has not written for more
            // than 24 hours).
            "messaging": {"reminders_before_minutes": [1440, 120],
                "reminder_template": {"name": "booking_reminder", "language": "en"},
                "follow_up_template": {"name": "booking_follow_up", "language": "en"},
                "waitlist_template": {"name": "waitlist_offer", "language": "en"}},
        })),
    )
    .await?;
    let fresh = status == 200;
    match status {
        200 => {
            let mut services = Vec::new();
            for (service, staff, weight) in [
                (
                    json!({"name": "Haircut", "price": {"minor": 2500, "currency": "EUR"}, "duration_minutes": 30}),
                    vec!["ana", "luis"],
                    55,
                ),
                (
                    json!({"name": "Colour", "price": {"minor": 7000, "currency": "EUR"}, "duration_minutes": 90, "buffer_minutes": 15, "staff": ["ana"]}),
                    vec!["ana"],
                    20,
                ),
                (
                    json!({"name": "Beard trim", "price": {"minor": 1500, "currency": "EUR"}, "duration_minutes": 20, "staff": ["luis"]}),
                    vec!["luis"],
                    25,
                ),
            ] {
                let (status, body) = send(
                    &client,
                    reqwest::Method::POST,
                    format!("{c}/v1/services"),
                    Some(&token),
                    &[],
                    Some(service.clone()),
                )
                .await?;
                if status != 201 {
                    bail!("adding a demo service failed ({status}): {body}");
                }
                services.push(crate::history::Service {
                    id: body["service_id"]
                        .as_str()
                        .and_then(|id| id.parse().ok())
                        .context("a service id")?,
                    name: service["name"].as_str().unwrap_or_default().to_owned(),
                    price_minor: service["price"]["minor"].as_i64().unwrap_or_default(),
                    currency: "EUR".into(),
                    minutes: service["duration_minutes"].as_i64().unwrap_or(30),
                    staff: staff.into_iter().map(str::to_owned).collect(),
                    weight,
                });
            }
            // A first run: the salon's last months, for analytics and the booking lists.
            if let Some(past) = past {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .connect(&past.database_url)
                    .await
                    .context("cannot reach the database to import the demo's past")?;
                let imported = crate::history::import(
                    &eventstore::EventStore::new(pool),
                    tenant_id.parse()?,
                    &services,
                    past.days,
                    chrono::Utc::now(),
                )
                .await?;
                tracing::info!(
                    imported,
                    days = past.days,
                    "the demo's past bookings imported"
                );
            }
            // The coming week, booked through the API as the desk would (the agenda decides),
            // so that the dashboard's day and its lists have something ahead; every fifth is
            // left to confirm.
            let customers = [
                ("+34611000001", "Lucía"),
                ("+34611000002", "Marco"),
                ("+34611000003", "Inés"),
                ("+34611000004", "Pablo"),
                ("+34611000005", "Carmen"),
                ("+34611000006", "Hugo"),
            ];
            let now = chrono::Utc::now();
            let mut booked = 0;
            for (i, (day, (hour, minute))) in (0..7)
                .flat_map(|day| [(9, 0), (11, 0), (15, 30), (18, 0)].map(|t| (day, t)))
                .enumerate()
            {
                let start = (now.date_naive() + chrono::Duration::days(day))
                    .and_hms_opt(hour, minute, 0)
                    .context("a time of day")?
                    .and_utc();
                if start < now + chrono::Duration::hours(2) {
                    continue;
                }
                let service = &services[i % services.len()];
                let (phone, name) = customers[i % customers.len()];
                let (status, body) = send(
                    &client,
                    reqwest::Method::POST,
                    format!("{c}/v1/bookings"),
                    Some(&token),
                    &[],
                    Some(json!({"service_id": service.id, "start": start,
                        "customer": {"phone": phone, "name": name}, "confirm": i % 5 != 4})),
                )
                .await?;
                match status {
                    201 => booked += 1,
                    // Taken or too soon: the demo's week has one booking less.
                    _ => tracing::debug!(status, %body, "a demo booking was refused"),
                }
            }
            tracing::info!(booked, "the demo's coming week booked");
        }
        412 => {} // configured by an earlier run
        _ => bail!("configuring the demo bot failed ({status}): {body}"),
    }

    // The fake plays Meta towards this platform.
    let (status, body) = send(
        &client,
        reqwest::Method::POST,
        format!("{}/_fake/config", urls.fake_whatsapp),
        None,
        &[],
        Some(
            json!({"webhook_url": format!("{c}/webhooks/whatsapp"), "app_secret": app_secret,
            "status_webhooks": true}),
        ),
    )
    .await?;
    if status != 204 {
        bail!("configuring the fake failed ({status}): {body}");
    }

    // A few customers have written (the first time): one chats with the bot, one asks for a
    // person and waits in the inbox.
    if fresh {
        for (phone, name, texts) in [
            ("34611000001", "Lucía", &["hola"][..]),
            (
                "34611000002",
                "Tom",
                &["hi", "agent", "Can I bring my dog?"][..],
            ),
        ] {
            for text in texts {
                let (status, body) = send(
                    &client,
                    reqwest::Method::POST,
                    format!("{}/_fake/inbound", urls.fake_whatsapp),
                    None,
                    &[],
                    Some(json!({"phone_number_id": PHONE_NUMBER_ID, "from": phone,
                        "name": name, "text": text})),
                )
                .await?;
                if status != 200 || body["webhook_status"] != 200 {
                    tracing::warn!(status, %body, "a demo customer's message was not taken");
                }
                // In order, as a person types.
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        }
    }

    // Billing: the trial as the query API shows it, and a checkout to subscribe from (a new
    // one each run while the trial lasts; none once subscribed).
    let (_, billing) = send(
        &client,
        reqwest::Method::GET,
        format!("{}/v1/billing", urls.query_api),
        Some(&token),
        &[],
        None,
    )
    .await?;
    let mut checkout_url = String::new();
    if billing["status"] == "trialing" {
        let (status, body) = send(
            &client,
            reqwest::Method::POST,
            format!("{c}/v1/billing/checkout"),
            Some(&token),
            &[],
            Some(json!({"plan": "growth", "cycle": "monthly"})),
        )
        .await?;
        if status != 200 {
            bail!("opening a checkout failed ({status}): {body}");
        }
        checkout_url = body["checkout_url"].as_str().unwrap_or_default().to_owned();
    }

    let env: BTreeMap<String, String> = [
        ("COMMAND_API_URL", c.clone()),
        ("QUERY_API_URL", urls.query_api.clone()),
        ("FAKE_WHATSAPP_URL", urls.fake_whatsapp.clone()),
        ("DEMO_TENANT_ID", tenant_id),
        ("DEMO_PHONE_NUMBER_ID", PHONE_NUMBER_ID.to_owned()),
        ("DEMO_APP_SECRET", app_secret),
        ("DEMO_VERIFY_TOKEN", VERIFY_TOKEN.to_owned()),
        ("DEMO_OWNER_TOKEN", token),
        ("DEMO_OWNER_EMAIL", EMAIL.to_owned()),
        ("DEMO_OWNER_PASSWORD", PASSWORD.to_owned()),
        ("FAKE_STRIPE_URL", urls.fake_stripe.clone()),
        ("STRIPE_WEBHOOK_SECRET", urls.stripe_webhook_secret.clone()),
        (
            "DEMO_BILLING_STATUS",
            billing["status"].as_str().unwrap_or("unknown").to_owned(),
        ),
        ("DEMO_CHECKOUT_URL", checkout_url),
        ("SMTP_SINK_URL", urls.smtp_sink.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if let Some(dir) = env_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text: String = env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    std::fs::write(env_file, text)?;
    Ok(env)
}
