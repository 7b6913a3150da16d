//! The platform's APIs as the dashboard calls them: the command API for sign-in and writes, the
//! query API for reads, with the member's own tokens. An access token that has run out is
//! renewed once with the refresh token (which rotates) and the read tried again; a refresh
//! refused means the session is over. Answers are the APIs' own types.

use std::net::IpAddr;
use std::time::Duration;

use command_api::auth::TokenPair;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::session::{Session, Sessions};

/// Why a call gave no answer the page can use.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The session is over (refresh refused, member deactivated): sign in again.
    SignedOut,
    /// The API refused, in problem+json: its status, detail and the fields at fault.
    Refused {
        status: u16,
        detail: String,
        fields: Vec<(String, String)>,
        /// The problem's kind: the last segment of its `type` (`invalid-field`, `mfa-required`).
        kind: String,
    },
    /// An API or Redis did not answer.
    Unavailable(String),
}

impl Failure {
    fn from_problem(status: u16, body: &Value) -> Self {
        let detail = body["detail"]
            .as_str()
            .or(body["title"].as_str())
            .unwrap_or("The request was refused.")
            .to_owned();
        let fields = body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or_default().to_owned(),
                            e["message"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let kind = body["type"]
            .as_str()
            .and_then(|t| t.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        // The API's detail speaks to programs; a member reads where to go.
        let detail = if kind == "email-unverified" {
            "Confirm your email first: follow the link we emailed you (Home sends another)."
                .to_owned()
        } else {
            detail
        };
        Failure::Refused {
            status,
            detail,
            fields,
            kind,
        }
    }

    /// The status a page answers with for this failure.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Failure::Refused { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
            }
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The message shown for the field `name`, if the API named it.
    pub fn field(&self, name: &str) -> Option<&str> {
        match self {
            Failure::Refused { fields, .. } => fields
                .iter()
                .find(|(f, _)| f == name || f.trim_start_matches("$.") == name)
                .map(|(_, m)| m.as_str()),
            _ => None,
        }
    }
}

/// Says whose request this is (the browser's address) to the command API, which counts its
/// per-address limits by it when it trusts the dashboard as a proxy.
fn forwarded(request: reqwest::RequestBuilder, client: Option<IpAddr>) -> reqwest::RequestBuilder {
    match client {
        Some(ip) => request.header("x-forwarded-for", ip.to_string()),
        None => request,
    }
}

impl From<reqwest::Error> for Failure {
    fn from(err: reqwest::Error) -> Self {
        Failure::Unavailable(err.to_string())
    }
}

pub struct Api {
    client: reqwest::Client,
    command: String,
    query: String,
}

impl Api {
    /// The command API's address (Meta's webhook is posted to it).
    pub fn command_url(&self) -> &str {
        &self.command
    }

    pub fn new(command_url: &str, query_url: &str, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .timeout(timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            command: command_url.trim_end_matches('/').to_owned(),
            query: query_url.trim_end_matches('/').to_owned(),
        })
    }

    /// A request to one of the APIs, carrying the current trace's `traceparent` when the
    /// dashboard exports traces, so that the API's spans join the page's trace.
    fn request(&self, method: reqwest::Method, url: String) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match tracecontext::current() {
            Some(traceparent) => request.header(tracecontext::TRACEPARENT, traceparent),
            None => request,
        }
    }

    async fn tokens(
        &self,
        path: &str,
        body: Value,
        client: Option<IpAddr>,
    ) -> Result<TokenPair, Failure> {
        let response = forwarded(
            self.request(reqwest::Method::POST, format!("{}{path}", self.command))
                .json(&body),
            client,
        )
        .send()
        .await?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(response.json().await?);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        Err(Failure::from_problem(status, &body))
    }

    /// Signs a member in: their business's slug, email, password and, if they enrolled one,
    /// the authenticator's code.
    pub async fn login(
        &self,
        slug: &str,
        email: &str,
        password: &str,
        totp: Option<&str>,
        client: Option<IpAddr>,
    ) -> Result<TokenPair, Failure> {
        let mut body = json!({"slug": slug, "email": email, "password": password});
        if let Some(code) = totp {
            body["totp"] = json!(code);
        }
        self.tokens("/v1/auth/login", body, client).await
    }

    /// Ends the session on the platform too (its refresh token is revoked).
    pub async fn logout(&self, session: &Session) -> Result<(), Failure> {
        self.request(
            reqwest::Method::POST,
            format!("{}/v1/auth/logout", self.command),
        )
        .json(&json!({"refresh_token": session.refresh_token}))
        .send()
        .await?;
        Ok(())
    }

    /// A read from the query API as the session's member, renewing the access token once if it
    /// ran out (the renewed session is stored under `id`).
    pub async fn read<T: DeserializeOwned>(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &mut Session,
        path: &str,
    ) -> Result<T, Failure> {
        self.read_after(sessions, id, session, path, None).await
    }

    /// A read with the session's access token as it is, never renewed here: a token that ran
    /// out answers `SignedOut`, for the caller to read again through `read_after`, which
    /// renews it. Reads made at once (a page's several) use this, so that two of them never
    /// renew the same refresh token (the second would be taken for a stolen token's reuse).
    pub async fn read_as_is<T: DeserializeOwned>(
        &self,
        session: &Session,
        path: &str,
    ) -> Result<T, Failure> {
        let response = self
            .request(reqwest::Method::GET, format!("{}{path}", self.query))
            .bearer_auth(&session.access_token)
            .send()
            .await?;
        answer(response, path).await
    }

    /// A read that waits for the write whose consistency token is `after` (so a change shows
    /// on the very next page).
    pub async fn read_after<T: DeserializeOwned>(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &mut Session,
        path: &str,
        after: Option<&str>,
    ) -> Result<T, Failure> {
        self.call(
            sessions,
            id,
            session,
            reqwest::Method::GET,
            &self.query,
            path,
            None,
            after.map(|token| ("x-consistency-token", token)),
        )
        .await
    }

    /// A command to the command API as the session's member, under `idempotency_key` (a form
    /// sent twice is one command); its answer.
    pub async fn write(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &mut Session,
        path: &str,
        body: Value,
        idempotency_key: &str,
    ) -> Result<Value, Failure> {
        self.call(
            sessions,
            id,
            session,
            reqwest::Method::POST,
            &self.command,
            path,
            Some((body, idempotency_key)),
            None,
        )
        .await
    }

    /// A write with another method (`PUT`, `DELETE`) to the command API, as the member; an
    /// empty answer (204) is `null`.
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &mut Session,
        method: reqwest::Method,
        path: &str,
        body: Value,
        idempotency_key: &str,
    ) -> Result<Value, Failure> {
        self.call(
            sessions,
            id,
            session,
            method,
            &self.command,
            path,
            Some((body, idempotency_key)),
            None,
        )
        .await
    }

    /// A `PUT` of what the member edited at `version` (`If-Match`): a 412 means someone else
    /// changed it since.
    pub async fn put_version(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &mut Session,
        path: &str,
        body: Value,
        version: i32,
    ) -> Result<Value, Failure> {
        self.call(
            sessions,
            id,
            session,
            reqwest::Method::PUT,
            &self.command,
            path,
            Some((body, "")),
            Some(("if-match", &format!("\"{version}\""))),
        )
        .await
    }

    /// An invitee sets their password with the invitation's token, and is signed in.
    pub async fn accept_invitation(
        &self,
        token: &str,
        password: &str,
        client: Option<IpAddr>,
    ) -> Result<TokenPair, Failure> {
        self.tokens(
            "/v1/auth/accept-invitation",
            json!({"invitation_token": token, "password": password}),
            client,
        )
        .await
    }

    /// Signs a business up: its answer (the tenant, the owner's tokens) or the refusal.
    pub async fn sign_up(&self, body: Value, client: Option<IpAddr>) -> Result<Value, Failure> {
        self.post_public("/v1/tenants", body, client).await
    }

    /// A POST to the command API without a session (password resets): `Ok` on any 2xx.
    pub async fn public(
        &self,
        path: &str,
        body: Value,
        client: Option<IpAddr>,
    ) -> Result<(), Failure> {
        self.post_public(path, body, client).await.map(drop)
    }

    /// A POST without a session, as from `client`: the answer's body on a 2xx.
    async fn post_public(
        &self,
        path: &str,
        body: Value,
        client: Option<IpAddr>,
    ) -> Result<Value, Failure> {
        let response = forwarded(
            self.request(reqwest::Method::POST, format!("{}{path}", self.command))
                .json(&body),
            client,
        )
        .send()
        .await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(body);
        }
        Err(Failure::from_problem(status, &body))
    }

    #[allow(clippy::too_many_arguments)]
    async fn call<T: DeserializeOwned>(
        &self,
        sessions: &Sessions,
        id: &str,
        session: &mut Session,
        method: reqwest::Method,
        base: &str,
        path: &str,
        body: Option<(Value, &str)>,
        header: Option<(&str, &str)>,
    ) -> Result<T, Failure> {
        for attempt in 0..2 {
            let mut request = self
                .request(method.clone(), format!("{base}{path}"))
                .bearer_auth(&session.access_token);
            if let Some((body, key)) = &body {
                if !key.is_empty() {
                    request = request.header("idempotency-key", *key);
                }
                request = request.json(body);
            }
            if let Some((name, value)) = header.filter(|(_, v)| !v.is_empty()) {
                request = request.header(name, value);
            }
            let response = request.send().await?;
            if !(response.status() == 401 && attempt == 0) {
                return answer(response, path).await;
            }
            // The access token ran out: renew it once with the refresh token, and try again.
            let renewed = match self
                .tokens(
                    "/v1/auth/refresh",
                    json!({"refresh_token": session.refresh_token}),
                    None,
                )
                .await
            {
                Ok(pair) => pair,
                Err(Failure::Refused { .. }) => return Err(Failure::SignedOut),
                Err(other) => return Err(other),
            };
            session.access_token = renewed.access_token;
            session.refresh_token = renewed.refresh_token;
            sessions
                .put(id, session)
                .await
                .map_err(|e| Failure::Unavailable(e.to_string()))?;
        }
        Err(Failure::SignedOut)
    }
}

/// An API's answer: its body on a 2xx (an empty one is `null`), `SignedOut` on a 401, else the
/// refusal it describes.
async fn answer<T: DeserializeOwned>(
    response: reqwest::Response,
    path: &str,
) -> Result<T, Failure> {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        let bytes = response.bytes().await?;
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        return serde_json::from_slice(bytes)
            .map_err(|e| Failure::Unavailable(format!("{path}: an answer not understood: {e}")));
    }
    if status == 401 {
        return Err(Failure::SignedOut);
    }
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Err(Failure::from_problem(status, &body))
}
