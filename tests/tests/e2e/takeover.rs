//! A person of the business in a customer's conversation, over the real APIs, the projector's
//! sender and the fake Cloud API: taking it over quiets the bot, a reply reaches the customer
//! once (a retry is the same reply), handing back wakes the bot; after WhatsApp's 24-hour
//! window a reply goes as the follow-up template or, without one, is refused; another
//! business's staff reach nothing.

use std::time::Duration;

use chrono::Utc;
use domain::access::Role;
use domain::bot::message::Inbound as Content;
use domain::conversation::ConversationEvent;
use domain::event::encode;
use domain::values::PhoneNumber;
use e2e_tests::tenant::Tenant;
use e2e_tests::{
    CommandApp, QueryApp, eventually, projector_settings, query_api_settings,
    spawn_command_api_with_graph, spawn_projector, spawn_query_api,
};
use eventstore::{EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamAppend};
use fake_whatsapp::{Fake, Inbound, WebhookConfig};
use serde_json::{Value, json};

const NUMBER: &str = "106540352242922";
const APP_SECRET: &str = "app-secret-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(20);

pub(crate) struct World {
    pub(crate) fake: Fake,
    pub(crate) app: CommandApp,
    pub(crate) query: QueryApp,
    _projector: e2e_tests::ProjectorHandle,
    tenant_id: uuid::Uuid,
    pub(crate) owner: String,
    staff: String,
}

pub(crate) async fn world(slug: &str) -> World {
    world_tuned(slug, |_| {}).await
}

/// [`world`] with the projector's settings adjusted by `tune`.
pub(crate) async fn world_tuned(slug: &str, tune: impl FnOnce(&mut projector::Settings)) -> World {
    let fake = Fake::new(fake_whatsapp::DEFAULT_TOKEN);
    let fake_url = fake.clone().spawn().await;
    let app = spawn_command_api_with_graph(&fake_url).await;
    let owner = app.onboard(slug).await;
    let connected = app
        .client
        .put(format!("{}/v1/whatsapp", app.address))
        .bearer_auth(&owner.access_token)
        .json(
            &json!({"phone_number_id": NUMBER, "access_token": fake_whatsapp::DEFAULT_TOKEN,
            "app_secret": APP_SECRET, "verify_token": "verify-token-0123456789"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(connected.status().as_u16(), 200);
    let tenant_id: uuid::Uuid = owner.tenant_id.parse().unwrap();
    let token = owner.access_token.clone();
    Tenant { owner, app: &app }.configured().await;
    fake.configure(WebhookConfig {
        webhook_url: Some(format!("{}/webhooks/whatsapp", app.address)),
        app_secret: Some(APP_SECRET.into()),
        status_webhooks: true,
        redeliver_for_ms: None,
    });
    let mut settings = projector_settings(&app.db, &app.nats);
    settings.sender.api_base_url = fake_url;
    tune(&mut settings);
    let projector = spawn_projector(settings).await;
    let query = spawn_query_api(query_api_settings(&app.db, &app.nats)).await;
    let staff =
        e2e_tests::member_token(&app.db.superuser_url_pool().await, tenant_id, Role::Staff).await;
    World {
        fake,
        app,
        query,
        _projector: projector,
        tenant_id,
        owner: token,
        staff,
    }
}

impl World {
    pub(crate) async fn say(&self, from: &str, text: &str) {
        let (_, status) = self
            .fake
            .deliver_inbound(&Inbound {
                phone_number_id: NUMBER.into(),
                from: from.into(),
                name: Some("Ana".into()),
                text: Some(text.into()),
                button_reply: None,
                list_reply: None,
                template_reply: None,
            })
            .await
            .unwrap();
        assert_eq!(status, 200);
    }

    /// A command on the conversation with `phone` as `token`.
    async fn post(
        &self,
        token: &str,
        phone: &str,
        action: &str,
        body: Value,
        key: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut request = self
            .app
            .client
            .post(format!(
                "{}/v1/conversations/%2B{}/{action}",
                self.app.address,
                phone.trim_start_matches('+')
            ))
            .bearer_auth(token)
            .json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (
            status,
            headers,
            response.json().await.unwrap_or(Value::Null),
        )
    }

    /// The conversation as the query API shows it, once `done` holds.
    pub(crate) async fn conversation(&self, phone: &str, done: impl Fn(&Value) -> bool) -> Value {
        let path = format!("/v1/conversations/%2B{}", phone.trim_start_matches('+'));
        eventually(WAIT, || async {
            let (status, body) = self.query.get(&path, &self.owner, None).await;
            (status == 200 && done(&body)).then_some(body)
        })
        .await
        .unwrap_or_else(|| panic!("the conversation with {phone} never got there"))
    }

    /// What the customer received, as text (a template by its name).
    pub(crate) fn received(&self, phone: &str) -> Vec<String> {
        self.fake
            .messages_to(phone)
            .iter()
            .map(|m| match m.kind.as_str() {
                "text" => m.body["text"]["body"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                "template" => format!("template:{}", m.body["template"]["name"]),
                _ => m.body["interactive"]["body"]["text"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            })
            .collect()
    }
}

fn count_in(conversation: &Value) -> usize {
    conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["direction"] == "in")
        .count()
}

#[tokio::test]
async fn a_person_takes_over_replies_once_and_hands_back_and_the_bot_answers_again() {
    let w = world("takeover-salon").await;
    let ana = "34600000001";
    w.say(ana, "hi").await;
    // The bot's greeting, every part of it sent.
    let greeted = w
        .conversation(ana, |c| {
            let out: Vec<&Value> = c["messages"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["direction"] == "out")
                .collect();
            !out.is_empty() && out.iter().all(|m| m["status"] == "read")
        })
        .await;
    let bot_said = greeted["message_count"].as_u64().unwrap() as usize - 1;
    assert_eq!(w.received(ana).len(), bot_said);

    // Staff take over: the inbox shows it waiting for a person, and who has it.
    let (status, _, taken) = w.post(&w.staff, ana, "handoff", json!({}), None).await;
    assert_eq!(status, 200, "{taken}");
    let token = taken["consistency_token"].as_str().unwrap();
    let (status, waiting) = w
        .query
        .get("/v1/conversations?waiting=true", &w.owner, Some(token))
        .await;
    assert_eq!(status, 200);
    assert_eq!(waiting["items"][0]["customer_phone"], format!("+{ana}"));
    assert!(
        waiting["items"][0]["taken_over_by"]
            .as_str()
            .unwrap()
            .starts_with("user:")
    );
    let closes: chrono::DateTime<Utc> = waiting["items"][0]["window_closes_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let left = closes - Utc::now();
    assert!(
        left > chrono::Duration::hours(23) && left <= chrono::Duration::hours(24),
        "{left}"
    );

    // The customer writes: the bot stays quiet.
    w.say(ana, "do you have parking?").await;
    w.conversation(ana, |c| count_in(c) == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(w.received(ana).len(), bot_said, "the bot is quiet");

    // A reply, retried with its key: one message to the customer, shown with who sent it.
    let text = "Yes, two spaces behind the salon.";
    let (status, _, queued) = w
        .post(
            &w.staff,
            ana,
            "messages",
            json!({"text": text}),
            Some("r-1"),
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["as_template"], false);
    let (status, headers, again) = w
        .post(
            &w.staff,
            ana,
            "messages",
            json!({"text": text}),
            Some("r-1"),
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(headers["idempotent-replayed"], "true");
    assert_eq!(again["message_id"], queued["message_id"]);
    let id = queued["message_id"].as_str().unwrap().to_owned();
    let conversation = w
        .conversation(ana, |c| {
            c["messages"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["message_id"] == id.as_str() && m["status"] == "read")
        })
        .await;
    let mine = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["message_id"] == id.as_str())
        .unwrap();
    assert!(mine["sent_by"].as_str().unwrap().starts_with("user:"));
    assert_eq!(mine["content"]["body"], text);
    let received = w.received(ana);
    assert_eq!(
        received.iter().filter(|t| *t == text).count(),
        1,
        "{received:?}"
    );

    // Bad input changes nothing.
    let (status, _, problem) = w
        .post(&w.staff, ana, "messages", json!({"text": "  "}), None)
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "text", "{problem}");
    let (status, _, _) = w
        .post(&w.staff, ana, "messages", json!({"body": "x"}), None)
        .await;
    assert_eq!(status, 422);
    // Nobody by that number, or not a number.
    let (status, _, _) = w
        .post(&w.staff, "34699999999", "handoff", json!({}), None)
        .await;
    assert_eq!(status, 404);
    let (status, _, _) = w
        .post(
            &w.staff,
            "not-a-phone",
            "messages",
            json!({"text": "hi"}),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // Handed back: the bot answers the customer's next message.
    let (status, _, released) = w.post(&w.staff, ana, "release", json!({}), None).await;
    assert_eq!(status, 200, "{released}");
    let token = released["consistency_token"].as_str().unwrap();
    let (_, all) = w
        .query
        .get("/v1/conversations?waiting=true", &w.owner, Some(token))
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 0, "{all}");
    let before = w.received(ana).len();
    w.say(ana, "hi").await;
    eventually(WAIT, || async {
        (w.received(ana).len() > before).then_some(())
    })
    .await
    .expect("the bot answers again");
    // Releasing again changes nothing.
    let (status, _, again) = w.post(&w.staff, ana, "release", json!({}), None).await;
    assert_eq!(
        (status, again["consistency_token"].as_str()),
        (200, Some(""))
    );
}

#[tokio::test]
async fn after_the_window_a_reply_goes_as_the_follow_up_template_or_is_refused() {
    let w = world("window-salon").await;
    // Bruno wrote 25 hours ago (as the log has it).
    let bruno = PhoneNumber::parse("+34600000002").unwrap();
    let encoded = encode(&ConversationEvent::MessageReceived {
        wamid: "wamid.old".into(),
        from: bruno.clone(),
        profile_name: Some("Bruno".into()),
        content: Content::Text {
            body: "Can I move my appointment?".into(),
        },
        received_at: Utc::now() - chrono::Duration::hours(25),
    });
    let store = EventStore::new(w.app.db.app_pool().await);
    let stream = app::conversation::conversation_of(&store, w.tenant_id, &bruno)
        .await
        .unwrap();
    store
        .append(
            w.tenant_id,
            vec![StreamAppend {
                stream,
                expected: ExpectedVersion::NoStream,
                events: vec![NewEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: encoded.event_type.to_owned(),
                    schema_version: encoded.schema_version,
                    payload: encoded.payload,
                    metadata: EventMetadata::default(),
                }],
            }],
        )
        .await
        .unwrap();

    // No follow-up template: refused, naming the field, and nothing recorded or sent.
    let (status, _, problem) = w
        .post(
            &w.owner,
            bruno.as_str(),
            "messages",
            json!({"text": "Sure, when?"}),
            None,
        )
        .await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "text", "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("24-hour"),
        "{problem}"
    );

    // With one, the reply goes as that template with the text.
    let mut settings = e2e_tests::tenant::settings();
    settings["messaging"] =
        json!({"follow_up_template": {"name": "booking_follow_up", "language": "en"}});
    let put = w
        .app
        .client
        .put(format!("{}/v1/bot-config", w.app.address))
        .bearer_auth(&w.owner)
        .header("if-match", "\"2\"")
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "{}", put.text().await.unwrap());
    let (status, _, queued) = w
        .post(
            &w.owner,
            bruno.as_str(),
            "messages",
            json!({"text": "Sure, when?"}),
            None,
        )
        .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["as_template"], true);
    let sent = eventually(WAIT, || async {
        let got = w.fake.messages_to(bruno.as_str());
        (!got.is_empty()).then_some(got)
    })
    .await
    .expect("the template reaches the customer");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].kind, "template");
    assert_eq!(sent[0].body["template"]["name"], "booking_follow_up");
    assert!(
        sent[0].body.to_string().contains("Sure, when?"),
        "{:?}",
        sent[0].body
    );
}

#[tokio::test]
async fn another_business_cannot_take_over_or_write_to_a_customer_it_does_not_have() {
    let w = world("mine-salon").await;
    let ana = "34600000003";
    w.say(ana, "hi").await;
    w.conversation(ana, |c| c["message_count"].as_i64() >= Some(2))
        .await;
    let other = w.app.onboard("theirs-salon").await;
    for (action, body) in [
        ("handoff", json!({})),
        ("messages", json!({"text": "Hello from another salon"})),
        ("release", json!({})),
    ] {
        let (status, _, _) = w.post(&other.access_token, ana, action, body, None).await;
        assert_eq!(status, 404, "{action} from another business");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        w.received(ana).iter().all(|t| !t.contains("another salon")),
        "nothing reached the customer"
    );
    // A viewer of the business itself may read, not write.
    let viewer = e2e_tests::member_token(
        &w.app.db.superuser_url_pool().await,
        w.tenant_id,
        Role::Viewer,
    )
    .await;
    let (status, _, _) = w.post(&viewer, ana, "handoff", json!({}), None).await;
    assert_eq!(status, 403);
}
