//! WhatsApp: the business's number as the platform has it (connected, and whether Meta still
//! accepts its token), connecting or replacing it (the command API checks the number and token
//! with the Cloud API before keeping them, sealed), and what to paste into Meta's console.

use askama::Template;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::pages::{Member, after_write, failed, member_form, render};
use crate::session::random_token;

#[derive(Template)]
#[template(path = "whatsapp.html")]
pub struct WhatsAppPage {
    pub business: String,
    pub csrf: String,
    pub key: String,
    pub number: Option<String>,
    pub number_id: Option<String>,
    /// Meta refused the token the last time the platform used it.
    pub broken: bool,
    pub callback_url: String,
    pub phone_number_id: String,
    pub error: Option<String>,
    pub id_error: Option<String>,
    pub token_error: Option<String>,
    pub secret_error: Option<String>,
    pub verify_error: Option<String>,
    pub notice: Option<String>,
    /// The business's contact email while it is not verified: nothing connects before.
    pub unverified_email: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct WhatsAppQuery {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

async fn whatsapp_page(
    state: &AppState,
    m: &mut Member,
    after: Option<&str>,
) -> Result<WhatsAppPage, Response> {
    let tenant: query_api::tenant::TenantView = m
        .read_after(state, "/v1/tenant", after)
        .await
        .map_err(failed)?;
    Ok(WhatsAppPage {
        business: tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        key: random_token(),
        broken: tenant.whatsapp_phone_number_id.is_some()
            && tenant.whatsapp_credentials_valid == Some(false),
        number: tenant.whatsapp_display_number,
        phone_number_id: tenant.whatsapp_phone_number_id.clone().unwrap_or_default(),
        number_id: tenant.whatsapp_phone_number_id,
        callback_url: format!(
            "{}/webhooks/whatsapp",
            state.api.command_url().trim_end_matches('/')
        ),
        error: None,
        id_error: None,
        token_error: None,
        secret_error: None,
        verify_error: None,
        notice: None,
        unverified_email: (!tenant.email_verified).then_some(tenant.contact_email),
    })
}

/// `GET /whatsapp?after=&notice=`.
pub async fn whatsapp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WhatsAppQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let mut page = whatsapp_page(&state, &mut m, query.after.as_deref()).await?;
    page.notice = query.notice.filter(|n| n.len() <= 200);
    Ok(render(&page, StatusCode::OK))
}

#[derive(Debug, Deserialize)]
pub struct ConnectForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub phone_number_id: String,
    #[serde(default)]
    pub access_token: String,
    #[serde(default)]
    pub app_secret: String,
    #[serde(default)]
    pub verify_token: String,
}

/// `POST /whatsapp`: connects the number (or replaces it). The secrets are never shown back:
/// refused, only the number's id is kept in the form.
pub async fn connect(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, form) = match member_form::<ConnectForm>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let key = if form.key.is_empty() {
        random_token()
    } else {
        form.key.chars().take(200).collect()
    };
    let connected = state
        .api
        .send(
            &state.sessions,
            &m.id,
            &mut m.session,
            reqwest::Method::PUT,
            "/v1/whatsapp",
            serde_json::json!({
                "phone_number_id": form.phone_number_id.trim(),
                "access_token": form.access_token.trim(),
                "app_secret": form.app_secret.trim(),
                "verify_token": form.verify_token.trim(),
            }),
            &key,
        )
        .await;
    match connected {
        Ok(answer) => after_write(
            "/whatsapp",
            &answer,
            "The number is connected: the bot answers on it now.",
        ),
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = match whatsapp_page(&state, &mut m, None).await {
                Ok(page) => page,
                Err(response) => return response,
            };
            page.phone_number_id = form.phone_number_id;
            page.id_error = failure.field("phone_number_id").map(str::to_owned);
            page.token_error = failure.field("access_token").map(str::to_owned);
            page.secret_error = failure.field("app_secret").map(str::to_owned);
            page.verify_error = failure.field("verify_token").map(str::to_owned);
            let Failure::Refused { status, detail, .. } = failure else {
                unreachable!("matched above")
            };
            page.error = Some(detail);
            render(
                &page,
                StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
            )
        }
        Err(failure) => failed(failure),
    }
}
