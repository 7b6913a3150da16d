//! Reminders and templates over the binaries' code paths, against the fake Cloud API: a
//! reminder goes as the business's template at the right local time across a change of clocks
//! and its Cancel cancels the booking; an unapproved template is refused and recorded; a reply
//! refused for the 24-hour window follows up as a template.

use std::time::Duration;

use chrono::{DateTime, Utc};
use e2e_tests::tenant::{Tenant, haircut};
use e2e_tests::{
    CommandApp, Onboarded, ProjectorHandle, conversation_clock, eventually, projector_settings,
    query_api_settings, spawn_command_api_with_graph, spawn_projector, spawn_query_api,
};
use fake_whatsapp::{Choice, Fake, Fault, Inbound, Template, WebhookConfig};
use serde_json::{Value, json};

const NUMBER: &str = "106540352242922";
const APP_SECRET: &str = "app-secret-0123456789abcdef";
const CUSTOMER: &str = "34600700001";
const WAIT: Duration = Duration::from_secs(20);

struct World {
    fake: Fake,
    app: CommandApp,
    owner: Onboarded,
    service_id: String,
    _projector: ProjectorHandle,
}

/// A salon in Madrid, open every day, speaking Spanish, with reminders a day and two hours
/// before as its `booking_reminder` template and replies outside the window followed up as
/// `booking_follow_up`; the projector's sender talks to the fake.
async fn world() -> World {
    let fake = Fake::new(fake_whatsapp::DEFAULT_TOKEN);
    let fake_url = fake.clone().spawn().await;
    let app = spawn_command_api_with_graph(&fake_url).await;
    let owner = app.onboard("reminder-salon").await;
    let tenant = Tenant {
        app: &app,
        owner: owner.clone(),
    };
    let (status, _, body) = tenant
        .send(
            reqwest::Method::PUT,
            "/v1/whatsapp",
            &[],
            Some(
                json!({"phone_number_id": NUMBER, "access_token": fake_whatsapp::DEFAULT_TOKEN,
                "app_secret": APP_SECRET, "verify_token": "verify-token-0123456789"}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let day = json!([{"open": "08:00", "close": "20:00"}]);
    let (status, _, body) = tenant
        .send(
            reqwest::Method::PUT,
            "/v1/bot-config",
            &[("if-match", "\"0\"")],
            Some(json!({
                "time_zone": "Europe/Madrid",
                "hours": {"monday": day, "tuesday": day, "wednesday": day, "thursday": day,
                    "friday": day, "saturday": day, "sunday": day},
                "rules": {"min_notice_minutes": 60, "horizon_days": 365, "slot_step_minutes": 15},
                "payment_methods": [{"kind": "cash"}],
                "flow": {"ask_name": true, "ask_payment": true, "session_timeout_minutes": 60,
                    "language": "es"},
                "messaging": {"reminders_before_minutes": [1440, 120],
                    "reminder_template": {"name": "booking_reminder", "language": "es"},
                    "follow_up_template": {"name": "booking_follow_up", "language": "es"}},
            })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = tenant
        .send(reqwest::Method::POST, "/v1/services", &[], Some(haircut()))
        .await;
    assert_eq!(status, 201, "{body}");
    let service_id = body["service_id"].as_str().unwrap().to_owned();
    fake.configure(WebhookConfig {
        webhook_url: Some(format!("{}/webhooks/whatsapp", app.address)),
        app_secret: Some(APP_SECRET.into()),
        status_webhooks: false,
        redeliver_for_ms: None,
    });
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.sender.api_base_url = fake_url;
    let projector = spawn_projector(settings).await;
    World {
        fake,
        app,
        owner,
        service_id,
        _projector: projector,
    }
}

impl World {
    async fn book(&self, start: &str) -> String {
        let tenant = Tenant {
            app: &self.app,
            owner: self.owner.clone(),
        };
        let (status, body) = tenant
            .book(&self.service_id, start, &format!("+{CUSTOMER}"), None)
            .await;
        assert_eq!(status, 201, "{body}");
        body["booking_id"].as_str().unwrap().to_owned()
    }

    /// When the read model has the booking's next reminder due.
    async fn next_reminder(&self, booking_id: &str) -> Option<DateTime<Utc>> {
        let pool = self.app.db.superuser_url_pool().await;
        sqlx::query_scalar::<_, Option<DateTime<Utc>>>(
            "select next_reminder_at from rm_bookings where booking_id = $1::uuid",
        )
        .bind(booking_id)
        .fetch_optional(&pool)
        .await
        .unwrap()
        .flatten()
    }

    /// The messages the fake accepted for the customer, once there are at least `n`.
    async fn received(&self, n: usize) -> Vec<Value> {
        eventually(WAIT, || async {
            let all: Vec<Value> = self
                .fake
                .messages_to(CUSTOMER)
                .into_iter()
                .map(|m| m.body)
                .collect();
            (all.len() >= n).then_some(all)
        })
        .await
        .unwrap_or_else(|| panic!("{n} messages for the customer"))
    }

    /// The customer taps a template's quick reply; the platform's status.
    async fn tap_template(&self, payload: String, title: &str) -> u16 {
        let (_, status) = self
            .fake
            .deliver_inbound(&Inbound {
                phone_number_id: NUMBER.into(),
                from: CUSTOMER.into(),
                name: Some("Ana".into()),
                text: None,
                button_reply: None,
                list_reply: None,
                template_reply: Some(Choice {
                    id: payload,
                    title: title.into(),
                }),
            })
            .await
            .unwrap();
        status
    }

    async fn events(&self, event_type: &str) -> Vec<Value> {
        e2e_tests::wa::events(&self.app, event_type).await
    }
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// The payload of a template's quick reply (`index` in the template's order).
fn quick_reply(template: &Value, index: &str) -> String {
    template["template"]["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "button" && c["index"] == index)
        .expect("the quick reply")["parameters"][0]["payload"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn parameters(template: &Value) -> Vec<String> {
    template["template"]["components"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] == "body")
        .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
        .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reminder_goes_as_a_template_at_the_local_time_a_day_before_across_a_change_of_clocks_and_its_cancel_cancels()
 {
    let w = world().await;
    // Madrid springs forward on Sunday 28 March 2027. A Sunday 10:00 appointment (08:00 UTC)
    // is reminded on Saturday at 10:00 local time, 09:00 UTC: 23 hours before, not 24.
    let booking_id = w.book("2027-03-28T08:00:00Z").await;
    let next = eventually(WAIT, || w.next_reminder(&booking_id))
        .await
        .expect("the reminders are projected");
    assert_eq!(next, utc("2027-03-27T09:00:00Z"));

    let clock = conversation_clock(&w.app.db);
    let reminded = |at: &'static str| {
        let clock = &clock;
        async move { clock.run_once(utc(at)).await.unwrap().reminded }
    };
    assert_eq!(reminded("2027-03-27T08:59:59Z").await, 0, "not before");
    assert_eq!(reminded("2027-03-27T09:00:00Z").await, 1);
    assert_eq!(reminded("2027-03-27T09:00:30Z").await, 0, "once");

    let sent = w.received(1).await;
    let reminder = &sent[0];
    assert_eq!(reminder["type"], "template", "{reminder}");
    assert_eq!(reminder["template"]["name"], "booking_reminder");
    assert_eq!(reminder["template"]["language"]["code"], "es");
    assert_eq!(
        parameters(reminder),
        ["Ana", "Haircut", "dom 28 mar", "10:00"],
        "in the business's language and time zone"
    );
    let cancel = quick_reply(reminder, "2");
    assert_eq!(w.events("ReminderSent").await.len(), 1);

    // The customer taps Cancel on the template: the booking is cancelled and they are told.
    assert_eq!(w.tap_template(cancel, "Cancelar").await, 200);
    let cancelled = w.events("AppointmentCancelled").await;
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["by"], "customer");
    let answer = w.received(2).await;
    let text = answer[1]["text"]["body"].as_str().unwrap_or_default();
    assert!(text.contains("cancelada"), "{text}");
    // The two-hour reminder of a cancelled booking never goes.
    eventually(WAIT, || async {
        w.next_reminder(&booking_id).await.is_none().then_some(())
    })
    .await
    .expect("no reminder left to find");
    assert_eq!(reminded("2027-03-28T06:00:00Z").await, 0);
    assert_eq!(w.events("ReminderSent").await.len(), 1);
}

#[tokio::test]
async fn an_unapproved_template_is_refused_and_recorded_and_a_reply_outside_the_window_follows_up_as_a_template()
 {
    let w = world().await;
    w.fake.set_template(Template {
        name: "booking_reminder".into(),
        language: "es".into(),
        body_parameters: 4,
        quick_replies: 3,
        status: "PENDING".into(),
    });
    let start = (Utc::now() + chrono::Duration::days(3))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    let booking_id = w.book(&start.to_rfc3339()).await;
    let next = eventually(WAIT, || w.next_reminder(&booking_id))
        .await
        .expect("the reminders are projected");
    let clock = conversation_clock(&w.app.db);
    assert_eq!(clock.run_once(next).await.unwrap().reminded, 1);
    let failed = eventually(WAIT, || async {
        let failed = w.events("OutboundMessageFailed").await;
        (!failed.is_empty()).then_some(failed)
    })
    .await
    .expect("the refusal is recorded");
    assert_eq!(failed[0]["code"], 132001, "{failed:?}");
    assert!(w.fake.messages_to(CUSTOMER).is_empty(), "nothing went out");

    // Meta refuses the answer to the customer's message for the 24-hour window: it goes again
    // as the follow-up template, with the answer's text.
    w.fake.push_fault(Fault {
        code: Some(131047),
        to: Some(CUSTOMER.into()),
        ..Fault::default()
    });
    w.fake
        .deliver_inbound(&Inbound {
            phone_number_id: NUMBER.into(),
            from: CUSTOMER.into(),
            name: Some("Ana".into()),
            text: Some("hola".into()),
            button_reply: None,
            list_reply: None,
            template_reply: None,
        })
        .await
        .unwrap();
    let follow_up = eventually(WAIT, || async {
        w.fake
            .messages_to(CUSTOMER)
            .into_iter()
            .map(|m| m.body)
            .find(|m| m["type"] == "template")
    })
    .await
    .expect("a follow-up template");
    assert_eq!(follow_up["template"]["name"], "booking_follow_up");
    let text = parameters(&follow_up).join("");
    assert!(
        text.contains("Bienvenido"),
        "the refused answer, in Spanish: {text}"
    );
    let failed = w.events("OutboundMessageFailed").await;
    assert!(failed.iter().any(|f| f["code"] == 131047), "{failed:?}");
    let follow_ups: Vec<Value> = w
        .events("BotReplied")
        .await
        .into_iter()
        .filter(|e| {
            e["reply_id"]
                .as_str()
                .is_some_and(|id| id.ends_with("/follow-up"))
        })
        .collect();
    assert_eq!(follow_ups.len(), 1, "one follow-up for the one refusal");
}

#[tokio::test]
async fn a_reminders_confirm_records_the_attendance_which_the_query_api_shows_with_the_next_reminder()
 {
    let w = world().await;
    let query = spawn_query_api(query_api_settings(&w.app.db, &w.app.nats)).await;
    let start = (Utc::now() + chrono::Duration::days(3))
        .date_naive()
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_utc();
    let booking_id = w.book(&start.to_rfc3339()).await;
    let first = eventually(WAIT, || w.next_reminder(&booking_id))
        .await
        .expect("the reminders are projected");
    let clock = conversation_clock(&w.app.db);
    assert_eq!(clock.run_once(first).await.unwrap().reminded, 1);
    let reminder = w.received(1).await.remove(0);
    let confirm = quick_reply(&reminder, "0");
    w.tap_template(confirm, "Confirmar").await;
    assert_eq!(w.events("AttendanceConfirmed").await.len(), 1);
    let path = format!("/v1/bookings/{booking_id}");
    let booking = eventually(WAIT, || async {
        let (status, body) = query.get(&path, &w.owner.access_token, None).await;
        assert_eq!(status, 200, "{body}");
        (!body["attendance_confirmed_at"].is_null()).then_some(body)
    })
    .await
    .expect("the attendance reaches the read model");
    let next: DateTime<Utc> = booking["next_reminder_at"]
        .as_str()
        .expect("the two-hour reminder is still due")
        .parse()
        .unwrap();
    assert_eq!(next, start - chrono::Duration::hours(2));
    let answer = w.received(2).await;
    let text = answer[1]["text"]["body"].as_str().unwrap_or_default();
    assert!(text.contains("¡Gracias!"), "{text}");
}
