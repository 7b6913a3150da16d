//! A faithful local fake of Meta's WhatsApp Cloud API, for the demo and the tests.
//!
//! Graph endpoints the platform uses, with Meta's validation, answers and error envelopes:
//! - `GET /{version}/{phone_number_id}`: any id of 12 digits or more exists; the token must be
//!   the fake's (else 401, code 190).
//! - `POST /{version}/{phone_number_id}/messages`: text, reply buttons and lists, checked
//!   against Meta's limits (else 400, code 100), and templates, checked against the account's
//!   templates like Meta (unknown or unapproved name or language 132001, a parameter count that
//!   does not match 132000, a paused template 132015, a disabled one 132016, a parameter with
//!   line breaks, tabs or four spaces 132018); answers a fresh `wamid`.
//!
//! Its own controls, under `/_fake/`:
//! - `GET /_fake/messages?to=PHONE`: what it received, oldest first.
//! - `POST /_fake/faults`: queue failures (`{"faults":[{"code":130429,"status":429}, {"latency_ms":
//!   3000}, ...]}`), each used by one send; `DELETE /_fake/faults` clears them.
//! - `POST /_fake/config`: where the platform's webhook is and the app secret to sign with,
//!   whether to follow each send with sent/delivered/read status webhooks, and for how long a
//!   webhook the platform does not answer 200 is redelivered (`redeliver_for_ms`; a few
//!   attempts by default).
//! - `POST /_fake/inbound`: plays a customer: posts a signed inbound message (text, button or
//!   list reply, or a template's quick reply) to the webhook, as Meta does, and answers the
//!   platform's status.
//! - `GET /_fake/templates`, `POST /_fake/templates`: the account's message templates, and one
//!   added or changed (`{"name":"booking_reminder","language":"en","body_parameters":4,
//!   "quick_replies":3,"status":"APPROVED"}`). It starts with the demo's: `booking_reminder`
//!   (4 parameters, 3 quick replies), `booking_follow_up` (1 parameter) and `waitlist_offer`
//!   (3 parameters, 2 quick replies), approved in `en`, `es`, `pt_BR` and `pt_PT`.
//!
//! State lives in memory; restart to reset.

#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub const DEFAULT_TOKEN: &str = "EAAG-good-token";

/// One injected failure (or delay) for the next send.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct Fault {
    /// Meta's error code (130429, 131056, 131047, 190, …); absent for a pure delay.
    #[serde(default)]
    pub code: Option<i64>,
    /// The HTTP status to answer with (400 by default; 429 suits rate limits, 500 a crash).
    #[serde(default)]
    pub status: Option<u16>,
    /// Waits this long before answering (a timeout, when longer than the client's).
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// Only for sends to this number (digits); any send if absent.
    #[serde(default)]
    pub to: Option<String>,
}

/// A message as the fake received it.
#[derive(Debug, Clone, Serialize)]
pub struct Received {
    pub wamid: String,
    pub phone_number_id: String,
    pub to: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub body: Value,
    pub received_at: String,
    /// The request's W3C `traceparent`, when the sender was traced (Meta ignores it; tests
    /// follow one message's trace to here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct WebhookConfig {
    /// The platform's `POST /webhooks/whatsapp`.
    pub webhook_url: Option<String>,
    pub app_secret: Option<String>,
    /// Follow every accepted send with sent, delivered and read status webhooks.
    #[serde(default)]
    pub status_webhooks: bool,
    /// How long a webhook not answered 200 is redelivered, in milliseconds. Meta keeps trying
    /// for up to seven days; by default the fake gives up after a few seconds (eight attempts
    /// for a message, five for a status), which keeps a test of a refusal short.
    #[serde(default)]
    pub redeliver_for_ms: Option<u64>,
}

impl WebhookConfig {
    /// Whether a delivery refused (or not answered) `attempt` times, the first at `started`,
    /// is tried again; and after how long.
    fn redeliver(
        &self,
        started: std::time::Instant,
        attempt: u64,
        default_attempts: u64,
    ) -> Option<Duration> {
        let wait = Duration::from_millis((100 * attempt).min(1_000));
        let again = match self.redeliver_for_ms {
            Some(ms) => started.elapsed() + wait < Duration::from_millis(ms),
            None => attempt < default_attempts,
        };
        again.then_some(wait)
    }
}

/// A message template of the account, as WhatsApp Manager holds it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Template {
    pub name: String,
    pub language: String,
    /// How many `{{n}}` its body has.
    pub body_parameters: usize,
    /// How many quick-reply buttons it has.
    #[serde(default)]
    pub quick_replies: usize,
    /// APPROVED, PENDING, REJECTED, PAUSED or DISABLED.
    #[serde(default = "approved")]
    pub status: String,
}

fn approved() -> String {
    "APPROVED".into()
}

/// The templates the demo's settings name, approved in each language the bot speaks.
fn demo_templates() -> Vec<Template> {
    ["en", "es", "pt_BR", "pt_PT"]
        .into_iter()
        .flat_map(|language| {
            [
                Template {
                    name: "booking_reminder".into(),
                    language: language.into(),
                    body_parameters: 4,
                    quick_replies: 3,
                    status: approved(),
                },
                Template {
                    name: "booking_follow_up".into(),
                    language: language.into(),
                    body_parameters: 1,
                    quick_replies: 0,
                    status: approved(),
                },
                Template {
                    name: "waitlist_offer".into(),
                    language: language.into(),
                    body_parameters: 3,
                    quick_replies: 2,
                    status: approved(),
                },
            ]
        })
        .collect()
}

#[derive(Default)]
struct Inner {
    messages: Vec<Received>,
    templates: Vec<Template>,
    faults: VecDeque<Fault>,
    config: WebhookConfig,
    /// Send attempts, failed ones included (tests check retries).
    attempts: HashMap<String, u64>,
}

#[derive(Clone)]
pub struct Fake {
    token: String,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
}

impl Fake {
    pub fn new(token: &str) -> Self {
        let inner = Inner {
            templates: demo_templates(),
            ..Inner::default()
        };
        Self {
            token: token.to_owned(),
            inner: Arc::new(Mutex::new(inner)),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("an HTTP client"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What was received for `to` (digits, with or without `+`), oldest first.
    pub fn messages_to(&self, to: &str) -> Vec<Received> {
        let to = to.trim_start_matches('+');
        self.lock()
            .messages
            .iter()
            .filter(|m| m.to == to)
            .cloned()
            .collect()
    }

    pub fn all_messages(&self) -> Vec<Received> {
        self.lock().messages.clone()
    }

    pub fn push_fault(&self, fault: Fault) {
        self.lock().faults.push_back(fault);
    }

    /// Adds a template, or changes the one of that name and language.
    pub fn set_template(&self, template: Template) {
        let mut inner = self.lock();
        inner
            .templates
            .retain(|t| !(t.name == template.name && t.language == template.language));
        inner.templates.push(template);
    }

    pub fn configure(&self, config: WebhookConfig) {
        self.lock().config = config;
    }

    /// Send attempts to `to`, including refused ones.
    pub fn attempts_to(&self, to: &str) -> u64 {
        self.lock()
            .attempts
            .get(to.trim_start_matches('+'))
            .copied()
            .unwrap_or(0)
    }

    /// Serves on an ephemeral loopback port; returns the base URL.
    pub async fn spawn(self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router(self)).await;
        });
        url
    }
}

pub fn router(fake: Fake) -> Router {
    Router::new()
        .route("/{version}/{id}", get(phone_number))
        .route("/{version}/{id}/messages", post(send))
        .route("/_fake/messages", get(list_messages))
        .route("/_fake/faults", post(add_faults).delete(clear_faults))
        .route("/_fake/config", post(set_config))
        .route("/_fake/inbound", post(inbound))
        .route("/_fake/templates", get(list_templates).post(add_template))
        .with_state(fake)
}

fn meta_error(status: u16, code: i64, message: &str) -> Response {
    let kind = if code == 190 {
        "OAuthException"
    } else {
        "GraphMethodException"
    };
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({"error": {
            "message": message,
            "type": kind,
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": message},
            "fbtrace_id": format!("F{}", rand::random::<u32>()),
        }})),
    )
        .into_response()
}

fn message_for(code: i64) -> &'static str {
    match code {
        130429 => "(#130429) Rate limit hit",
        131056 => "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        131047 => {
            "(#131047) Re-engagement message: more than 24 hours have passed since the recipient last replied"
        }
        131026 => "(#131026) Message undeliverable",
        190 => "Error validating access token: Session has expired",
        100 => "(#100) Invalid parameter",
        132000 => "(#132000) Number of parameters does not match the expected number of params",
        132001 => "(#132001) Template name does not exist in the translation",
        132015 => "(#132015) Template is Paused",
        132016 => "(#132016) Template is Disabled",
        132018 => "(#132018) There was an issue with the parameters in your template",
        _ => "An unexpected error has occurred. Please retry your request later.",
    }
}

fn authorized(fake: &Fake, headers: &HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == format!("Bearer {}", fake.token))
}

fn known_number(id: &str) -> bool {
    id.len() >= 12 && id.bytes().all(|b| b.is_ascii_digit())
}

async fn phone_number(
    State(fake): State<Fake>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    if !authorized(&fake, &headers) {
        return meta_error(401, 190, message_for(190));
    }
    if !known_number(&id) {
        return meta_error(
            400,
            100,
            &format!("Unsupported get request. Object with ID '{id}' does not exist"),
        );
    }
    Json(json!({
        "id": id,
        "display_phone_number": "+1 555-078-3881",
        "verified_name": "Demo Salon",
        "quality_rating": "GREEN",
    }))
    .into_response()
}

/// Meta's checks on a send, with the parameter at fault.
fn validate(body: &Value) -> Result<(String, String), String> {
    let str_of = |v: &Value| v.as_str().map(str::to_owned);
    if body["messaging_product"] != "whatsapp" {
        return Err("messaging_product must be whatsapp".into());
    }
    let to = str_of(&body["to"]).ok_or("to is required")?;
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Err("to must be a phone number in digits".into());
    }
    let kind = str_of(&body["type"]).unwrap_or_else(|| "text".into());
    let len = |v: &Value| v.as_str().map(|s| s.chars().count()).unwrap_or(0);
    match kind.as_str() {
        "text" => {
            let n = len(&body["text"]["body"]);
            if n == 0 || n > 4096 {
                return Err("text.body must be 1 to 4096 characters".into());
            }
        }
        "interactive" => {
            let interactive = &body["interactive"];
            match interactive["type"].as_str() {
                Some("button") => {
                    let n = len(&interactive["body"]["text"]);
                    if n == 0 || n > 1024 {
                        return Err("interactive.body.text must be 1 to 1024 characters".into());
                    }
                    let buttons = interactive["action"]["buttons"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    if buttons.is_empty() || buttons.len() > 3 {
                        return Err("interactive.action.buttons must hold 1 to 3 buttons".into());
                    }
                    for b in &buttons {
                        let t = len(&b["reply"]["title"]);
                        if t == 0 || t > 20 || len(&b["reply"]["id"]) > 256 {
                            return Err("a button title is 1 to 20 characters".into());
                        }
                    }
                }
                Some("list") => {
                    let n = len(&interactive["body"]["text"]);
                    if n == 0 || n > 4096 {
                        return Err("interactive.body.text must be 1 to 4096 characters".into());
                    }
                    let button = len(&interactive["action"]["button"]);
                    if button == 0 || button > 20 {
                        return Err("interactive.action.button must be 1 to 20 characters".into());
                    }
                    let sections = interactive["action"]["sections"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let rows: Vec<Value> = sections
                        .iter()
                        .flat_map(|s| s["rows"].as_array().cloned().unwrap_or_default())
                        .collect();
                    if sections.is_empty()
                        || sections.len() > 10
                        || rows.is_empty()
                        || rows.len() > 10
                    {
                        return Err("a list holds 1 to 10 rows".into());
                    }
                    for r in &rows {
                        let t = len(&r["title"]);
                        if t == 0 || t > 24 || len(&r["description"]) > 72 || len(&r["id"]) > 200 {
                            return Err(
                                "a row title is 1 to 24 characters, its description up to 72"
                                    .into(),
                            );
                        }
                    }
                }
                _ => return Err("interactive.type must be button or list".into()),
            }
        }
        "template" => {
            if str_of(&body["template"]["name"]).is_none() {
                return Err("template.name is required".into());
            }
        }
        other => return Err(format!("type {other} is not supported")),
    }
    Ok((to, kind))
}

/// Meta's checks of a template send against the account's templates: the HTTP status and
/// error code of a refusal.
fn check_template(templates: &[Template], sent: &Value) -> Result<(), (u16, i64)> {
    let name = sent["name"].as_str().unwrap_or_default();
    let language = sent["language"]["code"].as_str().unwrap_or_default();
    let template = templates
        .iter()
        .find(|t| t.name == name && t.language == language)
        .ok_or((404, 132001))?;
    match template.status.as_str() {
        "APPROVED" => {}
        "PAUSED" => return Err((400, 132015)),
        "DISABLED" => return Err((400, 132016)),
        _ => return Err((404, 132001)),
    }
    let components = sent["components"].as_array().cloned().unwrap_or_default();
    let of = |kind: &str| {
        components
            .iter()
            .filter(|c| c["type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let body: Vec<Value> = of("body")
        .iter()
        .flat_map(|c| c["parameters"].as_array().cloned().unwrap_or_default())
        .collect();
    if body.len() != template.body_parameters {
        return Err((400, 132000));
    }
    for parameter in &body {
        let text = parameter["text"].as_str().ok_or((400, 132000))?;
        if text.is_empty() || text.contains(['\n', '\t']) || text.contains("    ") {
            return Err((400, 132018));
        }
    }
    for button in of("button") {
        let index = button["index"]
            .as_str()
            .and_then(|i| i.parse::<usize>().ok())
            .ok_or((400, 100))?;
        let payload = button["parameters"][0]["payload"].as_str();
        if button["sub_type"] != "quick_reply"
            || index >= template.quick_replies
            || payload.is_none()
        {
            return Err((400, 132000));
        }
    }
    Ok(())
}

async fn list_templates(State(fake): State<Fake>) -> Json<Vec<Template>> {
    Json(fake.lock().templates.clone())
}

async fn add_template(State(fake): State<Fake>, Json(template): Json<Template>) -> StatusCode {
    fake.set_template(template);
    StatusCode::NO_CONTENT
}

async fn send(
    State(fake): State<Fake>,
    Path((_version, id)): Path<(String, String)>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !authorized(&fake, &headers) {
        return meta_error(401, 190, message_for(190));
    }
    if !known_number(&id) {
        return meta_error(
            400,
            100,
            "(#100) Invalid parameter: unknown phone number id",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return meta_error(400, 100, "(#100) Invalid parameter: the body is not JSON");
    };
    let (to, kind) = match validate(&body) {
        Ok(v) => v,
        Err(why) => return meta_error(400, 100, &format!("(#100) Invalid parameter: {why}")),
    };
    if kind == "template" {
        let templates = fake.lock().templates.clone();
        if let Err((status, code)) = check_template(&templates, &body["template"]) {
            return meta_error(status, code, message_for(code));
        }
    }
    let fault = {
        let mut inner = fake.lock();
        *inner.attempts.entry(to.clone()).or_default() += 1;
        let position = inner.faults.iter().position(|f| {
            f.to.as_deref()
                .is_none_or(|t| t.trim_start_matches('+') == to)
        });
        position.and_then(|i| inner.faults.remove(i))
    };
    if let Some(fault) = fault {
        if let Some(ms) = fault.latency_ms {
            tokio::time::sleep(Duration::from_millis(ms)).await;
        }
        if let Some(code) = fault.code {
            let status = fault.status.unwrap_or(match code {
                190 => 401,
                130429 | 131056 => 429,
                _ => 400,
            });
            if status >= 500 {
                return (
                    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    "upstream failure",
                )
                    .into_response();
            }
            return meta_error(status, code, message_for(code));
        }
    }
    let wamid = format!(
        "wamid.{}",
        uuid::Uuid::new_v4().simple().to_string().to_uppercase()
    );
    let config = {
        let mut inner = fake.lock();
        inner.messages.push(Received {
            wamid: wamid.clone(),
            phone_number_id: id.clone(),
            to: to.clone(),
            kind,
            body: body.clone(),
            received_at: Utc::now().to_rfc3339(),
            traceparent: headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        inner.config.clone()
    };
    if config.status_webhooks {
        let fake = fake.clone();
        let (id, to, wamid) = (id.clone(), to.clone(), wamid.clone());
        tokio::spawn(async move {
            for status in ["sent", "delivered", "read"] {
                tokio::time::sleep(Duration::from_millis(20)).await;
                let payload = status_payload(&id, &to, &wamid, status);
                // Like Meta: retried until the platform answers 200.
                let started = std::time::Instant::now();
                for attempt in 1u64.. {
                    match fake.post_webhook(&config, &payload).await {
                        Ok(200) => break,
                        Ok(code) => tracing::warn!(code, "status webhook refused; retrying"),
                        Err(err) => tracing::warn!(error = %err, "status webhook not delivered"),
                    }
                    match config.redeliver(started, attempt, 5) {
                        Some(wait) => tokio::time::sleep(wait).await,
                        None => break,
                    }
                }
            }
        });
    }
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid}],
    }))
    .into_response()
}

#[derive(Deserialize)]
struct ToFilter {
    to: Option<String>,
}

async fn list_messages(
    State(fake): State<Fake>,
    Query(filter): Query<ToFilter>,
) -> Json<Vec<Received>> {
    Json(match filter.to {
        Some(to) => fake.messages_to(&to),
        None => fake.all_messages(),
    })
}

#[derive(Deserialize)]
struct Faults {
    faults: Vec<Fault>,
}

async fn add_faults(State(fake): State<Fake>, Json(faults): Json<Faults>) -> StatusCode {
    for fault in faults.faults {
        fake.push_fault(fault);
    }
    StatusCode::NO_CONTENT
}

async fn clear_faults(State(fake): State<Fake>) -> StatusCode {
    fake.lock().faults.clear();
    StatusCode::NO_CONTENT
}

async fn set_config(State(fake): State<Fake>, Json(config): Json<WebhookConfig>) -> StatusCode {
    fake.configure(config);
    StatusCode::NO_CONTENT
}

/// A customer's message, as `POST /_fake/inbound` takes it.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Inbound {
    pub phone_number_id: String,
    /// The customer's number, digits (a leading `+` is dropped).
    pub from: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    /// A tapped reply button or list row: its id and title.
    #[serde(default)]
    pub button_reply: Option<Choice>,
    #[serde(default)]
    pub list_reply: Option<Choice>,
    /// A tapped quick reply of a template: its payload (as `id`) and text (as `title`).
    #[serde(default)]
    pub template_reply: Option<Choice>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Choice {
    pub id: String,
    pub title: String,
}

/// Meta's notification for one inbound message.
pub fn inbound_payload(message: &Inbound, wamid: &str) -> Value {
    let from = message.from.trim_start_matches('+');
    let timestamp = Utc::now().timestamp().to_string();
    let mut msg = json!({"from": from, "id": wamid, "timestamp": timestamp});
    if let Some(reply) = &message.button_reply {
        msg["type"] = json!("interactive");
        msg["interactive"] =
            json!({"type": "button_reply", "button_reply": {"id": reply.id, "title": reply.title}});
    } else if let Some(reply) = &message.template_reply {
        msg["type"] = json!("button");
        msg["button"] = json!({"payload": reply.id, "text": reply.title});
    } else if let Some(reply) = &message.list_reply {
        msg["type"] = json!("interactive");
        msg["interactive"] =
            json!({"type": "list_reply", "list_reply": {"id": reply.id, "title": reply.title}});
    } else {
        msg["type"] = json!("text");
        msg["text"] = json!({"body": message.text.clone().unwrap_or_default()});
    }
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": message.phone_number_id},
            "contacts": [{"profile": {"name": message.name.clone().unwrap_or_else(|| "Customer".into())}, "wa_id": from}],
            "messages": [msg],
        }}]}],
    })
}

/// Meta's notification for a status change of an outbound message.
pub fn status_payload(phone_number_id: &str, to: &str, wamid: &str, status: &str) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": phone_number_id},
            "statuses": [{
                "id": wamid, "status": status, "timestamp": Utc::now().timestamp().to_string(),
                "recipient_id": to,
            }],
        }}]}],
    })
}

impl Fake {
    async fn post_webhook(&self, config: &WebhookConfig, payload: &Value) -> anyhow::Result<u16> {
        let url = config
            .webhook_url
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no webhook_url configured (POST /_fake/config)"))?;
        let secret = config
            .app_secret
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("no app_secret configured (POST /_fake/config)"))?;
        let body = serde_json::to_vec(payload)?;
        let response = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header(
                "x-hub-signature-256",
                whatsapp::signature::sign(secret.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await?;
        Ok(response.status().as_u16())
    }

    /// Posts a customer's message to the platform, signed; returns the wamid and the
    /// platform's HTTP status.
    pub async fn deliver_inbound(&self, message: &Inbound) -> anyhow::Result<(String, u16)> {
        let wamid = format!(
            "wamid.IN{}",
            uuid::Uuid::new_v4().simple().to_string().to_uppercase()
        );
        let config = self.lock().config.clone();
        let payload = inbound_payload(message, &wamid);
        // Like Meta: a delivery that is not answered 200 is retried, with backoff.
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let status = self.post_webhook(&config, &payload).await;
            let again = config.redeliver(started, attempt, 8);
            match (status, again) {
                (Ok(200), _) => return Ok((wamid, 200)),
                (Ok(code), None) => return Ok((wamid, code)),
                (Ok(code), Some(_)) if (400..500).contains(&code) => return Ok((wamid, code)),
                (Err(err), None) => return Err(err),
                (_, Some(wait)) => tokio::time::sleep(wait).await,
            }
        }
    }
}

async fn inbound(State(fake): State<Fake>, Json(message): Json<Inbound>) -> Response {
    match fake.deliver_inbound(&message).await {
        Ok((wamid, status)) => {
            Json(json!({"wamid": wamid, "webhook_status": status})).into_response()
        }
        Err(err) => (
            StatusCode::BAD_GATEWAY,
            Json(json!({"error": err.to_string()})),
        )
            .into_response(),
    }
}
