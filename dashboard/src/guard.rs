//! What every response carries and every request must pass before a page sees it.
//!
//! - Headers: a Content-Security-Policy that allows only this origin's scripts, styles and
//!   images (no inline script or style, no framing, forms post only here), no referrer, no
//!   MIME sniffing; pages are not cached (they show a member's data).
//! - CSRF: a request that changes something (anything but GET and HEAD) is refused with 403
//!   when the browser says it comes from another site (`Sec-Fetch-Site` other than
//!   `same-origin` or `none`). A browser that sends no `Sec-Fetch-Site` must send an `Origin`
//!   of this host, or the session's CSRF token as the form's `csrf` field (checked by the
//!   handler, [`crate::pages`]).
//! - Sessions: a page answered to a member renews their cookie's lifetime, so a session lasts
//!   as long as it is used (Redis renews its own on each read), not a fixed time from sign-in.

use axum::extract::{Request, State};
use axum::http::header::{self, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whether a state-changing request may proceed without a token: `Some(true)` if the browser
/// vouches it is same-origin, `Some(false)` if it says otherwise, `None` if it says nothing.
pub fn same_origin(request: &Request) -> Option<bool> {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site") {
        return Some(matches!(site.to_str(), Ok("same-origin" | "none")));
    }
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))?;
    Some(origin_host == host)
}

/// The browser's address (told to the command API, whose per-address limits count it).
pub fn client_of(request: &Request) -> Option<std::net::IpAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Marks a request whose origin the browser did not vouch for: its form must carry the CSRF
/// token.
#[derive(Debug, Clone, Copy)]
pub struct NeedsToken;

pub async fn guard(
    State(sessions): State<crate::session::Sessions>,
    mut request: Request,
    next: Next,
) -> Response {
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes {
        match same_origin(&request) {
            Some(true) => {}
            Some(false) => {
                return (
                    StatusCode::FORBIDDEN,
                    "A request from another site may not change anything here.",
                )
                    .into_response();
            }
            None => {
                request.extensions_mut().insert(NeedsToken);
            }
        }
    }
    let is_asset = request.uri().path().starts_with("/static/");
    let session = (!is_asset)
        .then(|| sessions.id_of(request.headers()))
        .flatten();
    let mut response = next.run(request).await;
    let shown = response.status() == StatusCode::OK;
    let headers = response.headers_mut();
    if let Some(id) = session.filter(|_| shown && !headers.contains_key(header::SET_COOKIE))
        && let Ok(cookie) = HeaderValue::from_str(&sessions.cookie(&id))
    {
        headers.insert(header::SET_COOKIE, cookie);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
