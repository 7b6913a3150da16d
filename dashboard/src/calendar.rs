//! The Calendar: a day with a column per staff member (or one column when the business has no
//! staff list) and a row per half hour of its opening hours, or a week with a column per day;
//! a free half hour books a walk-in or phone customer, a booking opens on its own page, where
//! it is confirmed, moved, cancelled or marked as it went, with its history.
//!
//! Server-rendered like every page: a table of half hours is what a screen reader and a
//! keyboard handle well, and it needs no script (the issue suggested a vendored calendar
//! widget; the grid here does the same job without one).

use askama::Template;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Datelike as _, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use domain::bot_config::BotSettings;
use query_api::bookings::{BookingDetail, BookingRow};
use query_api::catalog::{BotConfigView, ServicesView};
use query_api::paging::Page;
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::pages::{
    Appointment, Member, appointment, encoded, failed, instant, member_form, midnight, render,
    see_other,
};
use crate::session::random_token;

/// A row of the day view.
const STEP_MINUTES: i64 = 30;
/// Bookings read for one view, at most (pages of 200).
const MOST: usize = 1000;
/// The resource of a business without a staff list.
fn default_resource() -> String {
    domain::ids::ResourceId::default_resource()
        .as_str()
        .to_owned()
}

/// A booking as a block on the calendar.
pub struct Block {
    pub booking_id: String,
    /// `10:00–10:45`, in the business's time zone.
    pub time: String,
    pub service: String,
    pub customer: String,
    pub status: String,
    pub status_class: String,
    /// Whose column it is in, for the week view.
    pub with: String,
}

/// One half hour of one column: the bookings starting in it, whether one started before runs
/// through it, and where to book it if it is free.
pub struct Cell {
    pub blocks: Vec<Block>,
    pub busy: bool,
    pub book: Option<String>,
    /// What the book link says to a screen reader: `Book 10:00 with Ana`.
    pub book_label: String,
}

pub struct Row {
    pub time: String,
    pub cells: Vec<Cell>,
}

pub struct WeekDay {
    pub label: String,
    pub href: String,
    pub today: bool,
    pub blocks: Vec<Block>,
}

#[derive(Template)]
#[template(path = "calendar.html")]
pub struct CalendarPage {
    pub business: String,
    pub csrf: String,
    pub week: bool,
    pub title: String,
    pub date: String,
    pub previous: String,
    pub next: String,
    pub today: String,
    pub other_view: String,
    pub columns: Vec<String>,
    pub rows: Vec<Row>,
    pub days: Vec<WeekDay>,
    /// The day is closed (its rows are the usual hours, with nothing to book).
    pub closed: bool,
}

#[derive(Debug, Deserialize)]
pub struct CalendarQuery {
    #[serde(default)]
    pub date: Option<NaiveDate>,
    #[serde(default)]
    pub view: Option<String>,
    /// The consistency token of the write this page follows.
    #[serde(default)]
    pub after: Option<String>,
}

/// The business's settings, if it has configured its bot, and the time zone its hours and
/// bookings are in (the settings', else the business profile's).
async fn settings(state: &AppState, m: &mut Member) -> Result<(Option<BotSettings>, Tz), Response> {
    let config: BotConfigView = match m.read(state, "/v1/bot-config").await {
        Ok(config) => config,
        Err(Failure::Refused { status: 404, .. }) => return Ok((None, m.tz)),
        Err(failure) => return Err(failed(failure)),
    };
    let settings = config
        .settings
        .and_then(|s| serde_json::from_value::<BotSettings>(s).ok());
    let tz = settings
        .as_ref()
        .and_then(|s| s.time_zone.as_str().parse().ok())
        .unwrap_or(m.tz);
    Ok((settings, tz))
}

/// The columns: each staff member, or the one default resource; then any resource a booking
/// names that the list no longer has.
fn columns(settings: Option<&BotSettings>, bookings: &[BookingRow]) -> Vec<(String, String)> {
    let mut columns: Vec<(String, String)> = settings
        .map(|s| {
            s.staff
                .iter()
                .map(|m| (m.id.as_str().to_owned(), m.name.clone()))
                .collect()
        })
        .unwrap_or_default();
    if columns.is_empty() {
        columns.push((default_resource(), "Appointments".to_owned()));
    }
    for b in bookings {
        if !columns.iter().any(|(id, _)| *id == b.resource) {
            columns.push((b.resource.clone(), b.resource.clone()));
        }
    }
    columns
}

/// Every booking starting in `[from, to)` that still takes time (not cancelled).
async fn bookings_between(
    state: &AppState,
    m: &mut Member,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    after: Option<&str>,
) -> Result<Vec<BookingRow>, Response> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/v1/bookings?from={}&to={}&limit=200",
            instant(from),
            instant(to)
        );
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={}", encoded(c)));
        }
        let page: Page<BookingRow> = m.read_after(state, &path, after).await.map_err(failed)?;
        rows.extend(page.items);
        match page.next_cursor {
            Some(next) if rows.len() < MOST => cursor = Some(next),
            _ => break,
        }
    }
    rows.retain(|b| b.status != "cancelled");
    Ok(rows)
}

fn block(b: &BookingRow, tz: Tz, with: &str) -> Block {
    let a: Appointment = appointment(b, tz);
    Block {
        booking_id: a.booking_id,
        time: format!(
            "{}–{}",
            a.time,
            b.ends_at.with_timezone(&tz).format("%H:%M")
        ),
        service: a.service,
        customer: if a.customer.is_empty() {
            a.phone
        } else {
            a.customer
        },
        status: a.status,
        status_class: a.status_class,
        with: with.to_owned(),
    }
}

/// The instant of `time` on `day` in `tz` (the earlier one across a DST change).
fn at(day: NaiveDate, time: NaiveTime, tz: Tz) -> Option<DateTime<Utc>> {
    day.and_time(time)
        .and_local_timezone(tz)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// The hours the day view spans: from the earliest opening to the latest closing of the
/// business or any of its staff that day (08:00 to 20:00 when closed or not configured), and
/// whether it is open at all.
fn span(settings: Option<&BotSettings>, day: NaiveDate) -> (NaiveTime, NaiveTime, bool) {
    let fallback = (
        NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
        NaiveTime::from_hms_opt(20, 0, 0).unwrap_or_default(),
    );
    let Some(settings) = settings else {
        return (fallback.0, fallback.1, false);
    };
    let weekday = day.weekday();
    let mut ranges: Vec<(NaiveTime, NaiveTime)> = settings
        .hours
        .on(weekday)
        .iter()
        .map(|r| (r.open.naive(), r.close.naive()))
        .collect();
    for member in &settings.staff {
        if let Some(hours) = &member.hours {
            ranges.extend(
                hours
                    .on(weekday)
                    .iter()
                    .map(|r| (r.open.naive(), r.close.naive())),
            );
        }
    }
    match (
        ranges.iter().map(|r| r.0).min(),
        ranges.iter().map(|r| r.1).max(),
    ) {
        (Some(open), Some(close)) => (open, close, true),
        _ => (fallback.0, fallback.1, false),
    }
}

/// `GET /calendar?date=&view=day|week&after=`.
pub async fn calendar(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<CalendarQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let (settings, tz) = settings(&state, &mut m).await?;
    let today = Utc::now().with_timezone(&tz).date_naive();
    let date = query.date.unwrap_or(today);
    let week = query.view.as_deref() == Some("week");
    let href = |d: NaiveDate, view: &str| format!("/calendar?date={d}&view={view}");
    let (first, days) = if week {
        let monday = date - Duration::days(i64::from(date.weekday().num_days_from_monday()));
        (monday, 7)
    } else {
        (date, 1)
    };
    let bookings = bookings_between(
        &state,
        &mut m,
        midnight(first, tz),
        midnight(first + Duration::days(days), tz),
        query.after.as_deref(),
    )
    .await?;
    let columns = columns(settings.as_ref(), &bookings);
    let name_of = |resource: &str| {
        columns
            .iter()
            .find(|(id, _)| id == resource)
            .map(|(_, name)| name.clone())
            .unwrap_or_else(|| resource.to_owned())
    };
    let now = Utc::now();
    let (mut rows, mut week_days, mut closed) = (Vec::new(), Vec::new(), false);
    if week {
        for offset in 0..7 {
            let day = first + Duration::days(offset);
            let (from, to) = (midnight(day, tz), midnight(day + Duration::days(1), tz));
            week_days.push(WeekDay {
                label: day.format("%a %-d %b").to_string(),
                href: href(day, "day"),
                today: day == today,
                blocks: bookings
                    .iter()
                    .filter(|b| b.starts_at >= from && b.starts_at < to)
                    .map(|b| block(b, tz, &name_of(&b.resource)))
                    .collect(),
            });
        }
    } else {
        let (open, close, is_open) = span(settings.as_ref(), date);
        closed = !is_open;
        let mut time = open;
        while time < close {
            let Some(start) = at(date, time, tz) else {
                time += Duration::minutes(STEP_MINUTES);
                continue;
            };
            let end = start + Duration::minutes(STEP_MINUTES);
            let cells = columns
                .iter()
                .map(|(resource, name)| {
                    let mine = bookings.iter().filter(|b| b.resource == *resource);
                    let blocks: Vec<Block> = mine
                        .clone()
                        .filter(|b| b.starts_at >= start && b.starts_at < end)
                        .map(|b| block(b, tz, name))
                        .collect();
                    let busy = mine
                        .clone()
                        .any(|b| b.starts_at < start && b.ends_at > start);
                    let free = blocks.is_empty() && !busy && is_open && start > now;
                    let hm = time.format("%H:%M").to_string();
                    Cell {
                        book: free.then(|| {
                            format!(
                                "/bookings/new?date={date}&time={}&resource={}",
                                encoded(&hm),
                                encoded(resource)
                            )
                        }),
                        book_label: format!("Book {hm} with {name}"),
                        blocks,
                        busy,
                    }
                })
                .collect();
            rows.push(Row {
                time: time.format("%H:%M").to_string(),
                cells,
            });
            let next = time + Duration::minutes(STEP_MINUTES);
            if next <= time {
                break; // past midnight
            }
            time = next;
        }
    }
    let step = if week { 7 } else { 1 };
    let view = if week { "week" } else { "day" };
    let title = if week {
        format!("Week of {}", first.format("%-d %B %Y"))
    } else {
        date.format("%A %-d %B %Y").to_string()
    };
    Ok(render(
        &CalendarPage {
            business: m.tenant.business_name,
            csrf: m.session.csrf,
            week,
            title,
            date: date.to_string(),
            previous: href(date - Duration::days(step), view),
            next: href(date + Duration::days(step), view),
            today: href(today, view),
            other_view: href(date, if week { "day" } else { "week" }),
            columns: columns.into_iter().map(|(_, name)| name).collect(),
            rows,
            days: week_days,
            closed,
        },
        StatusCode::OK,
    ))
}

/// A choice in a select: value, label, selected.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "new_booking.html")]
pub struct NewBookingPage {
    pub business: String,
    pub csrf: String,
    pub key: String,
    pub services: Vec<Choice>,
    pub staff: Vec<Choice>,
    pub date: String,
    pub time: String,
    pub phone: String,
    pub name: String,
    pub confirm: bool,
    pub error: Option<String>,
    pub service_error: Option<String>,
    pub time_error: Option<String>,
    pub staff_error: Option<String>,
    pub phone_error: Option<String>,
    pub name_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct NewBookingForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub time: String,
    #[serde(default)]
    pub resource: String,
    #[serde(default)]
    pub phone: String,
    #[serde(default)]
    pub name: String,
    /// A checkbox: present when ticked.
    #[serde(default)]
    pub confirm: Option<String>,
}

/// The form's choices: the active services and the staff, with the form's own picked.
async fn new_booking_page(
    state: &AppState,
    m: &mut Member,
    form: &NewBookingForm,
) -> Result<(NewBookingPage, Tz), Response> {
    let services: ServicesView = m.read(state, "/v1/services").await.map_err(failed)?;
    let (settings, tz) = settings(state, m).await?;
    let mut staff = vec![Choice {
        value: String::new(),
        label: "Anyone free".into(),
        selected: form.resource.is_empty() || form.resource == default_resource(),
    }];
    staff.extend(settings.iter().flat_map(|s| &s.staff).map(|member| Choice {
        value: member.id.as_str().to_owned(),
        label: member.name.clone(),
        selected: form.resource == member.id.as_str(),
    }));
    let page = NewBookingPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        key: if form.key.is_empty() {
            random_token()
        } else {
            form.key.clone()
        },
        services: services
            .services
            .iter()
            .filter(|s| s.active)
            .map(|s| Choice {
                value: s.id.to_string(),
                label: format!("{} ({} min)", s.name, s.duration.minutes()),
                selected: form.service == s.id.to_string(),
            })
            .collect(),
        staff,
        date: form.date.clone(),
        time: form.time.clone(),
        phone: form.phone.clone(),
        name: form.name.clone(),
        confirm: form.confirm.is_some() || form.key.is_empty(),
        error: None,
        service_error: None,
        time_error: None,
        staff_error: None,
        phone_error: None,
        name_error: None,
    };
    Ok((page, tz))
}

/// `GET /bookings/new?date=&time=&resource=`: booking a walk-in or phone customer, the time
/// and person picked from the calendar.
pub async fn new_booking(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(form): Query<NewBookingForm>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let form = NewBookingForm {
        key: String::new(),
        ..form
    };
    let (page, _) = new_booking_page(&state, &mut m, &form).await?;
    Ok(render(&page, StatusCode::OK))
}

/// The UTC instant of a date and time typed in the business's time zone.
fn typed_instant(date: &str, time: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let day = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    let time = NaiveTime::parse_from_str(time.trim(), "%H:%M").ok()?;
    at(day, time, tz)
}

/// `POST /bookings/new`: books through the command API; done, the calendar of that day (read
/// with the write's consistency token); refused, the form again with what was typed and why,
/// next to the field at fault.
pub async fn create_booking(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, form) = match member_form::<NewBookingForm>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (mut page, tz) = match new_booking_page(&state, &mut m, &form).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let Some(start) = typed_instant(&form.date, &form.time, tz) else {
        page.time_error = Some("Pick a day and a time.".into());
        return render(&page, StatusCode::UNPROCESSABLE_ENTITY);
    };
    let mut customer = serde_json::json!({"phone": form.phone.trim()});
    if !form.name.trim().is_empty() {
        customer["name"] = form.name.trim().into();
    }
    let mut body = serde_json::json!({
        "service_id": form.service,
        "start": start,
        "customer": customer,
        "confirm": form.confirm.is_some(),
    });
    if !form.resource.is_empty() {
        body["resource"] = form.resource.clone().into();
    }
    let key: String = form.key.chars().take(200).collect();
    let written = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/bookings",
            body,
            &key,
        )
        .await;
    match written {
        Ok(answer) => see_other(&format!(
            "/calendar?date={}&view=day&after={}",
            form.date.trim(),
            encoded(answer["consistency_token"].as_str().unwrap_or_default())
        )),
        Err(failure @ Failure::Refused { .. }) => {
            page.service_error = failure.field("service_id").map(str::to_owned);
            page.time_error = failure.field("start").map(str::to_owned);
            page.staff_error = failure.field("resource").map(str::to_owned);
            page.phone_error = failure.field("customer.phone").map(str::to_owned);
            page.name_error = failure.field("customer.name").map(str::to_owned);
            let Failure::Refused { status, detail, .. } = failure else {
                unreachable!("matched above")
            };
            if status == 409 {
                page.time_error = Some(format!("{detail}: pick another time or person."));
            } else {
                page.error = Some(detail);
            }
            render(
                &page,
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            )
        }
        Err(failure) => failed(failure),
    }
}

/// A line of a booking's history.
pub struct HistoryLine {
    pub at: String,
    pub what: String,
    pub who: String,
}

#[derive(Template)]
#[template(path = "booking.html")]
pub struct BookingPage {
    pub business: String,
    pub csrf: String,
    pub a: Appointment,
    pub reference: String,
    pub ends: String,
    pub with: String,
    pub date: String,
    pub calendar: String,
    /// It can still be moved (requested or confirmed, and to come).
    pub movable: bool,
    pub move_date: String,
    pub move_time: String,
    pub move_error: Option<String>,
    pub history: Vec<HistoryLine>,
}

#[derive(Debug, Deserialize)]
pub struct BookingQuery {
    #[serde(default)]
    pub after: Option<String>,
}

/// What an event of a booking's history says; `None` for the platform's own bookkeeping
/// (the reminders it schedules), which is not something anyone did.
fn what_happened(event_type: &str) -> Option<String> {
    Some(match event_type {
        "AppointmentRequested" => "Booked".into(),
        "AppointmentConfirmed" => "Confirmed".into(),
        "AppointmentCancelled" => "Cancelled".into(),
        "AppointmentRescheduled" => "Moved".into(),
        "AppointmentCompleted" => "Came".into(),
        "AppointmentMarkedNoShow" => "Did not come".into(),
        "AttendanceConfirmed" => "The customer confirmed they will come".into(),
        "CustomerArrived" => "Arrived".into(),
        "ReminderSent" => "Reminder sent".into(),
        "ReminderSkipped" => "Reminder not sent (WhatsApp's 24-hour window had closed)".into(),
        "RemindersScheduled" => return None,
        other => other.to_owned(),
    })
}

/// Who did it, as the log names them.
fn who(actor: Option<&str>) -> String {
    match actor {
        None => "the platform".into(),
        Some(a) if a.starts_with("whatsapp:") => "the customer, on WhatsApp".into(),
        Some(a) if a.starts_with("user:") => "a member of the team".into(),
        Some(a) if a.starts_with("api_key:") => "an API key".into(),
        Some(a) if a.starts_with("system:") => "the platform".into(),
        Some(a) => a.to_owned(),
    }
}

async fn booking_page(
    state: &AppState,
    m: &mut Member,
    booking: &str,
    after: Option<&str>,
) -> Result<(BookingPage, Tz), Response> {
    let Ok(booking_id) = booking.parse::<uuid::Uuid>() else {
        return Err(crate::pages::not_found());
    };
    let detail: BookingDetail = m
        .read_after(state, &format!("/v1/bookings/{booking_id}"), after)
        .await
        .map_err(failed)?;
    let (settings, tz) = settings(state, m).await?;
    let b = &detail.booking;
    let with = settings
        .iter()
        .flat_map(|s| &s.staff)
        .find(|s| s.id.as_str() == b.resource)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| {
            if b.resource == default_resource() {
                "—".into()
            } else {
                b.resource.clone()
            }
        });
    let starts = b.starts_at.with_timezone(&tz);
    let page = BookingPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        a: appointment(b, tz),
        reference: b.reference.clone(),
        ends: b.ends_at.with_timezone(&tz).format("%H:%M").to_string(),
        with,
        date: starts.format("%A %-d %B %Y").to_string(),
        calendar: format!("/calendar?date={}&view=day", starts.date_naive()),
        movable: matches!(b.status.as_str(), "requested" | "confirmed") && b.starts_at > Utc::now(),
        move_date: starts.date_naive().to_string(),
        move_time: starts.format("%H:%M").to_string(),
        move_error: None,
        history: detail
            .history
            .iter()
            .filter_map(|h| {
                Some(HistoryLine {
                    at: h
                        .recorded_at
                        .with_timezone(&tz)
                        .format("%-d %b %H:%M")
                        .to_string(),
                    what: what_happened(&h.event_type)?,
                    who: who(h.actor.as_deref()),
                })
            })
            .collect(),
    };
    Ok((page, tz))
}

/// `GET /bookings/{id}?after=`: one booking, what can be done with it, and its history.
pub async fn booking(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(booking): Path<String>,
    Query(query): Query<BookingQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let (page, _) = booking_page(&state, &mut m, &booking, query.after.as_deref()).await?;
    Ok(render(&page, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct MoveForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub date: String,
    #[serde(default)]
    pub time: String,
}

/// `POST /bookings/{id}/reschedule`: moves the booking to the day and time typed (in the
/// business's time zone); the customer is told on WhatsApp. Done, the booking as it now
/// stands; refused (taken, in the past), the page with why next to the time.
pub async fn reschedule(
    State(state): State<AppState>,
    Path(booking): Path<String>,
    request: Request,
) -> Response {
    let (mut m, form) = match member_form::<MoveForm>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Ok(booking_id) = booking.parse::<uuid::Uuid>() else {
        return crate::pages::not_found();
    };
    let (page, tz) = match booking_page(&state, &mut m, &booking, None).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let refused = |mut page: BookingPage, why: String, status: StatusCode| {
        page.move_date = form.date.clone();
        page.move_time = form.time.clone();
        page.move_error = Some(why);
        render(&page, status)
    };
    let Some(start) = typed_instant(&form.date, &form.time, tz) else {
        return refused(
            page,
            "Pick a day and a time.".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    };
    let key = if form.key.is_empty() {
        random_token()
    } else {
        form.key.chars().take(200).collect()
    };
    let written = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            &format!("/v1/bookings/{booking_id}/reschedule"),
            serde_json::json!({"start": start}),
            &key,
        )
        .await;
    match written {
        Ok(answer) => see_other(&format!(
            "/bookings/{booking_id}?after={}",
            encoded(answer["consistency_token"].as_str().unwrap_or_default())
        )),
        Err(failure @ Failure::Refused { .. }) => {
            let why = failure.field("start").map(str::to_owned);
            let Failure::Refused { status, detail, .. } = failure else {
                unreachable!("matched above")
            };
            if status == 404 {
                return failed(Failure::Refused {
                    status,
                    detail,
                    fields: vec![],
                    kind: String::new(),
                });
            }
            refused(
                page,
                why.map_or(detail.clone(), |w| format!("{detail}: {w}")),
                StatusCode::from_u16(status).unwrap_or(StatusCode::CONFLICT),
            )
        }
        Err(failure) => failed(failure),
    }
}
