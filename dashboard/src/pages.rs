//! The pages. Each handler reads what it shows from the query API as the signed-in member (or
//! writes through the command API), and renders a template; an API's refusal is shown on the
//! page, next to the field it names.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest as _, Path, Query, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Datelike as _, NaiveDate, Utc};
use chrono_tz::Tz;
use query_api::analytics::Overview;
use query_api::billing::BillingView;
use query_api::bookings::BookingRow;
use query_api::conversations::ConversationRow;
use query_api::paging::Page;
use query_api::tenant::TenantView;
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::guard::NeedsToken;
use crate::session::{Session, random_token};

/// A page's answer: its HTML, or where to go instead.
pub(crate) fn render(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be shown.",
            )
                .into_response()
        }
    }
}

pub(crate) fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(LOCATION, to.to_owned())]).into_response()
}

/// After a write: back to `page` with the write's consistency token (so the next read shows
/// it) and `notice` to say what was done.
pub(crate) fn after_write(page: &str, answer: &serde_json::Value, notice: &str) -> Response {
    see_other(&format!(
        "{page}?after={}&notice={}",
        encoded(answer["consistency_token"].as_str().unwrap_or_default()),
        encoded(notice)
    ))
}

pub(crate) fn unavailable(what: &str) -> Response {
    tracing::warn!(what, "the dashboard could not reach a dependency");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Html(
            "<!doctype html><title>Unavailable</title><p>The platform did not answer. \
             Try again in a moment.</p>"
                .to_owned(),
        ),
    )
        .into_response()
}

/// How long a page waits for a business the read side has not caught up with yet.
const BUSINESS_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(3);

/// A business too new for the read side yet: a page that reloads itself in a moment.
fn being_set_up() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [("refresh", "2"), ("retry-after", "2")],
        Html(
            "<!doctype html><title>Setting up</title><p>Your business is still being set up. \
             This page reloads by itself in a moment.</p>"
                .to_owned(),
        ),
    )
        .into_response()
}

/// The signed-in member's session, or the way to the login page.
pub(crate) async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(String, Session), Response> {
    let Some(id) = state.sessions.id_of(headers) else {
        return Err(see_other("/login"));
    };
    match state.sessions.get(&id).await {
        Ok(Some(session)) => Ok((id, session)),
        Ok(None) => Err(see_other("/login")),
        Err(err) => Err(unavailable(&err.to_string())),
    }
}

/// The answer to a form whose CSRF token is not the session's.
pub(crate) fn form_expired() -> Response {
    (
        StatusCode::FORBIDDEN,
        "This form has expired: reload the page.",
    )
        .into_response()
}

/// A form sent by a signed-in member: the member with their business, and the form's fields
/// as `F` (a `Vec<(String, String)>` keeps a checkbox group's repeated names). A body that is
/// not a form is a 422; a form whose origin the browser did not vouch for needs the session's
/// CSRF token (its `csrf` field).
pub(crate) async fn member_form<F: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request,
) -> Result<(Member, F), Response> {
    let needs_token = request.extensions().get::<NeedsToken>().is_some();
    let headers = request.headers().clone();
    let body = axum::body::Bytes::from_request(request, &())
        .await
        .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY.into_response())?;
    let (fields, form) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
        .and_then(|fields| Ok((fields, serde_urlencoded::from_bytes::<F>(&body)?)))
        .map_err(|_| StatusCode::UNPROCESSABLE_ENTITY.into_response())?;
    let (id, session) = signed_in(state, &headers).await?;
    if needs_token && field(&fields, "csrf") != session.csrf {
        return Err(form_expired());
    }
    Ok((Member::with_business(state, id, session).await?, form))
}

/// A form field's value, trimmed (`""` when absent).
pub(crate) fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.trim())
}

/// A signed-in member on a page: their session, and their business (its name and time zone,
/// which every page shows times in).
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) session: Session,
    pub(crate) tenant: TenantView,
    pub(crate) tz: Tz,
}

impl Member {
    /// The member of the request's session and their business, or where to go instead.
    pub(crate) async fn of(state: &AppState, headers: &HeaderMap) -> Result<Self, Response> {
        let (id, session) = signed_in(state, headers).await?;
        Self::with_business(state, id, session).await
    }

    pub(crate) async fn with_business(
        state: &AppState,
        id: String,
        mut session: Session,
    ) -> Result<Self, Response> {
        // A member can sign in the moment their business is created, before the read side
        // has it: wait a little for it, then say so on a page that tries again by itself.
        let deadline = tokio::time::Instant::now() + BUSINESS_CATCH_UP;
        let tenant: TenantView = loop {
            match state
                .api
                .read(&state.sessions, &id, &mut session, "/v1/tenant")
                .await
            {
                Ok(tenant) => break tenant,
                Err(Failure::Refused { status: 404, .. }) => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(being_set_up());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(failure) => return Err(failed(failure)),
            }
        };
        let tz = tenant.time_zone.parse().unwrap_or(Tz::UTC);
        Ok(Self {
            id,
            session,
            tenant,
            tz,
        })
    }

    /// A read from the query API as this member.
    pub(crate) async fn read<T: serde::de::DeserializeOwned>(
        &mut self,
        state: &AppState,
        path: &str,
    ) -> Result<T, Failure> {
        self.read_after(state, path, None).await
    }

    /// A read made beside others (`tokio::join!`): the token as it is now, not renewed.
    /// Pass its answer to `or_renewed`.
    pub(crate) async fn read_beside<T: serde::de::DeserializeOwned>(
        &self,
        state: &AppState,
        path: &str,
    ) -> Result<T, Failure> {
        state.api.read_as_is(&self.session, path).await
    }

    /// `answer` of `read_beside`, or, when the access token had run out, the same read again
    /// with the session renewed (once, for all the reads that found it so).
    pub(crate) async fn or_renewed<T: serde::de::DeserializeOwned>(
        &mut self,
        state: &AppState,
        path: &str,
        answer: Result<T, Failure>,
    ) -> Result<T, Failure> {
        match answer {
            Err(Failure::SignedOut) => self.read(state, path).await,
            answer => answer,
        }
    }

    /// The business's bot configuration (after the write `after`), or `None` before its
    /// hours are first set.
    pub(crate) async fn bot_config(
        &mut self,
        state: &AppState,
        after: Option<&str>,
    ) -> Result<Option<query_api::catalog::BotConfigView>, Response> {
        match self.read_after(state, "/v1/bot-config", after).await {
            Ok(config) => Ok(Some(config)),
            Err(Failure::Refused { status: 404, .. }) => Ok(None),
            Err(failure) => Err(failed(failure)),
        }
    }

    /// A read that waits for the write whose consistency token is `after`.
    pub(crate) async fn read_after<T: serde::de::DeserializeOwned>(
        &mut self,
        state: &AppState,
        path: &str,
        after: Option<&str>,
    ) -> Result<T, Failure> {
        state
            .api
            .read_after(&state.sessions, &self.id, &mut self.session, path, after)
            .await
    }
}

/// `value` encoded for a query string.
pub(crate) fn encoded(value: &str) -> String {
    serde_urlencoded::to_string([("v", value)])
        .unwrap_or_default()
        .split_off(2)
}

/// Text made safe to put in HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// What a failed read of Home's business-wide lists means: these never name something that
/// may not exist, so a 404 says the read side has the business (`/v1/tenant`) but not yet
/// everything of it, a moment after sign-up. The page that reloads itself, not "nothing here".
fn lagging(failure: Failure) -> Response {
    match failure {
        Failure::Refused { status: 404, .. } => being_set_up(),
        other => failed(other),
    }
}

/// What a failed read means for the page.
pub(crate) fn failed(failure: Failure) -> Response {
    match failure {
        Failure::SignedOut => see_other("/login"),
        Failure::Unavailable(what) => unavailable(&what),
        Failure::Refused {
            status: 403,
            detail,
            ..
        } => message_page(StatusCode::FORBIDDEN, "Not for your role", &detail),
        Failure::Refused { status: 404, .. } => not_found(),
        Failure::Refused { status, detail, .. } => message_page(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            "Refused",
            &detail,
        ),
    }
}

/// What the address names does not exist for this business: the same page whether it never
/// existed or is another business's (which the dashboard cannot tell apart, nor should).
pub(crate) fn not_found() -> Response {
    message_page(
        StatusCode::NOT_FOUND,
        "Nothing here",
        "This page does not exist, or it belongs to another business.",
    )
}

/// A page that only says why, with the way back Home.
fn message_page(status: StatusCode, title: &str, message: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><html lang=\"en\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <link rel=\"stylesheet\" href=\"/static/app.css\"><title>{title}</title>\
             <main><section class=\"card narrow\"><h1>{title}</h1><p>{}</p>\
             <p><a href=\"/\">Back to Home</a></p></section></main></html>",
            escape(message),
            title = escape(title),
        )),
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    pub slug: String,
    pub email: String,
    pub ask_code: bool,
    pub error: Option<String>,
    pub slug_error: Option<String>,
    pub email_error: Option<String>,
    pub password_error: Option<String>,
    pub code_error: Option<String>,
    /// What a page before this one did (a password changed).
    pub notice: Option<&'static str>,
}

impl LoginPage {
    fn empty() -> Self {
        Self {
            slug: String::new(),
            email: String::new(),
            ask_code: false,
            error: None,
            slug_error: None,
            email_error: None,
            password_error: None,
            code_error: None,
            notice: None,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct LoginQuery {
    #[serde(default)]
    pub reset: Option<String>,
}

/// `GET /login?reset=`: the sign-in form (saying so after a password was changed).
pub async fn login_form(Query(query): Query<LoginQuery>) -> Response {
    let page = LoginPage {
        notice: query
            .reset
            .map(|_| "Your password is changed: sign in with it."),
        ..LoginPage::empty()
    };
    render(&page, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    pub slug: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub totp: String,
}

pub async fn login(State(state): State<AppState>, request: Request) -> Response {
    if request.extensions().get::<NeedsToken>().is_some() {
        // Nothing vouches for where this form came from, and there is no session yet to hold
        // a token: a browser this old cannot sign in safely.
        return (
            StatusCode::FORBIDDEN,
            "Your browser did not say where this form came from.",
        )
            .into_response();
    }
    let client = crate::guard::client_of(&request);
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &()).await else {
        return render(
            &LoginPage {
                error: Some("Fill in every field.".into()),
                ..LoginPage::empty()
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let totp = Some(form.totp.trim()).filter(|c| !c.is_empty());
    match state
        .api
        .login(
            form.slug.trim(),
            form.email.trim(),
            &form.password,
            totp,
            client,
        )
        .await
    {
        Ok(pair) => {
            let id = random_token();
            let session = Session {
                access_token: pair.access_token,
                refresh_token: pair.refresh_token,
                csrf: random_token(),
            };
            if let Err(err) = state.sessions.put(&id, &session).await {
                return unavailable(&err.to_string());
            }
            (
                StatusCode::SEE_OTHER,
                [
                    (LOCATION, "/".to_owned()),
                    (SET_COOKIE, state.sessions.cookie(&id)),
                ],
            )
                .into_response()
        }
        Err(Failure::Refused {
            status,
            detail,
            fields,
            kind,
        }) => {
            let failure = Failure::Refused {
                status,
                detail: detail.clone(),
                fields,
                kind: kind.clone(),
            };
            let ask_code = kind == "mfa-required" || totp.is_some();
            let error = match (status, kind.as_str()) {
                (_, "mfa-required") if totp.is_none() => {
                    "Enter the code from your authenticator app.".to_owned()
                }
                (401, _) => "That business, email and password do not match.".to_owned(),
                (429, _) => "Too many attempts. Wait a minute and try again.".to_owned(),
                _ => detail,
            };
            render(
                &LoginPage {
                    slug: form.slug,
                    email: form.email,
                    ask_code,
                    error: Some(error),
                    slug_error: failure.field("slug").map(str::to_owned),
                    email_error: failure.field("email").map(str::to_owned),
                    password_error: failure.field("password").map(str::to_owned),
                    code_error: failure.field("totp").map(str::to_owned),
                    notice: None,
                },
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED),
            )
        }
        Err(Failure::SignedOut) => see_other("/login"),
        Err(Failure::Unavailable(what)) => unavailable(&what),
    }
}

#[derive(Debug, Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    pub csrf: String,
}

pub async fn logout(State(state): State<AppState>, request: Request) -> Response {
    let needs_token = request.extensions().get::<NeedsToken>().is_some();
    let headers = request.headers().clone();
    let Ok(Form(form)) = Form::<CsrfForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let (id, session) = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if needs_token && form.csrf != session.csrf {
        return form_expired();
    }
    // The platform revokes the refresh token; the session is forgotten here whatever it says.
    let _ = state.api.logout(&session).await;
    if let Err(err) = state.sessions.forget(&id).await {
        return unavailable(&err.to_string());
    }
    (
        StatusCode::SEE_OTHER,
        [
            (LOCATION, "/login".to_owned()),
            (SET_COOKIE, state.sessions.cleared()),
        ],
    )
        .into_response()
}

/// An appointment as the pages show it, in the business's time zone.
pub struct Appointment {
    pub booking_id: String,
    pub day: String,
    pub time: String,
    pub service: String,
    pub customer: String,
    pub phone: String,
    pub status: String,
    /// `status-confirmed`, `status-no-show`, ...: how the status looks.
    pub status_class: String,
    pub price: String,
    pub channel: String,
    /// What may be done to it now: (the path's action, the button's label).
    pub actions: Vec<(&'static str, &'static str)>,
    /// A fresh idempotency key for its forms (a form sent twice is one command).
    pub key: String,
    /// Why the last action on it was refused.
    pub error: Option<String>,
}

pub(crate) fn money(minor: i64, currency: &str) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.abs();
    format!("{sign}{}.{:02} {currency}", minor / 100, minor % 100)
}

pub(crate) fn appointment(row: &BookingRow, tz: Tz) -> Appointment {
    let starts = row.starts_at.with_timezone(&tz);
    Appointment {
        booking_id: row.booking_id.to_string(),
        day: starts.format("%a %-d %b").to_string(),
        time: starts.format("%H:%M").to_string(),
        service: row.service_name.clone(),
        customer: row.customer_name.clone().unwrap_or_default(),
        phone: row.customer_phone.clone(),
        status: match (row.status.as_str(), row.arrived_at) {
            ("requested" | "confirmed", Some(at)) => {
                format!("arrived {}", at.with_timezone(&tz).format("%H:%M"))
            }
            (status, _) => status.replace('_', " "),
        },
        status_class: match (row.status.as_str(), row.arrived_at) {
            ("requested" | "confirmed", Some(_)) => "status-arrived".to_owned(),
            (status, _) => format!("status-{}", status.replace('_', "-")),
        },
        price: money(row.price_minor, &row.currency),
        channel: row.channel.clone(),
        actions: actions(&row.status, row.starts_at, row.arrived_at.is_some()),
        key: random_token(),
        error: None,
    }
}

/// What the staff may do to a booking in `status` starting at `starts_at`: confirm a requested
/// one, cancel one still to come, say the customer is here (from two hours before, once), and
/// once it has started, say how it went (a customer who arrived came).
fn actions(
    status: &str,
    starts_at: DateTime<Utc>,
    arrived: bool,
) -> Vec<(&'static str, &'static str)> {
    let now = Utc::now();
    let started = starts_at <= now;
    let arrival_open = !arrived && starts_at - chrono::Duration::hours(2) <= now;
    let mut actions = vec![];
    match (status, started) {
        ("requested" | "confirmed", false) => {
            if status == "requested" {
                actions.push(("confirm", "Confirm"));
            }
            if arrival_open {
                actions.push(("arrived", "Arrived"));
            }
            actions.push(("cancel", "Cancel"));
        }
        ("requested" | "confirmed", true) => {
            if arrival_open {
                actions.push(("arrived", "Arrived"));
            }
            actions.push(("complete", "Came"));
            if !arrived {
                actions.push(("no-show", "Did not come"));
            }
        }
        _ => {}
    }
    actions
}

/// The UTC instant of `day`'s local midnight in `tz` (the earliest, across a DST change).
pub(crate) fn midnight(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0)
        .and_then(|t| t.and_local_timezone(tz).earliest())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
}

/// One figure of the week against the week before.
pub struct Compared {
    pub label: &'static str,
    pub this_week: String,
    pub last_week: String,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub business: String,
    pub csrf: String,
    /// Where a form on the page comes back to without htmx.
    pub back: String,
    pub today: String,
    pub appointments: Vec<Appointment>,
    pub week: Vec<Compared>,
    pub waiting: Vec<ConversationRow>,
    pub unconfirmed: Vec<Appointment>,
    /// (what, used, limit or "no limit", state) when the member may see the plan's usage.
    pub usage: Option<Vec<(&'static str, i64, String, String)>>,
    pub plan: String,
    /// The business's contact email while it is not verified (the page asks to verify it).
    pub unverified_email: Option<String>,
    pub notice: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct HomeQuery {
    #[serde(default)]
    pub notice: Option<String>,
}

pub(crate) fn instant(t: DateTime<Utc>) -> String {
    encoded(&t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HomeQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let tz = m.tz;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let tomorrow = today + chrono::Duration::days(1);
    // The page's six reads at once: the day's appointments, those to confirm, who waits for
    // a person, this week (Monday to today) against the same days of the week before, and
    // the plan's usage.
    let todays_path = format!(
        "/v1/bookings?from={}&to={}&limit=100",
        instant(midnight(today, tz)),
        instant(midnight(tomorrow, tz))
    );
    let unconfirmed_path = format!(
        "/v1/bookings?status=requested&from={}&limit=20",
        instant(Utc::now())
    );
    let inbox_path = "/v1/conversations?waiting=true&limit=100";
    let monday = today - chrono::Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let overview =
        |from: NaiveDate, to: NaiveDate| format!("/v1/analytics/overview?from={from}&to={to}");
    let this_week_path = overview(monday, today);
    let last_week_path = overview(
        monday - chrono::Duration::days(7),
        today - chrono::Duration::days(7),
    );
    let (todays, unconfirmed, inbox, this_week, last_week, billing) = tokio::join!(
        m.read_beside::<Page<BookingRow>>(&state, &todays_path),
        m.read_beside::<Page<BookingRow>>(&state, &unconfirmed_path),
        m.read_beside::<Page<ConversationRow>>(&state, inbox_path),
        m.read_beside::<Overview>(&state, &this_week_path),
        m.read_beside::<Overview>(&state, &last_week_path),
        m.read_beside::<BillingView>(&state, "/v1/billing"),
    );
    let todays = m
        .or_renewed(&state, &todays_path, todays)
        .await
        .map_err(lagging)?;
    let unconfirmed = m
        .or_renewed(&state, &unconfirmed_path, unconfirmed)
        .await
        .map_err(lagging)?;
    let inbox = m
        .or_renewed(&state, inbox_path, inbox)
        .await
        .map_err(lagging)?;
    let this_week = m.or_renewed(&state, &this_week_path, this_week).await;
    let last_week = m.or_renewed(&state, &last_week_path, last_week).await;
    let billing = m.or_renewed(&state, "/v1/billing", billing).await;
    let week = match (this_week, last_week) {
        (Ok(now), Ok(before)) => {
            let revenue = |o: &Overview| {
                let sums: Vec<String> = o
                    .revenue
                    .iter()
                    .map(|r| money(r.expected_minor, &r.currency))
                    .collect();
                if sums.is_empty() {
                    "none".to_owned()
                } else {
                    sums.join(", ")
                }
            };
            vec![
                Compared {
                    label: "Bookings made",
                    this_week: now.bookings_made.total.to_string(),
                    last_week: before.bookings_made.total.to_string(),
                },
                Compared {
                    label: "Appointments",
                    this_week: now.appointments.total.to_string(),
                    last_week: before.appointments.total.to_string(),
                },
                Compared {
                    label: "Cancellations",
                    this_week: now.appointments.cancelled.to_string(),
                    last_week: before.appointments.cancelled.to_string(),
                },
                Compared {
                    label: "No-shows",
                    this_week: now.appointments.no_show.to_string(),
                    last_week: before.appointments.no_show.to_string(),
                },
                Compared {
                    label: "Expected revenue",
                    this_week: revenue(&now),
                    last_week: revenue(&before),
                },
            ]
        }
        // A member without the analytics permission sees the day, not the figures.
        (Err(Failure::Refused { status: 403, .. }), _) => vec![],
        (Err(failure), _) | (_, Err(failure)) => return Err(failed(failure)),
    };
    let (usage, plan) = match billing {
        Ok(b) => {
            let line = |what: &'static str, l: &query_api::billing::UsageLine| {
                (
                    what,
                    l.used,
                    l.limit
                        .map(|n| n.to_string())
                        .unwrap_or_else(|| "no limit".into()),
                    l.state.replace('_', " "),
                )
            };
            (
                Some(vec![
                    line("Bookings this month", &b.usage.bookings),
                    line("WhatsApp messages this month", &b.usage.messages),
                    line("Team seats", &b.usage.staff_seats),
                ]),
                format!("{} ({})", b.plan, b.status.replace('_', " ")),
            )
        }
        Err(Failure::Refused { status: 403, .. }) => (None, m.tenant.plan.clone()),
        Err(failure) => return Err(failed(failure)),
    };
    Ok(render(
        &HomePage {
            business: m.tenant.business_name,
            csrf: m.session.csrf,
            back: "/".into(),
            today: today.format("%A %-d %B %Y").to_string(),
            appointments: todays.items.iter().map(|r| appointment(r, tz)).collect(),
            week,
            waiting: inbox.items.into_iter().filter(|c| c.handed_off).collect(),
            unconfirmed: unconfirmed
                .items
                .iter()
                .map(|r| appointment(r, tz))
                .collect(),
            usage,
            plan,
            unverified_email: (!m.tenant.email_verified).then_some(m.tenant.contact_email),
            notice: query.notice.filter(|n| n.len() <= 200),
        },
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
pub struct BookingsQuery {
    #[serde(default)]
    pub tab: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
    /// The consistency token of the write just made: the list waits for it.
    #[serde(default)]
    pub after: Option<String>,
}

/// The tabs of the bookings page: name, label.
pub const TABS: [(&str, &str); 5] = [
    ("upcoming", "Upcoming"),
    ("action", "Needs action"),
    ("past", "Past 30 days"),
    ("cancelled", "Cancelled"),
    ("no_show", "No-show"),
];

#[derive(Template)]
#[template(path = "bookings.html")]
pub struct BookingsPage {
    pub business: String,
    pub csrf: String,
    pub back: String,
    pub tab: String,
    pub tabs: Vec<(&'static str, &'static str)>,
    pub appointments: Vec<Appointment>,
    pub next: Option<String>,
}

pub async fn bookings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<BookingsQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let tab = query
        .tab
        .filter(|t| TABS.iter().any(|(name, _)| name == t))
        .unwrap_or_else(|| "upcoming".into());
    let now = Utc::now();
    let filter = match tab.as_str() {
        "action" => format!("status=requested&from={}", instant(now)),
        "past" => format!(
            "from={}&to={}",
            instant(now - chrono::Duration::days(30)),
            instant(now)
        ),
        "cancelled" => "status=cancelled".to_owned(),
        "no_show" => "status=no_show".to_owned(),
        _ => format!("from={}", instant(now)),
    };
    let mut path = format!("/v1/bookings?{filter}&limit=25");
    if let Some(cursor) = &query.cursor {
        path.push_str(&format!("&cursor={}", encoded(cursor)));
    }
    let page: Page<BookingRow> = m
        .read_after(&state, &path, query.after.as_deref())
        .await
        .map_err(failed)?;
    let tz = m.tz;
    Ok(render(
        &BookingsPage {
            business: m.tenant.business_name,
            csrf: m.session.csrf,
            back: format!("/bookings?tab={tab}"),
            tabs: TABS.to_vec(),
            // Upcoming: what is still to happen (a cancelled booking is under Cancelled).
            appointments: page
                .items
                .iter()
                .filter(|r| {
                    tab != "upcoming" || matches!(r.status.as_str(), "requested" | "confirmed")
                })
                .map(|r| appointment(r, tz))
                .collect(),
            next: page.next_cursor.map(|c| {
                format!(
                    "/bookings?{}",
                    serde_urlencoded::to_string([("tab", tab.as_str()), ("cursor", &c)])
                        .unwrap_or_default()
                )
            }),
            tab,
        },
        StatusCode::OK,
    ))
}

#[derive(Template)]
#[template(path = "row_fragment.html")]
pub struct RowFragment {
    pub a: Appointment,
    pub csrf: String,
    pub back: String,
}

#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub back: String,
    #[serde(default)]
    pub reason: String,
}

/// `POST /bookings/{id}/{action}`: confirm, cancel (with a reason, which the customer is told),
/// complete or no-show, through the command API. With htmx the answer is the booking's row as
/// it now stands (read with the write's consistency token), or the row with why it was
/// refused; without, a redirect back to the list, which waits for the write.
pub async fn booking_action(
    State(state): State<AppState>,
    Path((booking, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let needs_token = request.extensions().get::<NeedsToken>().is_some();
    let headers = request.headers().clone();
    let htmx = headers.contains_key("hx-request");
    let Ok(Form(form)) = Form::<ActionForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let (id, mut session) = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if needs_token && form.csrf != session.csrf {
        return form_expired();
    }
    let Ok(booking_id) = booking.parse::<uuid::Uuid>() else {
        return not_found();
    };
    let body = match action.as_str() {
        "cancel" => match form.reason.trim() {
            "" => serde_json::json!({}),
            reason => serde_json::json!({"reason": reason}),
        },
        "confirm" | "arrived" | "complete" | "no-show" => serde_json::json!({}),
        _ => return not_found(),
    };
    let key = if form.key.is_empty() {
        random_token()
    } else {
        form.key.chars().take(200).collect()
    };
    let back = Some(form.back.as_str())
        .filter(|b| b.starts_with('/') && !b.starts_with("//"))
        .unwrap_or("/bookings")
        .to_owned();
    let written = state
        .api
        .write(
            &state.sessions,
            &id,
            &mut session,
            &format!("/v1/bookings/{booking_id}/{action}"),
            body,
            &key,
        )
        .await;
    let (token, refused) = match written {
        Ok(answer) => (
            answer["consistency_token"].as_str().map(str::to_owned),
            None,
        ),
        Err(Failure::Refused { detail, fields, .. }) => {
            let why = fields
                .first()
                .map(|(_, message)| format!("{detail} ({message})"))
                .unwrap_or(detail);
            (None, Some(why))
        }
        Err(failure) => return failed(failure),
    };
    if !htmx {
        return match (refused, token) {
            (Some(why), _) => failed(Failure::Refused {
                status: 409,
                detail: why,
                fields: vec![],
                kind: String::new(),
            }),
            (None, token) => {
                let sep = if back.contains('?') { '&' } else { '?' };
                see_other(&format!(
                    "{back}{sep}after={}",
                    encoded(&token.unwrap_or_default())
                ))
            }
        };
    }
    let mut m = match Member::with_business(&state, id, session).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let detail: query_api::bookings::BookingDetail = match m
        .read_after(
            &state,
            &format!("/v1/bookings/{booking_id}"),
            token.as_deref(),
        )
        .await
    {
        Ok(detail) => detail,
        Err(failure) => return failed(failure),
    };
    let mut a = appointment(&detail.booking, m.tz);
    a.error = refused;
    render(
        &RowFragment {
            a,
            csrf: m.session.csrf,
            back,
        },
        StatusCode::OK,
    )
}

/// A conversation in the inbox list.
pub struct InboxEntry {
    pub name: String,
    pub phone: String,
    /// The phone as a path segment (`+` encoded).
    pub phone_path: String,
    pub waiting: bool,
    /// Someone of the business took it over (else the customer asked for a person).
    pub taken: bool,
    /// The customer asked to have their data deleted.
    pub erasure_requested: bool,
    pub outbound: bool,
    pub preview: String,
    pub at: String,
}

#[derive(Template)]
#[template(path = "inbox.html")]
pub struct InboxPage {
    pub business: String,
    pub csrf: String,
    pub conversations: Vec<InboxEntry>,
    /// A customer was just erased (said above the list).
    pub erased: bool,
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct InboxQuery {
    #[serde(default)]
    pub cursor: Option<String>,
    /// The consistency token of a write the page must show (an erasure).
    #[serde(default)]
    pub after: Option<String>,
    /// A customer was just erased.
    #[serde(default)]
    pub erased: Option<String>,
}

/// Whether `phone` is the stand-in of an erased customer.
fn erased(phone: &str) -> bool {
    domain::values::PhoneNumber::parse(phone).is_ok_and(|p| domain::personal::is_erased(&p))
}

pub(crate) fn phone_path(phone: &str) -> String {
    phone.replace('+', "%2B")
}

/// When, in the business's time zone: the time today, else the day too.
pub(crate) fn when(at: DateTime<Utc>, tz: Tz) -> String {
    let local = at.with_timezone(&tz);
    if local.date_naive() == Utc::now().with_timezone(&tz).date_naive() {
        local.format("%H:%M").to_string()
    } else {
        local.format("%-d %b %H:%M").to_string()
    }
}

/// `GET /inbox`: the conversations, latest first, those waiting for a person at the top.
pub async fn inbox(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<InboxQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let tz = m.tz;
    let mut path = "/v1/conversations?limit=50".to_owned();
    if let Some(cursor) = &query.cursor {
        path.push_str(&format!("&cursor={}", encoded(cursor)));
    }
    // Those waiting for a person head the first page; the rest follow, latest first.
    let waiting: Vec<ConversationRow> = match &query.cursor {
        None => {
            let page: Page<ConversationRow> = m
                .read_after(
                    &state,
                    "/v1/conversations?waiting=true&limit=100",
                    query.after.as_deref(),
                )
                .await
                .map_err(failed)?;
            page.items
        }
        Some(_) => vec![],
    };
    let page: Page<ConversationRow> = m.read(&state, &path).await.map_err(failed)?;
    let entry = |c: ConversationRow| {
        // An erased customer's row is kept (their bookings still count), under a stand-in.
        let (name, phone) = if erased(&c.customer_phone) {
            ("Erased customer".to_owned(), String::new())
        } else {
            (
                c.profile_name
                    .clone()
                    .unwrap_or_else(|| c.customer_phone.clone()),
                c.customer_phone.clone(),
            )
        };
        InboxEntry {
            name,
            phone_path: phone_path(&c.customer_phone),
            phone,
            waiting: c.handed_off || c.erasure_requested_at.is_some(),
            taken: c.taken_over_by.is_some(),
            erasure_requested: c.erasure_requested_at.is_some(),
            outbound: c.last_direction == "out",
            preview: c.last_preview,
            at: when(c.last_message_at, tz),
        }
    };
    let conversations: Vec<InboxEntry> = waiting
        .into_iter()
        .map(entry)
        .chain(
            page.items
                .into_iter()
                .filter(|c| !c.handed_off && c.erasure_requested_at.is_none())
                .map(entry),
        )
        .collect();
    Ok(render(
        &InboxPage {
            business: m.tenant.business_name,
            csrf: m.session.csrf,
            conversations,
            erased: query.erased.is_some(),
            next: page.next_cursor.map(|c| {
                format!(
                    "/inbox?{}",
                    serde_urlencoded::to_string([("cursor", &c)]).unwrap_or_default()
                )
            }),
        },
        StatusCode::OK,
    ))
}

/// One message of a thread, as the customer and the business see it.
pub struct Message {
    pub outbound: bool,
    /// Who of the business wrote it: the bot, you, or a colleague.
    pub author: &'static str,
    pub by_staff: bool,
    pub text: String,
    /// The reply buttons or list rows the customer was offered.
    pub choices: Vec<String>,
    pub at: String,
    /// `sent`, `delivered`, `read`, `failed`, or `queued` until WhatsApp took it.
    pub status: String,
    pub error: Option<String>,
}

/// What a stored message says: a text, a reply's body, a tapped button's title, a template by
/// its name and parameters.
fn message_text(content: &serde_json::Value) -> (String, Vec<String>) {
    let titles = |key: &str| -> Vec<String> {
        content[key]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["title"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut choices = titles("buttons");
    choices.extend(titles("rows"));
    if let Some(sections) = content["sections"].as_array() {
        for section in sections {
            choices.extend(
                section["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|r| r["title"].as_str().map(str::to_owned)),
            );
        }
    }
    let text =
        if let (Some(name), Some(parts)) = (content["name"].as_str(), content["body"].as_array()) {
            let parts: Vec<&str> = parts.iter().filter_map(|p| p.as_str()).collect();
            format!("[template {name}] {}", parts.join(" · "))
        } else if let Some(body) = content["body"].as_str() {
            body.to_owned()
        } else if let Some(title) = content["title"].as_str() {
            title.to_owned()
        } else if let Some(kind) = content["message_type"].as_str() {
            format!("({kind})")
        } else {
            String::new()
        };
    (text, choices)
}

#[derive(Template)]
#[template(path = "conversation.html")]
pub struct ConversationPage {
    pub business: String,
    pub csrf: String,
    pub name: String,
    pub phone: String,
    pub phone_path: String,
    pub handed_off: bool,
    /// Who answers the customer now, in a sentence.
    pub who_answers: String,
    /// WhatsApp's 24-hour window, in a sentence: how long is left, or what a reply goes as.
    pub window: String,
    /// The bot is answering, or someone else took it over.
    pub can_take_over: bool,
    /// When the customer asked to have their data deleted, in the business's time.
    pub erasure_requested: Option<String>,
    pub messages: Vec<Message>,
    /// Idempotency keys of this page's forms start with it: a form sent twice acts once.
    pub key: String,
    /// What was typed, kept when the reply was refused.
    pub draft: String,
    /// Why the reply (or the action) was refused.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ConversationQuery {
    /// The consistency token of the write this page follows.
    #[serde(default)]
    pub after: Option<String>,
}

/// `GET /inbox/{phone}?after=`: one customer's thread, the bot's and the business's replies
/// with WhatsApp's delivery ticks, who answers the customer (the bot or a person) and how long
/// the business may write freely; htmx polls it every 5 s while open.
pub async fn conversation(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(phone): Path<String>,
    Query(query): Query<ConversationQuery>,
) -> Result<Response, Response> {
    let m = Member::of(&state, &headers).await?;
    show_conversation(
        &state,
        m,
        &phone,
        query.after.as_deref(),
        Composer::default(),
    )
    .await
}

/// What the reply box shows besides the thread.
#[derive(Default)]
struct Composer {
    draft: String,
    error: Option<String>,
}

/// How long is left, in hours and minutes.
fn left(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(1);
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

async fn show_conversation(
    state: &AppState,
    mut m: Member,
    phone: &str,
    after: Option<&str>,
    composer: Composer,
) -> Result<Response, Response> {
    let tz = m.tz;
    let me = m.session.actor();
    let detail: query_api::conversations::ConversationDetail = m
        .read_after(
            state,
            &format!("/v1/conversations/{}", phone_path(phone)),
            after,
        )
        .await
        .map_err(failed)?;
    let messages = detail
        .messages
        .iter()
        .map(|message| {
            let (text, choices) = message_text(&message.content);
            let author = match &message.sent_by {
                None => "Bot",
                Some(by) if Some(by) == me.as_ref() => "You",
                Some(_) => "Team",
            };
            Message {
                outbound: message.direction == "out",
                author,
                by_staff: message.sent_by.is_some(),
                text,
                choices,
                at: when(message.at, tz),
                status: message.status.clone().unwrap_or_else(|| "queued".into()),
                error: message.error_reason.clone(),
            }
        })
        .collect();
    let c = detail.conversation;
    let name = c.profile_name.unwrap_or_else(|| c.customer_phone.clone());
    let mine = c.taken_over_by.is_some() && c.taken_over_by == me;
    let who_answers = match (c.handed_off, &c.taken_over_by) {
        (false, _) => "The bot is answering.".to_owned(),
        (true, Some(_)) if mine => format!("You are answering {name}: the bot is quiet."),
        (true, Some(_)) => "A colleague is answering: the bot is quiet.".to_owned(),
        (true, None) => format!("{name} asked for a person: the bot is quiet."),
    };
    let now = Utc::now();
    let window = match c.window_closes_at {
        Some(closes) if closes > now => format!(
            "You can write freely for {} more (until {}): WhatsApp's 24-hour window since {name} last wrote.",
            left(closes - now),
            when(closes, tz)
        ),
        Some(_) => format!(
            "WhatsApp's 24-hour window since {name} last wrote has closed: a reply goes as your follow-up template, if the bot has one."
        ),
        None => format!(
            "{name} has not written yet: a reply goes as your follow-up template, if the bot has one."
        ),
    };
    Ok(render(
        &ConversationPage {
            business: m.tenant.business_name,
            csrf: m.session.csrf,
            phone_path: phone_path(&c.customer_phone),
            phone: c.customer_phone,
            handed_off: c.handed_off,
            can_take_over: !mine,
            erasure_requested: c.erasure_requested_at.map(|at| when(at, tz)),
            who_answers,
            window,
            name,
            messages,
            key: random_token(),
            draft: composer.draft,
            error: composer.error,
        },
        StatusCode::OK,
    ))
}

#[derive(Debug, Deserialize)]
pub struct ConversationForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub text: String,
    /// The erasure's confirmation ("yes").
    #[serde(default)]
    pub sure: String,
}

/// `POST /inbox/{phone}/{action}`: take over, reply, or hand back, through the command API.
/// Done, the conversation is shown as it now stands (read with the write's consistency token;
/// without htmx, through a redirect); refused, with why next to the reply box and what was
/// typed kept.
pub async fn conversation_action(
    State(state): State<AppState>,
    Path((phone, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let needs_token = request.extensions().get::<NeedsToken>().is_some();
    let headers = request.headers().clone();
    let htmx = headers.contains_key("hx-request");
    let Ok(Form(form)) = Form::<ConversationForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let (id, mut session) = match signed_in(&state, &headers).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if needs_token && form.csrf != session.csrf {
        return form_expired();
    }
    let (command, body) = match action.as_str() {
        "take-over" => ("handoff", serde_json::json!({})),
        "reply" => ("messages", serde_json::json!({"text": form.text})),
        "hand-back" => ("release", serde_json::json!({})),
        "erase" => ("erase", serde_json::json!({})),
        _ => return not_found(),
    };
    // Erasing is the customer's, not the conversation's, and leaves no conversation to show.
    let (path, erasing) = match command {
        "erase" => (format!("/v1/customers/{}/erase", phone_path(&phone)), true),
        _ => (
            format!("/v1/conversations/{}/{command}", phone_path(&phone)),
            false,
        ),
    };
    let key = if form.key.is_empty() {
        random_token()
    } else {
        form.key.chars().take(200).collect()
    };
    let written = if erasing && form.sure != "yes" {
        // The browser asks for the box; a request without it erases nothing.
        Err(Failure::Refused {
            status: 422,
            detail: "Tick the box to confirm: erasing a customer cannot be undone.".into(),
            fields: vec![],
            kind: "invalid-field".into(),
        })
    } else {
        state
            .api
            .write(&state.sessions, &id, &mut session, &path, body, &key)
            .await
    };
    let written = match written {
        Ok(answer) if erasing => {
            return see_other(&format!(
                "/inbox?erased=1&after={}",
                encoded(answer["consistency_token"].as_str().unwrap_or_default())
            ));
        }
        // Refused for the box, the page says why; otherwise as any failed request.
        Err(failure) if erasing && !matches!(failure, Failure::Refused { status: 422, .. }) => {
            return failed(failure);
        }
        written => written,
    };
    let (token, composer) = match written {
        Ok(answer) => (
            answer["consistency_token"].as_str().map(str::to_owned),
            Composer::default(),
        ),
        Err(Failure::Refused {
            status: 404,
            detail,
            fields,
            kind,
        }) => {
            return failed(Failure::Refused {
                status: 404,
                detail,
                fields,
                kind,
            });
        }
        Err(failure @ Failure::Refused { .. }) => {
            // The API's word on the reply box if it named it, else on the request.
            let why = match (failure.field("text"), &failure) {
                (Some(why), _) => why.to_owned(),
                (None, Failure::Refused { detail, .. }) => detail.clone(),
                (None, _) => String::new(),
            };
            (
                None,
                Composer {
                    draft: form.text,
                    error: Some(why),
                },
            )
        }
        Err(failure) => return failed(failure),
    };
    if composer.error.is_none() && !htmx {
        return see_other(&format!(
            "/inbox/{}?after={}",
            phone_path(&phone),
            encoded(&token.unwrap_or_default())
        ));
    }
    let refused = composer.error.is_some();
    let m = match Member::with_business(&state, id, session).await {
        Ok(m) => m,
        Err(response) => return response,
    };
    let page = match show_conversation(&state, m, &phone, token.as_deref(), composer).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    if refused && !htmx {
        // Without htmx the page itself says why; its status says it was refused.
        let (mut parts, body) = page.into_parts();
        parts.status = StatusCode::UNPROCESSABLE_ENTITY;
        return Response::from_parts(parts, body);
    }
    page
}

/// One line of the audit log.
pub struct AuditLine {
    pub at: String,
    pub event_type: String,
    pub stream: String,
    pub actor: String,
    /// The first 8 characters of the correlation id: the request it came from.
    pub correlation: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPageView {
    pub business: String,
    pub csrf: String,
    pub entries: Vec<AuditLine>,
    pub next: Option<String>,
    /// The latest security events (on the first page).
    pub security: Vec<SecurityLine>,
}

/// One security event, as the audit page says it.
pub struct SecurityLine {
    pub at: String,
    pub what: String,
    pub who: String,
    pub source: String,
}

/// A security event in words.
fn security_line(e: &query_api::security::SecurityEventRow, tz: Tz) -> SecurityLine {
    let detail = &e.detail;
    let what = match e.kind.as_str() {
        "refused" => format!(
            "Refused {} {} ({})",
            detail["method"].as_str().unwrap_or_default(),
            detail["route"].as_str().unwrap_or_default(),
            detail["status"]
        ),
        "login_failed" => format!(
            "Wrong password for {}",
            detail["account"].as_str().unwrap_or_default()
        ),
        "login_throttled" => format!(
            "Sign-in held back for {} (too many wrong passwords from there)",
            detail["account"].as_str().unwrap_or_default()
        ),
        "customer_exported" => "A customer's data was exported".to_owned(),
        "customer_erased" => "A customer was erased".to_owned(),
        "operator_read_audit" => "The platform's operators read this log".to_owned(),
        other => other.replace('_', " "),
    };
    SecurityLine {
        at: e
            .at
            .with_timezone(&tz)
            .format("%-d %b %Y %H:%M:%S")
            .to_string(),
        what,
        who: e.actor.clone().unwrap_or_default(),
        source: e.source.clone().unwrap_or_default(),
    }
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    pub after: Option<String>,
}

/// Events a page of the audit log shows.
const AUDIT_PAGE: usize = 50;

/// `GET /audit?after=`: the business's own log, oldest first, a page at a time (owners and
/// admins).
pub async fn audit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<AuditQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let tz = m.tz;
    let mut path = format!("/v1/audit?limit={AUDIT_PAGE}");
    if let Some(after) = &query.after {
        path.push_str(&format!("&after={}", encoded(after)));
    }
    let page: query_api::audit::AuditPage = m.read(&state, &path).await.map_err(failed)?;
    let full = page.items.len() >= AUDIT_PAGE;
    let security = match &query.after {
        None => {
            let events: query_api::paging::Page<query_api::security::SecurityEventRow> = m
                .read(&state, "/v1/security-events?limit=20")
                .await
                .map_err(failed)?;
            events.items.iter().map(|e| security_line(e, tz)).collect()
        }
        Some(_) => vec![],
    };
    Ok(render(
        &AuditPageView {
            business: m.tenant.business_name,
            csrf: m.session.csrf,
            entries: page
                .items
                .iter()
                .map(|e| AuditLine {
                    at: e
                        .recorded_at
                        .with_timezone(&tz)
                        .format("%-d %b %Y %H:%M:%S")
                        .to_string(),
                    event_type: e.event_type.clone(),
                    stream: e.stream.clone(),
                    actor: e.actor.clone().unwrap_or_default(),
                    correlation: e
                        .correlation_id
                        .map(|c| c.to_string()[..8].to_owned())
                        .unwrap_or_default(),
                })
                .collect(),
            next: page.next_after.filter(|_| full).map(|after| {
                format!(
                    "/audit?{}",
                    serde_urlencoded::to_string([("after", &after)]).unwrap_or_default()
                )
            }),
            security,
        },
        StatusCode::OK,
    ))
}

/// The vendored and own static files, compiled in; cached for a year (their names change
/// with their versions).
pub async fn asset(Path(path): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match path.as_str() {
        "app.css" => (include_bytes!("../static/app.css"), "text/css"),
        "vendor/htmx/htmx.min.js" => (
            include_bytes!("../static/vendor/htmx/htmx.min.js"),
            "text/javascript",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (CONTENT_TYPE, kind),
            (CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::actions;
    use chrono::{Duration, Utc};

    #[test]
    fn arrival_is_offered_from_two_hours_before_once_and_an_arrived_customer_came() {
        let in_an_hour = Utc::now() + Duration::hours(1);
        let in_three_hours = Utc::now() + Duration::hours(3);
        let an_hour_ago = Utc::now() - Duration::hours(1);
        let names = |a: Vec<(&'static str, &'static str)>| {
            a.into_iter().map(|(n, _)| n).collect::<Vec<_>>()
        };
        assert_eq!(
            names(actions("requested", in_three_hours, false)),
            ["confirm", "cancel"]
        );
        assert_eq!(
            names(actions("confirmed", in_an_hour, false)),
            ["arrived", "cancel"]
        );
        assert_eq!(names(actions("confirmed", in_an_hour, true)), ["cancel"]);
        assert_eq!(
            names(actions("confirmed", an_hour_ago, false)),
            ["arrived", "complete", "no-show"]
        );
        assert_eq!(names(actions("confirmed", an_hour_ago, true)), ["complete"]);
        assert!(actions("cancelled", in_an_hour, false).is_empty());
    }
}
