//! Your account: the member's own sign-in. The second factor is enrolled here: the command API
//! makes the secret, the page shows it as a QR code drawn on the server (an SVG in the page,
//! no script, no outside service) and as text, and a first code from the app switches it on.
//! The password is changed through the emailed link of a forgotten one, so that changing it
//! proves the mailbox as well as the session.

use askama::Template;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use query_api::team::MemberView;
use serde_json::json;

use crate::AppState;
use crate::api::Failure;
use crate::pages::{Member, failed, field, member_form, render};
use crate::session::random_token;

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub business: String,
    pub csrf: String,
    pub key: String,
    pub email: String,
    pub role: String,
    /// `None`: the member's role may not read the team, so the page cannot say.
    pub second_factor: Option<bool>,
    /// While enrolling: the QR code (SVG) and the secret as text.
    pub qr: Option<String>,
    pub secret: String,
    pub otpauth_url: String,
    pub code_error: Option<String>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

/// The page for the signed-in member, as their record reads (when their role may read it).
async fn page(state: &AppState, m: &mut Member) -> Result<AccountPage, Response> {
    let me = m.session.actor().unwrap_or_default();
    let (email, role, second_factor) = match m.read::<Vec<MemberView>>(state, "/v1/users").await {
        Ok(members) => members
            .into_iter()
            .find(|u| format!("user:{}", u.user_id) == me)
            .map(|u| (u.email, u.role, Some(u.second_factor)))
            .unwrap_or_default(),
        Err(Failure::Refused { status: 403, .. }) => Default::default(),
        Err(failure) => return Err(failed(failure)),
    };
    Ok(AccountPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        key: random_token(),
        email,
        role,
        second_factor,
        qr: None,
        secret: String::new(),
        otpauth_url: String::new(),
        code_error: None,
        notice: None,
        error: None,
    })
}

/// A form of this page: its member and fields (`member_form`), and the page as it stands.
async fn form_and_page(
    state: &AppState,
    request: Request,
) -> Result<(Member, Vec<(String, String)>, AccountPage), Response> {
    let (mut m, fields) = member_form::<Vec<(String, String)>>(state, request).await?;
    let page = page(state, &mut m).await?;
    Ok((m, fields, page))
}

/// The QR code of `url`, as an SVG to put in the page.
fn qr_svg(url: &str) -> Option<String> {
    let code = qrcode::QrCode::new(url.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .quiet_zone(true)
            .build(),
    )
}

/// The secret of an `otpauth://` URL, for typing into an app.
fn secret_of(url: &str) -> String {
    url.split(['?', '&'])
        .find_map(|part| part.strip_prefix("secret="))
        .unwrap_or_default()
        .to_owned()
}

/// `GET /account`.
pub async fn account(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    Ok(render(&page(&state, &mut m).await?, StatusCode::OK))
}

/// `POST /account/second-factor`: a new secret (not on until a code from it is given).
pub async fn enroll(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, _, mut page) = match form_and_page(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let enrolled = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/auth/mfa/enroll",
            json!({}),
            "",
        )
        .await;
    match enrolled {
        Ok(answer) => {
            let url = answer["otpauth_url"].as_str().unwrap_or_default();
            page.qr = qr_svg(url);
            page.secret = answer["secret"].as_str().unwrap_or_default().to_owned();
            page.otpauth_url = url.to_owned();
            render(&page, StatusCode::OK)
        }
        Err(failure @ Failure::Refused { .. }) => {
            page.error = crate::setup::reasons(&failure).into_iter().next();
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

/// `POST /account/second-factor/verify`: the app's first code switches the second factor on.
pub async fn verify(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields, mut page) = match form_and_page(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let code: String = field(&fields, "code")
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let verified = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/auth/mfa/verify",
            json!({"code": code}),
            "",
        )
        .await;
    match verified {
        Ok(_) => {
            page.second_factor = Some(true);
            page.notice = Some(
                "The second factor is on: signing in asks for a code from your app from now on."
                    .into(),
            );
            render(&page, StatusCode::OK)
        }
        Err(failure @ Failure::Refused { .. }) => {
            // The same secret again, with why the code was refused.
            let url = field(&fields, "otpauth_url");
            page.qr = qr_svg(url);
            page.secret = secret_of(url);
            page.otpauth_url = url.to_owned();
            page.code_error = Some(failure.field("code").map(str::to_owned).unwrap_or_else(|| {
                "That code is not right: type the one your app shows now.".into()
            }));
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

/// `POST /account/password`: emails the member the link that sets a new password.
pub async fn password(State(state): State<AppState>, request: Request) -> Response {
    let (m, fields, mut page) = match form_and_page(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let email = match page.email.as_str() {
        "" => field(&fields, "email").trim().to_owned(),
        known => known.to_owned(),
    };
    let asked = state
        .api
        .public(
            "/v1/auth/password-reset",
            json!({"slug": m.tenant.slug, "email": email}),
            None,
        )
        .await;
    match asked {
        Ok(()) => {
            page.notice = Some(format!(
                "We emailed {email} a link to set a new password. It works once, for an hour."
            ));
            render(&page, StatusCode::OK)
        }
        Err(failure @ Failure::Refused { .. }) => {
            page.error = failure.field("email").map(str::to_owned).or(Some(
                "The link could not be sent: try again in a minute.".into(),
            ));
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}
