//! Signing a business up: its name and address (the slug its members sign in with), the
//! owner's email and password, its time zone. The command API creates the business on a
//! trial and signs the owner in; the first page is Setup.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest as _, Request, State};
use axum::http::StatusCode;
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::guard::NeedsToken;
use crate::pages::{encoded, failed, render, unavailable};
use crate::session::{Session, random_token};

/// Time zones offered first (any IANA name can be typed).
const ZONES: [&str; 8] = [
    "Europe/Madrid",
    "Europe/Lisbon",
    "Europe/London",
    "Europe/Paris",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "America/Bogota",
    "America/New_York",
];

#[derive(Template)]
#[template(path = "signup.html")]
pub struct SignupPage {
    pub business_name: String,
    pub slug: String,
    pub email: String,
    pub time_zone: String,
    pub zones: &'static [&'static str],
    pub error: Option<String>,
    pub name_error: Option<String>,
    pub slug_error: Option<String>,
    pub email_error: Option<String>,
    pub password_error: Option<String>,
    pub zone_error: Option<String>,
}

impl SignupPage {
    fn empty() -> Self {
        Self {
            business_name: String::new(),
            slug: String::new(),
            email: String::new(),
            time_zone: ZONES[0].into(),
            zones: &ZONES,
            error: None,
            name_error: None,
            slug_error: None,
            email_error: None,
            password_error: None,
            zone_error: None,
        }
    }
}

/// `GET /signup`.
pub async fn signup_form() -> Response {
    render(&SignupPage::empty(), StatusCode::OK)
}

#[derive(Debug, Deserialize)]
pub struct SignupForm {
    #[serde(default)]
    pub business_name: String,
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub time_zone: String,
}

/// `POST /signup`: the business is created and its owner signed in, at Setup; refused, the
/// form again with what was typed (but the password) and why, next to each field.
pub async fn signup(State(state): State<AppState>, request: Request) -> Response {
    if request.extensions().get::<NeedsToken>().is_some() {
        return (
            StatusCode::FORBIDDEN,
            "Your browser did not say where this form came from.",
        )
            .into_response();
    }
    let client = crate::guard::client_of(&request);
    let Ok(Form(form)) = Form::<SignupForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let created = state
        .api
        .sign_up(
            serde_json::json!({
            "business_name": form.business_name.trim(),
            "slug": form.slug.trim().to_lowercase(),
            "owner_email": form.email.trim(),
            "owner_password": form.password,
            "time_zone": form.time_zone.trim(),
            }),
            client,
        )
        .await;
    match created {
        Ok(answer) => {
            let (Some(access), Some(refresh)) = (
                answer["access_token"].as_str(),
                answer["refresh_token"].as_str(),
            ) else {
                return unavailable("the sign-up answer has no tokens");
            };
            let id = random_token();
            let session = Session {
                access_token: access.to_owned(),
                refresh_token: refresh.to_owned(),
                csrf: random_token(),
            };
            if let Err(err) = state.sessions.put(&id, &session).await {
                return unavailable(&err.to_string());
            }
            let next = format!(
                "/setup?after={}&notice={}",
                encoded(answer["consistency_token"].as_str().unwrap_or_default()),
                encoded(
                    "Welcome! Add your services and your opening hours, then connect WhatsApp."
                )
            );
            (
                StatusCode::SEE_OTHER,
                [(LOCATION, next), (SET_COOKIE, state.sessions.cookie(&id))],
            )
                .into_response()
        }
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = SignupPage {
                business_name: form.business_name,
                slug: form.slug,
                email: form.email,
                time_zone: form.time_zone,
                ..SignupPage::empty()
            };
            page.name_error = failure.field("business_name").map(str::to_owned);
            page.slug_error = failure.field("slug").map(str::to_owned);
            page.email_error = failure.field("owner_email").map(str::to_owned);
            page.password_error = failure.field("owner_password").map(str::to_owned);
            page.zone_error = failure.field("time_zone").map(str::to_owned);
            let Failure::Refused { status, detail, .. } = failure else {
                unreachable!("matched above")
            };
            page.error = Some(match status {
                429 => "Too many sign-ups from here. Wait a minute and try again.".into(),
                _ => detail,
            });
            render(
                &page,
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            )
        }
        Err(failure) => failed(failure),
    }
}
