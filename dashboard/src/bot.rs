//! Setup › The bot: what the bot says (its language, whether it asks a name and a payment
//! method, every text) and the business's own keyword replies, with a live preview. The preview
//! is the domain's own engine (`domain::bot::step`) run on the draft configuration in the
//! dashboard's memory: what the owner sees is what customers would get, and nothing is written
//! until they save. Saving is a `PUT /v1/bot-config` on the version the page was read at.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use domain::agenda::Interval;
use domain::bot::i18n::default_texts;
use domain::bot::{BookingView, BotContext, BotState, Calendar, Inbound, Input, Reply, step};
use domain::bot_config::{BotSettings, Service};
use domain::ids::{BookingId, ResourceId};
use domain::values::LocalDate;
use query_api::catalog::ServicesView;
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::api::Failure;
use crate::pages::{Member, after_write, failed, field, member_form, render, see_other};
use crate::setup::SetupQuery;

/// The texts most businesses change first, shown open; the others are under "All the other
/// texts".
const MAIN_TEXTS: [(&str, &str); 8] = [
    ("greeting", "Greeting (a customer's first message)"),
    ("welcome_back", "Greeting for a customer the bot knows"),
    ("choose_service", "Asking for the service"),
    ("confirmed", "Booking confirmed"),
    ("closed_now", "Written to while closed"),
    ("not_understood", "When the bot does not understand"),
    ("handoff", "When a customer asks for a person"),
    ("cancelled", "Booking cancelled"),
];

/// Blank keyword rows below the business's own, to add new ones.
const BLANK_KEYWORDS: usize = 2;

/// A customer booking the first service at the first time offered, answering each question
/// the business's bot asks: what the preview shows until the owner types another conversation.
fn booking_script(settings: &Value, services: &[Service]) -> String {
    let mut lines = vec!["Hi", "1"];
    let settings: Option<BotSettings> = serde_json::from_value(settings.clone()).ok();
    if let (Some(settings), Some(first)) = (&settings, services.first()) {
        if settings.staff_for(first).len() > 1 {
            lines.push("1"); // whoever is free
        }
        lines.extend(["1", "1"]); // the first day, the first time
        if settings.flow.ask_name {
            lines.push("Ana");
        }
        lines.push("yes");
        if settings.flow.ask_payment && !settings.payment_methods.is_empty() {
            lines.push("1");
        }
    }
    let mut script = lines.join("\n");
    // Then a question one of the business's keyword replies answers.
    if let Some(word) = settings
        .as_ref()
        .and_then(|s| s.keyword_replies.first())
        .and_then(|k| k.keywords.first())
    {
        script = format!("{script}\n{word}");
    }
    script
}

pub struct TextField {
    pub key: String,
    pub label: String,
    pub value: String,
}

pub struct KeywordRow {
    pub keywords: String,
    pub reply: String,
}

/// One message of the preview.
pub struct Bubble {
    pub outbound: bool,
    pub text: String,
    pub choices: Vec<String>,
}

#[derive(Template)]
#[template(path = "bot_preview.html")]
pub struct Preview {
    pub bubbles: Vec<Bubble>,
    /// The draft's problems: what saving it would be refused for.
    pub problems: Vec<String>,
}

#[derive(Template)]
#[template(path = "bot.html")]
pub struct BotPage {
    pub business: String,
    pub csrf: String,
    pub version: i32,
    pub configured: bool,
    pub language: String,
    pub ask_name: bool,
    pub ask_payment: bool,
    /// What a customer's "delete my data" does: `ask_business` or `erase_at_once`.
    pub erasure_requests: String,
    pub main_texts: Vec<TextField>,
    pub other_texts: Vec<TextField>,
    pub keywords: Vec<KeywordRow>,
    pub script: String,
    pub preview: Preview,
    pub errors: Vec<String>,
    pub notice: Option<String>,
    pub conflict: bool,
}

/// The business's configuration (`None` before its hours are set) and its bookable services.
async fn current(
    state: &AppState,
    m: &mut Member,
    after: Option<&str>,
) -> Result<(i32, Option<Value>, Vec<Service>), Response> {
    let config = m.bot_config(state, after).await?;
    let services: ServicesView = m.read(state, "/v1/services").await.map_err(failed)?;
    let active = services.services.into_iter().filter(|s| s.active).collect();
    let version = config.as_ref().map_or(0, |c| c.version);
    Ok((version, config.and_then(|c| c.settings), active))
}

/// A text's label from its name (`slot_taken_kept` → "Slot taken kept").
fn label_of(key: &str) -> String {
    let spaced = key.replace('_', " ");
    let mut chars = spaced.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The page's fields from a configuration (saved, or the draft a refused save kept).
fn page_of(m: &Member, version: i32, settings: Option<&Value>, script: &str) -> BotPage {
    let flow = settings.map(|s| s["flow"].clone()).unwrap_or(Value::Null);
    let texts = flow["texts"].as_object().cloned().unwrap_or_default();
    let text = |key: &str| TextField {
        key: key.to_owned(),
        label: MAIN_TEXTS
            .iter()
            .find(|(k, _)| *k == key)
            .map_or_else(|| label_of(key), |(_, l)| (*l).to_owned()),
        value: texts
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    let mut keywords: Vec<KeywordRow> = settings
        .and_then(|s| s["keyword_replies"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|k| KeywordRow {
            keywords: k["keywords"]
                .as_array()
                .map(|words| {
                    words
                        .iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            reply: k["reply"].as_str().unwrap_or_default().to_owned(),
        })
        .collect();
    keywords.extend((0..BLANK_KEYWORDS).map(|_| KeywordRow {
        keywords: String::new(),
        reply: String::new(),
    }));
    BotPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        version,
        configured: settings.is_some(),
        language: flow["language"].as_str().unwrap_or("en").to_owned(),
        ask_name: flow["ask_name"].as_bool().unwrap_or(true),
        ask_payment: flow["ask_payment"].as_bool().unwrap_or(true),
        erasure_requests: settings
            .and_then(|s| s["privacy"]["erasure_requests"].as_str())
            .unwrap_or("ask_business")
            .to_owned(),
        main_texts: MAIN_TEXTS.iter().map(|(k, _)| text(k)).collect(),
        other_texts: texts
            .keys()
            .filter(|k| !MAIN_TEXTS.iter().any(|(main, _)| main == k))
            .map(|k| text(k))
            .collect(),
        keywords,
        script: script.to_owned(),
        preview: Preview {
            bubbles: vec![],
            problems: vec![],
        },
        errors: vec![],
        notice: None,
        conflict: false,
    }
}

/// The configuration `fields` describe, laid over the saved one: the language, the flow's
/// questions, the texts that differ from the language's defaults (so a text left as it was
/// follows a later change of language), and the keyword replies.
fn draft(saved: &Value, fields: &[(String, String)]) -> Value {
    let mut draft = saved.clone();
    let language = match field(fields, "language") {
        "es" => "es",
        "pt" => "pt",
        _ => "en",
    };
    // A text is the business's own when it is neither the chosen language's default nor the
    // default of the language the page showed (left as it was when the language changed).
    let defaults = |language: &Value| {
        serde_json::from_value(language.clone())
            .map(default_texts)
            .ok()
            .and_then(|d| serde_json::to_value(d).ok())
            .unwrap_or(Value::Null)
    };
    let (chosen, shown) = (
        defaults(&json!(language)),
        defaults(&saved["flow"]["language"]),
    );
    let mut texts = Map::new();
    for (name, value) in fields {
        if let Some(key) = name.strip_prefix("text_") {
            let value = value.replace("\r\n", "\n");
            let is_default = |d: &Value| d[key].as_str() == Some(value.as_str());
            if !is_default(&chosen) && !is_default(&shown) {
                texts.insert(key.to_owned(), Value::String(value));
            }
        }
    }
    let checked = |name: &str| fields.iter().any(|(n, _)| n == name);
    draft["flow"]["language"] = json!(language);
    draft["flow"]["ask_name"] = json!(checked("ask_name"));
    draft["flow"]["ask_payment"] = json!(checked("ask_payment"));
    draft["flow"]["texts"] = Value::Object(texts);
    // Left as saved by a form without the choice.
    if let choice @ ("ask_business" | "erase_at_once") = field(fields, "erasure_requests") {
        draft["privacy"] = json!({ "erasure_requests": choice });
    }
    let mut replies = vec![];
    for i in 0.. {
        let (Some(words), Some(reply)) = (
            fields.iter().find(|(n, _)| *n == format!("keywords_{i}")),
            fields.iter().find(|(n, _)| *n == format!("reply_{i}")),
        ) else {
            break;
        };
        let keywords: Vec<&str> = words
            .1
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .collect();
        if !keywords.is_empty() || !reply.1.trim().is_empty() {
            replies.push(json!({"keywords": keywords, "reply": reply.1.trim()}));
        }
    }
    draft["keyword_replies"] = Value::Array(replies);
    draft
}

/// No booking and nothing taken: the preview books into an empty calendar.
struct EmptyCalendar;

impl Calendar for EmptyCalendar {
    fn taken(&self, _: &ResourceId, _: LocalDate, _: DateTime<Utc>) -> Vec<(BookingId, Interval)> {
        vec![]
    }

    fn bookings(&self) -> Vec<BookingView> {
        vec![]
    }
}

/// The conversation a customer writing `script` (a message a line) would have with the bot of
/// `draft`, or why the draft cannot run.
fn preview(m: &Member, draft: &Value, services: &[Service], script: &str) -> Preview {
    let settings: BotSettings = match serde_json::from_value(draft.clone()) {
        Ok(settings) => settings,
        Err(err) => {
            return Preview {
                bubbles: vec![],
                problems: vec![format!("The configuration cannot be read: {err}")],
            };
        }
    };
    let problems: Vec<String> = settings
        .problems()
        .into_iter()
        .map(|p| format!("{}: {}", p.field, p.message))
        .collect();
    let ctx = BotContext {
        business_name: &m.tenant.business_name,
        contact: &m.tenant.contact_email,
        settings: &settings,
        services,
        bookings_open: true,
    };
    let mut state = BotState::default();
    let mut bubbles = vec![];
    let now = Utc::now();
    for (i, line) in script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(20)
        .enumerate()
    {
        bubbles.push(Bubble {
            outbound: false,
            text: line.to_owned(),
            choices: vec![],
        });
        let inbound = Inbound::Text {
            body: line.to_owned(),
        };
        let turn = step(
            &ctx,
            &EmptyCalendar,
            &state,
            Input {
                inbound: &inbound,
                profile_name: Some("Customer"),
                // A second apart, so the conversation never times out mid-preview.
                now: now + chrono::Duration::seconds(i64::try_from(i).unwrap_or(0)),
                new_booking_id: BookingId::from_uuid(uuid::Uuid::new_v4()),
            },
        );
        state = turn.state;
        bubbles.extend(turn.replies.into_iter().map(bubble));
    }
    Preview { bubbles, problems }
}

fn bubble(reply: Reply) -> Bubble {
    let (text, choices) = match reply {
        Reply::Text { body } => (body, vec![]),
        Reply::Buttons { body, buttons } => (body, buttons.into_iter().map(|b| b.title).collect()),
        Reply::List { body, rows, .. } => (body, rows.into_iter().map(|r| r.title).collect()),
        Reply::Template { name, body, .. } => {
            (format!("[template {name}] {}", body.join(" · ")), vec![])
        }
    };
    Bubble {
        outbound: true,
        text,
        choices,
    }
}

/// `GET /setup/bot`.
pub async fn bot(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SetupQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let (version, settings, services) = current(&state, &mut m, query.after.as_deref()).await?;
    let script = settings
        .as_ref()
        .map(|s| booking_script(s, &services))
        .unwrap_or_default();
    let mut page = page_of(&m, version, settings.as_ref(), &script);
    if let Some(settings) = &settings {
        page.preview = preview(&m, settings, &services, &script);
    }
    page.notice = query.notice.filter(|n| n.len() <= 200);
    Ok(render(&page, StatusCode::OK))
}

/// `POST /setup/bot/preview` (htmx, as the form is edited): the conversation on the draft.
/// Nothing is written.
pub async fn bot_preview(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (_, settings, services) = match current(&state, &mut m, None).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Some(saved) = settings else {
        return render(
            &Preview {
                bubbles: vec![],
                problems: vec!["Set the opening hours first (Setup).".into()],
            },
            StatusCode::OK,
        );
    };
    let draft = draft(&saved, &fields);
    render(
        &preview(&m, &draft, &services, field(&fields, "script")),
        StatusCode::OK,
    )
}

/// `POST /setup/bot`: saves the draft on the version the page was read at.
pub async fn save_bot(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (version_now, settings, services) = match current(&state, &mut m, None).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Some(saved) = settings else {
        return see_other("/setup?notice=Set+the+opening+hours+first.");
    };
    let version: i32 = field(&fields, "version").parse().unwrap_or(-1);
    let script = field(&fields, "script");
    let draft = draft(&saved, &fields);
    let answer = state
        .api
        .put_version(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/bot-config",
            draft.clone(),
            version,
        )
        .await;
    match answer {
        Ok(answer) => after_write(
            "/setup/bot",
            &answer,
            "Saved: the bot answers this way from now on.",
        ),
        // Someone else saved first: their configuration is shown as it is now.
        Err(failure @ Failure::Refused { status: 412, .. }) => {
            let mut page = page_of(&m, version_now, Some(&saved), script);
            page.preview = preview(&m, &saved, &services, script);
            page.conflict = true;
            render(&page, failure.status())
        }
        // What was typed stays, with why it was refused.
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = page_of(&m, version, Some(&draft_shown(&draft, &saved)), script);
            page.preview = preview(&m, &draft, &services, script);
            page.errors = crate::setup::reasons(&failure);
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

/// The draft as the form shows it: every text (the draft's own laid over the language's
/// defaults), as a saved configuration reads.
fn draft_shown(draft: &Value, saved: &Value) -> Value {
    let mut shown = draft.clone();
    let language = serde_json::from_value(draft["flow"]["language"].clone()).unwrap_or_default();
    let mut texts = serde_json::to_value(default_texts(language))
        .unwrap_or_else(|_| saved["flow"]["texts"].clone());
    if let (Some(all), Some(own)) = (texts.as_object_mut(), draft["flow"]["texts"].as_object()) {
        all.extend(own.clone());
    }
    shown["flow"]["texts"] = texts;
    shown
}
