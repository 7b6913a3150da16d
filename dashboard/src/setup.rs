//! Setup: the services (added, retired) and the business's week (opening hours per weekday,
//! with a break, and the booking rules). The week is edited on the configuration's version the
//! page was read at: saved over someone else's change, it is refused ("reload"), never lost.

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use domain::bot_config::Service;
use query_api::catalog::ServicesView;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::api::Failure;
use crate::pages::{Member, after_write, failed, field, member_form, money, render};
use crate::session::random_token;

const WEEK: [(&str, &str); 7] = [
    ("monday", "Monday"),
    ("tuesday", "Tuesday"),
    ("wednesday", "Wednesday"),
    ("thursday", "Thursday"),
    ("friday", "Friday"),
    ("saturday", "Saturday"),
    ("sunday", "Sunday"),
];

pub struct ServiceLine {
    pub service_id: String,
    pub name: String,
    pub minutes: u32,
    pub buffer: u32,
    pub price: String,
    pub active: bool,
}

/// A weekday's hours as the form shows them: up to two ranges (a break between them).
pub struct DayHours {
    pub key: &'static str,
    pub label: &'static str,
    pub open: String,
    pub close: String,
    pub open2: String,
    pub close2: String,
}

/// A day or days the business is closed (a holiday, a week away).
pub struct ClosureRow {
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Blank closure rows under the business's own, to add new ones.
const BLANK_CLOSURES: usize = 2;

#[derive(Template)]
#[template(path = "setup.html")]
pub struct SetupPage {
    pub business: String,
    pub csrf: String,
    pub key: String,
    pub services: Vec<ServiceLine>,
    /// The configuration's version the week form edits; `None`: not configured yet.
    pub version: i32,
    pub configured: bool,
    pub days: Vec<DayHours>,
    pub min_notice: String,
    pub horizon: String,
    pub closures: Vec<ClosureRow>,
    /// The payment methods customers may choose: cash, a bank transfer's details, a link.
    pub cash: bool,
    pub transfer: String,
    pub link: String,
    pub currency: String,
    pub service_name: String,
    pub service_minutes: String,
    pub service_price: String,
    pub service_buffer: String,
    pub service_error: Option<String>,
    pub week_errors: Vec<String>,
    pub notice: Option<String>,
    /// Someone else changed the configuration since this page was read.
    pub conflict: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct SetupQuery {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

/// The page as the business is configured now.
async fn setup_page(
    state: &AppState,
    m: &mut Member,
    after: Option<&str>,
) -> Result<(SetupPage, Option<Value>), Response> {
    let services: ServicesView = m
        .read_after(state, "/v1/services", after)
        .await
        .map_err(failed)?;
    let config = m.bot_config(state, None).await?;
    let settings = config.as_ref().and_then(|c| c.settings.clone());
    let hours = settings.as_ref().map(|s| s["hours"].clone());
    let time = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let days = WEEK
        .iter()
        .map(|(key, label)| {
            let ranges = hours
                .as_ref()
                .and_then(|h| h[*key].as_array().cloned())
                .unwrap_or_default();
            let range = |i: usize| {
                ranges
                    .get(i)
                    .map(|r| (time(&r["open"]), time(&r["close"])))
                    .unwrap_or_default()
            };
            let ((open, close), (open2, close2)) = (range(0), range(1));
            DayHours {
                key,
                label,
                open,
                close,
                open2,
                close2,
            }
        })
        .collect();
    let rule = |name: &str| {
        settings
            .as_ref()
            .and_then(|s| s["rules"][name].as_u64())
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let text = |v: &Value, name: &str| v[name].as_str().unwrap_or_default().to_owned();
    let mut closures: Vec<ClosureRow> = settings
        .as_ref()
        .and_then(|s| s["closures"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|c| ClosureRow {
            from: text(c, "from"),
            to: text(c, "to"),
            reason: text(c, "reason"),
        })
        .collect();
    closures.extend((0..BLANK_CLOSURES).map(|_| ClosureRow {
        from: String::new(),
        to: String::new(),
        reason: String::new(),
    }));
    let methods = settings
        .as_ref()
        .and_then(|s| s["payment_methods"].as_array().cloned())
        .unwrap_or_else(|| vec![json!({"kind": "cash"})]);
    let method = |kind: &str| methods.iter().find(|m| m["kind"] == kind);
    let currency = services.services.first().map_or_else(
        || "EUR".to_owned(),
        |s| s.price.currency().as_str().to_owned(),
    );
    let page = SetupPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        key: random_token(),
        services: services.services.iter().map(line).collect(),
        version: config.as_ref().map_or(0, |c| c.version),
        configured: settings.is_some(),
        days,
        min_notice: rule("min_notice_minutes"),
        horizon: rule("horizon_days"),
        closures,
        cash: method("cash").is_some(),
        transfer: method("bank_transfer")
            .map(|m| text(m, "details"))
            .unwrap_or_default(),
        link: method("payment_link")
            .map(|m| text(m, "url"))
            .unwrap_or_default(),
        currency,
        service_name: String::new(),
        service_minutes: "45".into(),
        service_price: String::new(),
        service_buffer: "0".into(),
        service_error: None,
        week_errors: vec![],
        notice: None,
        conflict: false,
    };
    Ok((page, settings))
}

fn line(s: &Service) -> ServiceLine {
    ServiceLine {
        service_id: s.id.to_string(),
        name: s.name.clone(),
        minutes: s.duration.minutes(),
        buffer: s.buffer_minutes,
        price: money(s.price.minor(), s.price.currency().as_str()),
        active: s.active,
    }
}

/// `GET /setup?after=&notice=`.
pub async fn setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SetupQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let (mut page, _) = setup_page(&state, &mut m, query.after.as_deref()).await?;
    page.notice = query.notice.filter(|n| n.len() <= 200);
    Ok(render(&page, StatusCode::OK))
}

/// An amount typed as `25`, `25.5` or `25,50`, in minor units.
fn minor_units(typed: &str) -> Option<i64> {
    let typed = typed.trim().replace(',', ".");
    let (units, cents) = typed.split_once('.').unwrap_or((&typed, ""));
    if cents.len() > 2 || !cents.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let units: i64 = units.parse().ok().filter(|u| *u >= 0)?;
    let cents: i64 = format!("{cents:0<2}").parse().ok()?;
    Some(units * 100 + cents)
}

/// The API's reasons, each with its field.
pub(crate) fn reasons(failure: &Failure) -> Vec<String> {
    match failure {
        Failure::Refused { fields, detail, .. } if fields.is_empty() => vec![detail.clone()],
        Failure::Refused { fields, .. } => fields
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect(),
        _ => vec![],
    }
}

/// `POST /setup/services`: adds a service.
pub async fn add_service(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (name, minutes, price, buffer, currency) = (
        field(&fields, "name"),
        field(&fields, "minutes"),
        field(&fields, "price"),
        field(&fields, "buffer"),
        field(&fields, "currency"),
    );
    let refused = |mut page: SetupPage, why: String, status: StatusCode| {
        page.service_name = name.to_owned();
        page.service_minutes = minutes.to_owned();
        page.service_price = price.to_owned();
        page.service_buffer = buffer.to_owned();
        page.service_error = Some(why);
        render(&page, status)
    };
    let (page, _) = match setup_page(&state, &mut m, None).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Some(minor) = minor_units(price) else {
        return refused(
            page,
            "The price is an amount such as 25 or 25.50.".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let body = json!({
        "name": name,
        "price": {"minor": minor, "currency": currency.to_uppercase()},
        "duration_minutes": minutes.parse::<u32>().unwrap_or(0),
        "buffer_minutes": buffer.parse::<u32>().unwrap_or(0),
    });
    let key = match field(&fields, "key") {
        "" => random_token(),
        key => key.chars().take(200).collect(),
    };
    match state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/services",
            body,
            &key,
        )
        .await
    {
        Ok(answer) => after_write(
            "/setup",
            &answer,
            &format!("{name} is added: customers can book it now."),
        ),
        Err(failure @ Failure::Refused { .. }) => {
            let why = reasons(&failure).join("; ");
            refused(page, why, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

/// `POST /setup/services/{id}/retire`: customers can no longer book it (bookings stay).
pub async fn retire_service(
    State(state): State<AppState>,
    Path(service): Path<String>,
    request: Request,
) -> Response {
    let (mut m, _) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Ok(service_id) = service.parse::<uuid::Uuid>() else {
        return crate::pages::not_found();
    };
    match state
        .api
        .send(
            &state.sessions,
            &m.id,
            &mut m.session,
            reqwest::Method::DELETE,
            &format!("/v1/services/{service_id}"),
            json!({}),
            &random_token(),
        )
        .await
    {
        Ok(answer) => after_write(
            "/setup",
            &answer,
            "The service is retired: customers can no longer book it.",
        ),
        Err(failure) => failed(failure),
    }
}

/// `POST /setup/week`: the opening hours and booking rules, saved on the version the page was
/// read at.
pub async fn save_week(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (mut page, settings) = match setup_page(&state, &mut m, None).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let version: i32 = field(&fields, "version").parse().unwrap_or(-1);
    let mut hours = serde_json::Map::new();
    for (key, _) in WEEK {
        let mut ranges = vec![];
        for suffix in ["", "2"] {
            let (open, close) = (
                field(&fields, &format!("{key}_open{suffix}")),
                field(&fields, &format!("{key}_close{suffix}")),
            );
            if !open.is_empty() || !close.is_empty() {
                ranges.push(json!({"open": open, "close": close}));
            }
        }
        hours.insert(key.to_owned(), Value::Array(ranges));
    }
    let number = |name: &str| field(&fields, name).parse::<u64>().ok();
    let mut body = settings.unwrap_or_else(|| {
        json!({
            "time_zone": m.tenant.time_zone,
            "payment_methods": [{"kind": "cash"}],
            "rules": {"min_notice_minutes": 60, "horizon_days": 30, "slot_step_minutes": 15},
        })
    });
    body["hours"] = Value::Object(hours);
    let mut closures = vec![];
    for i in 0.. {
        let Some((_, from)) = fields
            .iter()
            .find(|(n, _)| *n == format!("closure_from_{i}"))
        else {
            break;
        };
        let to = field(&fields, &format!("closure_to_{i}"));
        let reason = field(&fields, &format!("closure_reason_{i}")).trim();
        if from.is_empty() && to.is_empty() {
            continue;
        }
        // One day: its "to" may be left empty.
        let to = if to.is_empty() { from.as_str() } else { to };
        let mut closure = json!({"from": from, "to": to});
        if !reason.is_empty() {
            closure["reason"] = reason.into();
        }
        closures.push(closure);
    }
    body["closures"] = Value::Array(closures);
    let mut methods = vec![];
    if fields.iter().any(|(n, _)| n == "cash") {
        methods.push(json!({"kind": "cash"}));
    }
    match field(&fields, "transfer").trim() {
        "" => {}
        details => methods.push(json!({"kind": "bank_transfer", "details": details})),
    }
    match field(&fields, "link").trim() {
        "" => {}
        url => methods.push(json!({"kind": "payment_link", "url": url})),
    }
    body["payment_methods"] = Value::Array(methods);
    if let Some(n) = number("min_notice") {
        body["rules"]["min_notice_minutes"] = n.into();
    }
    if let Some(n) = number("horizon") {
        body["rules"]["horizon_days"] = n.into();
    }
    let saved = state
        .api
        .put_version(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/bot-config",
            body,
            version,
        )
        .await;
    match saved {
        Ok(answer) => after_write(
            "/setup",
            &answer,
            "The week is saved: the bot offers these hours now.",
        ),
        // Someone else saved first: their week is shown (it is what the bot offers now), to
        // be changed again, rather than saving over it.
        Err(failure @ Failure::Refused { status: 412, .. }) => {
            page.conflict = true;
            render(&page, failure.status())
        }
        Err(failure @ Failure::Refused { .. }) => {
            // What was typed stays, with why it was refused.
            for day in &mut page.days {
                day.open = field(&fields, &format!("{}_open", day.key)).to_owned();
                day.close = field(&fields, &format!("{}_close", day.key)).to_owned();
                day.open2 = field(&fields, &format!("{}_open2", day.key)).to_owned();
                day.close2 = field(&fields, &format!("{}_close2", day.key)).to_owned();
            }
            page.min_notice = field(&fields, "min_notice").to_owned();
            for (i, row) in page.closures.iter_mut().enumerate() {
                row.from = field(&fields, &format!("closure_from_{i}")).to_owned();
                row.to = field(&fields, &format!("closure_to_{i}")).to_owned();
                row.reason = field(&fields, &format!("closure_reason_{i}")).to_owned();
            }
            page.cash = fields.iter().any(|(n, _)| n == "cash");
            page.transfer = field(&fields, "transfer").to_owned();
            page.link = field(&fields, "link").to_owned();
            page.horizon = field(&fields, "horizon").to_owned();
            page.week_errors = reasons(&failure);
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

#[derive(Template)]
#[template(path = "service.html")]
pub struct ServicePage {
    pub business: String,
    pub csrf: String,
    pub service_id: String,
    pub version: i32,
    pub active: bool,
    pub currency: String,
    pub name: String,
    pub description: String,
    pub minutes: String,
    pub price: String,
    pub buffer: String,
    pub capacity: String,
    pub category: String,
    pub errors: Vec<String>,
    pub conflict: bool,
}

/// The service `id` of the business, with the configuration's version, or 404.
async fn service_of(
    state: &AppState,
    m: &mut Member,
    id: &str,
) -> Result<(Service, i32), Response> {
    let services: ServicesView = m.read(state, "/v1/services").await.map_err(failed)?;
    let service = services
        .services
        .into_iter()
        .find(|s| s.id.to_string() == id)
        .ok_or_else(crate::pages::not_found)?;
    let version = m.bot_config(state, None).await?.map_or(0, |c| c.version);
    Ok((service, version))
}

fn service_page(m: &Member, s: &Service, version: i32) -> ServicePage {
    let minor = s.price.minor();
    ServicePage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        service_id: s.id.to_string(),
        version,
        active: s.active,
        currency: s.price.currency().as_str().to_owned(),
        name: s.name.clone(),
        description: s.description.clone().unwrap_or_default(),
        minutes: s.duration.minutes().to_string(),
        price: format!("{}.{:02}", minor / 100, minor % 100),
        buffer: s.buffer_minutes.to_string(),
        capacity: s.capacity.to_string(),
        category: s.category.clone().unwrap_or_default(),
        errors: vec![],
        conflict: false,
    }
}

/// `GET /setup/services/{id}`: a service's details to change.
pub async fn service(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let (service, version) = service_of(&state, &mut m, &id).await?;
    Ok(render(&service_page(&m, &service, version), StatusCode::OK))
}

/// `POST /setup/services/{id}`: replaces the service's details (a retired service saved is
/// offered again), on the configuration's version the page was read at.
pub async fn save_service(
    State(state): State<AppState>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (service, version_now) = match service_of(&state, &mut m, &id).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let typed = |mut page: ServicePage| {
        page.name = field(&fields, "name").to_owned();
        page.description = field(&fields, "description").to_owned();
        page.minutes = field(&fields, "minutes").to_owned();
        page.price = field(&fields, "price").to_owned();
        page.buffer = field(&fields, "buffer").to_owned();
        page.capacity = field(&fields, "capacity").to_owned();
        page.category = field(&fields, "category").to_owned();
        page
    };
    let Some(minor) = minor_units(field(&fields, "price")) else {
        let mut page = typed(service_page(&m, &service, version_now));
        page.errors = vec!["price: an amount such as 25 or 25.50".into()];
        return render(&page, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let optional = |name: &str| Some(field(&fields, name).trim()).filter(|v| !v.is_empty());
    let body = json!({
        "name": field(&fields, "name"),
        "description": optional("description"),
        "price": {"minor": minor, "currency": service.price.currency().as_str()},
        "duration_minutes": field(&fields, "minutes").parse::<u32>().unwrap_or(0),
        "buffer_minutes": field(&fields, "buffer").parse::<u32>().unwrap_or(0),
        "capacity": field(&fields, "capacity").parse::<u32>().unwrap_or(0),
        "category": optional("category"),
        "staff": service.staff,
    });
    let version: i32 = field(&fields, "version").parse().unwrap_or(-1);
    let saved = state
        .api
        .put_version(
            &state.sessions,
            &m.id,
            &mut m.session,
            &format!("/v1/services/{}", service.id),
            body,
            version,
        )
        .await;
    match saved {
        Ok(answer) => after_write(
            "/setup",
            &answer,
            &format!("{} is saved.", field(&fields, "name").trim()),
        ),
        Err(failure @ Failure::Refused { status: 412, .. }) => {
            let mut page = service_page(&m, &service, version_now);
            page.conflict = true;
            render(&page, failure.status())
        }
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = typed(service_page(&m, &service, version));
            page.errors = reasons(&failure);
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}
