//! Talking to the command API as Meta does: a tenant with a connected number, signed
//! webhook notifications in Meta's shapes, and what the bot answered (its `BotReplied`
//! events).

use serde_json::{Value, json};

use crate::{CommandApp, FAKE_NUMBER_ID, FAKE_TOKEN, FakeGraph, Onboarded};

pub const APP_SECRET: &str = "app-secret-0123456789abcdef";
pub const VERIFY_TOKEN: &str = "verify-token-0123456789";

pub struct Setup {
    pub app: CommandApp,
    pub owner: Onboarded,
    pub _graph: FakeGraph,
}

pub async fn connect(
    app: &CommandApp,
    owner: &Onboarded,
    token: &str,
    number: &str,
) -> (u16, Value) {
    let response = app
        .client
        .put(format!("{}/v1/whatsapp", app.address))
        .bearer_auth(&owner.access_token)
        .json(&json!({"phone_number_id": number, "access_token": token, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A tenant with its number connected, opening hours every day and one service.
pub async fn setup() -> Setup {
    setup_tuned(|_| {}).await
}

/// [`setup`] with the command API's settings adjusted by `tune`.
pub async fn setup_tuned(tune: impl FnOnce(&mut command_api::Settings)) -> Setup {
    let graph = FakeGraph::start().await;
    let app = crate::spawn_command_api_tuned(&graph.base_url, crate::REDIS_URL, tune).await;
    let owner = app.onboard("demo-salon").await;
    assert_eq!(
        connect(&app, &owner, FAKE_TOKEN, FAKE_NUMBER_ID).await.0,
        200
    );
    let day = json!([{"open": "08:00", "close": "20:00"}]);
    let settings = json!({
        "time_zone": "UTC",
        "hours": {"monday": day, "tuesday": day, "wednesday": day, "thursday": day, "friday": day, "saturday": day, "sunday": day},
        "payment_methods": [{"kind": "cash"}],
    });
    let put = app
        .client
        .put(format!("{}/v1/bot-config", app.address))
        .bearer_auth(&owner.access_token)
        .header("if-match", "\"0\"")
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let service = json!({"name": "Haircut", "price": {"minor": 2500, "currency": "EUR"}, "duration_minutes": 45});
    let add = app
        .client
        .post(format!("{}/v1/services", app.address))
        .bearer_auth(&owner.access_token)
        .json(&service)
        .send()
        .await
        .unwrap();
    assert_eq!(add.status().as_u16(), 201);
    Setup {
        app,
        owner,
        _graph: graph,
    }
}

/// Replaces the bot configuration `setup` made (its version is 2: the settings, then the
/// service) with `settings`.
pub async fn reconfigure(s: &Setup, settings: &Value) {
    let put = s
        .app
        .client
        .put(format!("{}/v1/bot-config", s.app.address))
        .bearer_auth(&s.owner.access_token)
        .header("if-match", "\"2\"")
        .json(settings)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200, "{}", put.text().await.unwrap());
}

pub fn text(from: &str, wamid: &str, body: &str) -> Value {
    json!({"from": from, "id": wamid, "timestamp": "1739321024", "type": "text", "text": {"body": body}})
}

pub fn list_reply(from: &str, wamid: &str, id: &str, title: &str) -> Value {
    json!({"from": from, "id": wamid, "timestamp": "1739321024", "type": "interactive",
           "interactive": {"type": "list_reply", "list_reply": {"id": id, "title": title}}})
}

pub fn button_reply(from: &str, wamid: &str, id: &str, title: &str) -> Value {
    json!({"from": from, "id": wamid, "timestamp": "1739321024", "type": "interactive",
           "interactive": {"type": "button_reply", "button_reply": {"id": id, "title": title}}})
}

pub fn notification(messages: Vec<Value>) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": FAKE_NUMBER_ID},
        "contacts": [{"profile": {"name": "Sheena"}, "wa_id": "16505551234"}],
        "messages": messages}}]}]})
}

pub async fn post_signed(app: &CommandApp, body: &Value, secret: &str) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    app.client
        .post(format!("{}/webhooks/whatsapp", app.address))
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            whatsapp::signature::sign(secret.as_bytes(), &bytes),
        )
        .body(bytes)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The payloads of every `event_type` in the log, in order, as its readers get them (a
/// customer's personal values revealed).
pub async fn events(app: &CommandApp, event_type: &str) -> Vec<Value> {
    revealed(
        app,
        "select tenant_id, event_id, payload from events
          where event_type = $1 order by global_position",
        event_type,
    )
    .await
}

/// The choices of the bot's last interactive reply to `phone`.
pub async fn last_choices(app: &CommandApp, phone: &str) -> Vec<(String, String)> {
    let replies = events(app, "BotReplied").await;
    let last = replies
        .iter()
        .rev()
        .find(|r| r["to"] == phone && r["reply"]["kind"] != "text")
        .expect("an interactive reply");
    let choices = last["reply"]
        .get("rows")
        .or_else(|| last["reply"].get("buttons"))
        .unwrap();
    choices
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["title"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

pub async fn last_text(app: &CommandApp, phone: &str) -> String {
    let replies = events(app, "BotReplied").await;
    let last = replies
        .iter()
        .rev()
        .find(|r| r["to"] == phone)
        .expect("a reply");
    last["reply"]["body"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// A notification of `messages` from `from`, whose WhatsApp profile is named `name`.
pub fn notification_from(from: &str, name: &str, messages: Vec<Value>) -> Value {
    json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550783881", "phone_number_id": FAKE_NUMBER_ID},
        "contacts": [{"profile": {"name": name}, "wa_id": from}],
        "messages": messages}}]}]})
}

/// Posts `body` signed until the command API takes it (200), as Meta redelivers anything
/// else; how many posts it took.
pub async fn deliver(app: &CommandApp, body: &Value) -> usize {
    for attempt in 1..=50 {
        if post_signed(app, body, APP_SECRET).await == 200 {
            return attempt;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20 * attempt as u64)).await;
    }
    panic!("the webhook never took {body}");
}

/// The bot's replies to the message `wamid`, in order, revealed as every reader of the log
/// reveals them (the log holds them sealed with the customer's key).
pub async fn replies_to(app: &CommandApp, wamid: &str) -> Vec<Value> {
    revealed(
        app,
        "select tenant_id, event_id, payload from events
          where event_type = 'BotReplied' and payload->>'reply_id' like $1
          order by global_position",
        &format!("{wamid}/%"),
    )
    .await
    .into_iter()
    .map(|p| p["reply"].clone())
    .collect()
}

/// The payloads `query` (selecting tenant_id, event_id, payload; bound to `arg`) finds,
/// revealed as every reader of the log reveals them.
pub async fn revealed(app: &CommandApp, query: &str, arg: &str) -> Vec<Value> {
    let pool = app.db.operator_pool().await;
    let mut events: Vec<Row> = sqlx::query_as::<_, (uuid::Uuid, uuid::Uuid, Value)>(query)
        .bind(arg)
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .map(|(tenant, id, payload)| Row(tenant, id, payload))
        .collect();
    eventstore::personal::reveal(&pool, &mut events)
        .await
        .unwrap();
    events.into_iter().map(|Row(_, _, p)| p).collect()
}

/// A stored event's tenant, id and payload.
struct Row(uuid::Uuid, uuid::Uuid, Value);

impl eventstore::personal::Sealed for Row {
    fn tenant_id(&self) -> uuid::Uuid {
        self.0
    }
    fn event_id(&self) -> uuid::Uuid {
        self.1
    }
    fn payload_mut(&mut self) -> &mut Value {
        &mut self.2
    }
    fn payload(&self) -> &Value {
        &self.2
    }
}

/// The ids and titles a reply offers (buttons or list rows).
pub fn offered(reply: &Value) -> Vec<(String, String)> {
    reply
        .get("rows")
        .or_else(|| reply.get("buttons"))
        .and_then(Value::as_array)
        .map(|choices| {
            choices
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap_or_default().to_owned(),
                        c["title"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
