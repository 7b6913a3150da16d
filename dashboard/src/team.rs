//! Team and access: the members (invite by email, change a role, deactivate), the API keys
//! (create one, shown once; revoke), and the invitee's own page to set a password from the
//! emailed link. Owners and admins manage them; the APIs decide who may.

use askama::Template;
use axum::Form;
use axum::extract::{FromRequest as _, Path, Query, Request, State};
use axum::http::header::{LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use query_api::team::{ApiKeyView, MemberView};
use serde::Deserialize;

use crate::AppState;
use crate::api::Failure;
use crate::calendar::Choice;
use crate::guard::NeedsToken;
use crate::pages::{Member, encoded, failed, field, member_form, render, see_other, unavailable};
use crate::session::{Session, random_token};

/// The roles a member can be given (the owner is the one who signed the business up).
const ROLES: [(&str, &str); 3] = [
    ("admin", "Admin: everything but billing"),
    ("staff", "Staff: bookings and conversations"),
    ("viewer", "Viewer: reads the day"),
];

/// What an API key may be allowed, as the form offers it.
const SCOPES: [(&str, &str); 7] = [
    ("read_bookings", "Read bookings"),
    ("write_bookings", "Make and change bookings"),
    ("read_config", "Read the services and settings"),
    ("read_conversations", "Read conversations"),
    ("reply_conversations", "Reply to customers"),
    ("read_events", "Follow the public events"),
    ("manage_webhooks", "Manage webhooks"),
];

pub struct MemberLine {
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub active: bool,
    pub second_factor: bool,
    /// Its role can be changed and it can be deactivated (not the owner, not oneself).
    pub manageable: bool,
    pub roles: Vec<Choice>,
}

pub struct KeyLine {
    pub key_id: String,
    pub name: String,
    pub prefix: String,
    pub scopes: String,
    pub created: String,
    pub last_used: String,
    /// `active`, `revoked` or `expired`.
    pub state: &'static str,
}

#[derive(Template)]
#[template(path = "team.html")]
pub struct TeamPage {
    pub business: String,
    pub csrf: String,
    pub key: String,
    /// `None`: the member's role may not manage members.
    pub members: Option<Vec<MemberLine>>,
    pub keys: Option<Vec<KeyLine>>,
    pub roles: Vec<Choice>,
    pub scopes: Vec<Choice>,
    pub invite_email: String,
    pub invite_error: Option<String>,
    pub key_name: String,
    pub key_error: Option<String>,
    /// A key just created: its name and the key itself, shown this once.
    pub new_key: Option<(String, String)>,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct TeamQuery {
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub notice: Option<String>,
}

fn day(t: DateTime<Utc>, m: &Member) -> String {
    t.with_timezone(&m.tz).format("%-d %b %Y").to_string()
}

/// The page as it stands (read after `after`), with nothing typed.
async fn team_page(
    state: &AppState,
    m: &mut Member,
    after: Option<&str>,
) -> Result<TeamPage, Response> {
    let me = m.session.actor();
    let members: Option<Vec<MemberView>> = match m.read_after(state, "/v1/users", after).await {
        Ok(members) => Some(members),
        Err(Failure::Refused { status: 403, .. }) => None,
        Err(failure) => return Err(failed(failure)),
    };
    let keys: Option<Vec<ApiKeyView>> = match m.read(state, "/v1/api-keys").await {
        Ok(keys) => Some(keys),
        Err(Failure::Refused { status: 403, .. }) => None,
        Err(failure) => return Err(failed(failure)),
    };
    if members.is_none() && keys.is_none() {
        return Err(failed(Failure::Refused {
            status: 403,
            detail: "Your role cannot manage the team or the API keys: ask an owner or an admin."
                .into(),
            fields: vec![],
            kind: String::new(),
        }));
    }
    let now = Utc::now();
    Ok(TeamPage {
        business: m.tenant.business_name.clone(),
        csrf: m.session.csrf.clone(),
        key: random_token(),
        members: members.map(|members| {
            members
                .into_iter()
                .map(|u| {
                    let mine = me.as_deref() == Some(&format!("user:{}", u.user_id));
                    MemberLine {
                        user_id: u.user_id.to_string(),
                        manageable: u.active && u.role != "owner" && !mine,
                        roles: ROLES
                            .iter()
                            .map(|(value, label)| Choice {
                                value: (*value).into(),
                                label: (*label).into(),
                                selected: u.role == *value,
                            })
                            .collect(),
                        email: if mine {
                            format!("{} (you)", u.email)
                        } else {
                            u.email
                        },
                        role: u.role,
                        active: u.active,
                        second_factor: u.second_factor,
                    }
                })
                .collect()
        }),
        keys: keys.map(|keys| {
            keys.into_iter()
                .map(|k| KeyLine {
                    key_id: k.key_id.to_string(),
                    scopes: k.scopes.join(", "),
                    created: day(k.created_at, m),
                    last_used: k.last_used_at.map_or_else(|| "never".into(), |t| day(t, m)),
                    state: match (k.revoked_at, k.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(e)) if e <= now => "expired",
                        _ => "active",
                    },
                    name: k.name,
                    prefix: k.prefix,
                })
                .collect()
        }),
        roles: ROLES
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).into(),
                label: (*label).into(),
                selected: *value == "staff",
            })
            .collect(),
        scopes: SCOPES
            .iter()
            .map(|(value, label)| Choice {
                value: (*value).into(),
                label: (*label).into(),
                selected: false,
            })
            .collect(),
        invite_email: String::new(),
        invite_error: None,
        key_name: String::new(),
        key_error: None,
        new_key: None,
        notice: None,
        error: None,
    })
}

/// `GET /team?after=&notice=`.
pub async fn team(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<TeamQuery>,
) -> Result<Response, Response> {
    let mut m = Member::of(&state, &headers).await?;
    let mut page = team_page(&state, &mut m, query.after.as_deref()).await?;
    page.notice = query.notice.filter(|n| n.len() <= 200);
    Ok(render(&page, StatusCode::OK))
}

fn key_of(fields: &[(String, String)]) -> String {
    match field(fields, "key") {
        "" => random_token(),
        key => key.chars().take(200).collect(),
    }
}

/// The API's word on `field`, else on the request.
fn why(failure: &Failure, field: &str) -> String {
    match (failure.field(field), failure) {
        (Some(why), _) => why.to_owned(),
        (None, Failure::Refused { detail, .. }) => detail.clone(),
        (None, _) => String::new(),
    }
}

fn back(token: &str, notice: &str) -> Response {
    see_other(&format!(
        "/team?after={}&notice={}",
        encoded(token),
        encoded(notice)
    ))
}

/// `POST /team/invite`: invites a member by email (the invitation is emailed with a link to
/// set a password).
pub async fn invite(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let (email, role) = (field(&fields, "email").trim(), field(&fields, "role"));
    let written = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/users",
            serde_json::json!({"email": email, "role": role}),
            &key_of(&fields),
        )
        .await;
    match written {
        Ok(answer) => back(
            answer["consistency_token"].as_str().unwrap_or_default(),
            &format!("Invitation emailed to {email}."),
        ),
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = match team_page(&state, &mut m, None).await {
                Ok(page) => page,
                Err(response) => return response,
            };
            page.invite_email = email.to_owned();
            page.invite_error = Some(why(&failure, "email"));
            for r in &mut page.roles {
                r.selected = r.value == role;
            }
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

/// `POST /team/users/{id}/{action}`: a new role, or deactivation (their sessions end).
pub async fn member_action(
    State(state): State<AppState>,
    Path((user, action)): Path<(String, String)>,
    request: Request,
) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Ok(user_id) = user.parse::<uuid::Uuid>() else {
        return crate::pages::not_found();
    };
    let key = key_of(&fields);
    let (written, done) = match action.as_str() {
        "role" => {
            let role = field(&fields, "role");
            let written = state
                .api
                .send(
                    &state.sessions,
                    &m.id,
                    &mut m.session,
                    reqwest::Method::PUT,
                    &format!("/v1/users/{user_id}/role"),
                    serde_json::json!({"role": role}),
                    &key,
                )
                .await;
            (written, "The role is changed.")
        }
        "deactivate" => {
            let written = state
                .api
                .write(
                    &state.sessions,
                    &m.id,
                    &mut m.session,
                    &format!("/v1/users/{user_id}/deactivate"),
                    serde_json::json!({}),
                    &key,
                )
                .await;
            (
                written,
                "The member is deactivated: they are signed out everywhere.",
            )
        }
        _ => return crate::pages::not_found(),
    };
    match written {
        Ok(answer) => back(
            answer["consistency_token"].as_str().unwrap_or_default(),
            done,
        ),
        Err(failure @ Failure::Refused { .. }) => {
            let mut page = match team_page(&state, &mut m, None).await {
                Ok(page) => page,
                Err(response) => return response,
            };
            page.error = Some(why(&failure, "role"));
            render(&page, failure.status())
        }
        Err(failure) => failed(failure),
    }
}

/// `POST /team/keys`: creates an API key with the scopes ticked; the page shows the key this
/// once (it is not put in a URL).
pub async fn create_key(State(state): State<AppState>, request: Request) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let name = field(&fields, "name").trim().to_owned();
    let scopes: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut body = serde_json::json!({"name": name, "scopes": scopes});
    let expires = field(&fields, "expires");
    if !expires.is_empty() {
        match NaiveDate::parse_from_str(expires, "%Y-%m-%d")
            .ok()
            .map(|d| crate::pages::midnight(d, m.tz))
        {
            Some(at) => body["expires_at"] = serde_json::json!(at),
            None => body["expires_at"] = serde_json::json!(expires),
        }
    }
    let written = state
        .api
        .write(
            &state.sessions,
            &m.id,
            &mut m.session,
            "/v1/api-keys",
            body,
            &key_of(&fields),
        )
        .await;
    let (after, created, failure) = match written {
        Ok(answer) => (
            answer["consistency_token"].as_str().map(str::to_owned),
            answer["key"].as_str().map(|k| (name.clone(), k.to_owned())),
            None,
        ),
        Err(failure @ Failure::Refused { .. }) => (None, None, Some(failure)),
        Err(failure) => return failed(failure),
    };
    let mut page = match team_page(&state, &mut m, after.as_deref()).await {
        Ok(page) => page,
        Err(response) => return response,
    };
    let status = match &failure {
        None => StatusCode::OK,
        Some(failure) => {
            page.key_name = name;
            for s in &mut page.scopes {
                s.selected = scopes.contains(&s.value.as_str());
            }
            let field = ["name", "scopes", "expires_at"]
                .into_iter()
                .find(|f| failure.field(f).is_some())
                .unwrap_or("name");
            page.key_error = Some(why(failure, field));
            failure.status()
        }
    };
    page.new_key = created;
    render(&page, status)
}

/// `POST /team/keys/{id}/revoke`: the key stops working at once.
pub async fn revoke_key(
    State(state): State<AppState>,
    Path(key_id): Path<String>,
    request: Request,
) -> Response {
    let (mut m, fields) = match member_form::<Vec<(String, String)>>(&state, request).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let Ok(key_id) = key_id.parse::<uuid::Uuid>() else {
        return crate::pages::not_found();
    };
    let written = state
        .api
        .send(
            &state.sessions,
            &m.id,
            &mut m.session,
            reqwest::Method::DELETE,
            &format!("/v1/api-keys/{key_id}"),
            serde_json::json!({}),
            &key_of(&fields),
        )
        .await;
    match written {
        // The key store answers at once: no token to wait for.
        Ok(_) => back("", "The key is revoked: it no longer works."),
        Err(failure) => failed(failure),
    }
}

#[derive(Template)]
#[template(path = "accept.html")]
pub struct AcceptPage {
    pub token: String,
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct AcceptQuery {
    #[serde(default)]
    pub token: String,
}

/// `GET /accept-invitation?token=`: the emailed link; the invitee chooses a password.
pub async fn accept_form(Query(query): Query<AcceptQuery>) -> Response {
    render(
        &AcceptPage {
            token: query.token,
            error: None,
        },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub struct AcceptForm {
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub password: String,
}

/// `POST /accept-invitation`: sets the password; the new member is signed in, at Home.
pub async fn accept(State(state): State<AppState>, request: Request) -> Response {
    if request.extensions().get::<NeedsToken>().is_some() {
        return (
            StatusCode::FORBIDDEN,
            "Your browser did not say where this form came from.",
        )
            .into_response();
    }
    let client = crate::guard::client_of(&request);
    let Ok(Form(form)) = Form::<AcceptForm>::from_request(request, &()).await else {
        return StatusCode::UNPROCESSABLE_ENTITY.into_response();
    };
    match state
        .api
        .accept_invitation(form.token.trim(), &form.password, client)
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
        Err(failure @ Failure::Refused { .. }) => {
            let error = match (&failure, failure.field("password")) {
                (_, Some(why)) => format!("Password: {why}"),
                (
                    Failure::Refused {
                        status: 401 | 404 | 410,
                        ..
                    },
                    None,
                ) => "This invitation link has expired or was used already: ask for a new one."
                    .into(),
                (Failure::Refused { detail, .. }, None) => detail.clone(),
                _ => String::new(),
            };
            let status = failure.status();
            render(
                &AcceptPage {
                    token: form.token,
                    error: Some(error),
                },
                status,
            )
        }
        Err(failure) => failed(failure),
    }
}
