//! The business's email, verified: the emailed link opens a page whose button confirms it (a
//! mail scanner that fetches the link confirms nothing), and a signed-in member asks for
//! another link from Home.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest as _, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::guard::NeedsToken;
use crate::pages::{encoded, failed, member_form, render, see_other};
use crate::session::random_token;

#[derive(Template)]
#[template(path = "verify.html")]
pub struct VerifyPage {
    pub token: String,
    pub verified: bool,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct VerifyQuery {
    #[serde(default)]
    pub token: String,
}

/// `GET /verify-email?token=`: the emailed link.
pub async fn verify_form(Query(query): Query<VerifyQuery>) -> Response {
    render(
        &VerifyPage {
            token: query.token,
            verified: false,
            error: None,
        },
        StatusCode::OK,
    )
}

/// `POST /verify-email`: confirms the email with the link's token.
pub async fn verify(State(state): State<AppState>, request: Request) -> Response {
    if request.extensions().get::<NeedsToken>().is_some() {
        return crate::reset::unvouched();
    }
    let client = crate::guard::client_of(&request);
    let Ok(Form(form)) = Form::<VerifyQuery>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    let done = state
        .api
        .public(
            "/v1/auth/verify-email",
            serde_json::json!({"token": form.token.trim()}),
            client,
        )
        .await;
    let (verified, error, status) = match done {
        Ok(()) => (true, None, StatusCode::OK),
        Err(Failure::Refused { status: 429, .. }) => (
            false,
            Some("Too many attempts. Wait a minute and try again.".to_owned()),
            StatusCode::TOO_MANY_REQUESTS,
        ),
        Err(failure @ Failure::Refused { .. }) => (
            false,
            Some(
                failure
                    .field("token")
                    .filter(|why| why.contains("earlier address"))
                    .map_or(
                        "This link has expired or was used already. If your email is not \
                         confirmed yet, sign in and send another link from Home.",
                        |_| {
                            "This link went to an address the business no longer has. Sign in \
                             and send a link to the new one from Home."
                        },
                    )
                    .to_owned(),
            ),
            StatusCode::GONE,
        ),
        Err(failure) => return failed(failure),
    };
    render(
        &VerifyPage {
            token: form.token,
            verified,
            error,
        },
        status,
    )
}

#[derive(Debug, Deserialize)]
pub struct ResendForm {}

/// `POST /verify-email/resend`: another link to the business's contact email.
pub async fn resend(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, ResendForm {}) = match member_form::<ResendForm>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let sent = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/auth/verify-email/resend",
            serde_json::json!({}),
            &random_token(),
        )
        .await;
    let notice = match sent {
        Ok(_) => format!("Another link is on its way to {}.", m.tenant.contact_email),
        Err(Failure::Refused { status: 409, .. }) => "Your email is confirmed already.".into(),
        Err(Failure::Refused { status: 429, .. }) => {
            "Several links went out a moment ago: wait a minute before asking again.".into()
        }
        Err(failure) => return failed(failure),
    };
    see_other(&format!("/?notice={}", encoded(&notice)))
}
