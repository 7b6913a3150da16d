//! A forgotten password: the member asks for a link (the answer is the same whether the
//! account exists or not), the platform emails it, and the link's page sets a new password
//! (every session of the member ends), then the login page.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest as _, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::guard::NeedsToken;
use crate::pages::{failed, render, see_other};

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage {
    pub slug: String,
    pub email: String,
    pub sent: bool,
    pub error: Option<String>,
}

/// `GET /forgot-password`.
pub async fn forgot_form() -> Response {
    render(
        &ForgotPage {
            slug: String::new(),
            email: String::new(),
            sent: false,
            error: None,
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    pub slug: String,
    #[serde(default)]
    pub email: String,
}

/// A form whose origin the browser did not vouch for, on a page without a session (so without
/// a CSRF token to carry instead).
pub(crate) fn unvouched() -> Response {
    (
        StatusCode::FORBIDDEN,
        "Your browser did not say where this form came from.",
    )
        .into_response()
}

/// `POST /forgot-password`: asks the platform to email a link.
pub async fn forgot(State(state): State<AppState>, request: Request) -> Response {
    if request.extensions().get::<NeedsToken>().is_some() {
        return unvouched();
    }
    let client = crate::guard::client_of(&request);
    let Ok(Form(form)) = Form::<ForgotForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let asked = state
        .api
        .public(
            "/v1/auth/password-reset",
            serde_json::json!({"slug": form.slug.trim(), "email": form.email.trim()}),
            client,
        )
        .await;
    let (sent, error, status) = match asked {
        Ok(()) => (true, None, StatusCode::OK),
        Err(Failure::Refused { status: 429, .. }) => (
            false,
            Some("Too many requests. Wait a minute and try again.".to_owned()),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(failure @ Failure::Refused { .. }) => {
            let why = failure
                .field("email")
                .or(failure.field("slug"))
                .map(str::to_owned)
                .unwrap_or_else(|| "Fill in your business and your email.".into());
            (false, Some(why), StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(failure) => return failed(failure),
    };
    render(
        &ForgotPage {
            slug: form.slug,
            email: form.email,
            sent,
            error,
        },
        status,
    )
}

#[derive(Template)]
#[template(path = "reset.html")]
pub struct ResetPage {
    pub token: String,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ResetQuery {
    #[serde(default)]
    pub token: String,
}

/// `GET /reset-password?token=`: the emailed link.
pub async fn reset_form(Query(query): Query<ResetQuery>) -> Response {
    render(
        &ResetPage {
            token: query.token,
            error: None,
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub password: String,
}

/// `POST /reset-password`: the new password; then the login page says it is changed.
pub async fn reset(State(state): State<AppState>, request: Request) -> Response {
    if request.extensions().get::<NeedsToken>().is_some() {
        return unvouched();
    }
    let client = crate::guard::client_of(&request);
    let Ok(Form(form)) = Form::<ResetForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let done = state
        .api
        .public(
            "/v1/auth/password-reset/confirm",
            serde_json::json!({"token": form.token.trim(), "password": form.password}),
            client,
        )
        .await;
    match done {
        Ok(()) => see_other("/login?reset=1"),
        Err(failure @ Failure::Refused { .. }) => {
            let (error, status) = match (failure.field("password"), &failure) {
                (Some(why), _) => (format!("Password: {why}"), StatusCode::UNPROCESSABLE_ENTITY),
                (None, Failure::Refused { status: 429, .. }) => (
                    "Too many attempts. Wait a minute and try again.".to_owned(),
                    StatusCode::TOO_MANY_REQUESTS,
                ),
                _ => (
                    "This link has expired or was used already: ask for a new one.".to_owned(),
                    StatusCode::GONE,
                ),
            };
            render(
                &ResetPage {
                    token: form.token,
                    error: Some(error),
                },
                status,
            )
        }
        Err(failure) => failed(failure),
    }
}
