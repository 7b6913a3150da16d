//! `Idempotency-Key` for every authenticated POST: the same key and the same request get the
//! first answer again (marked `Idempotent-Replayed: true`); the same key with another request is
//! refused (422); while the first is still running, 409 with `Retry-After`.
//!
//! Answers are stored for a day, sealed, keyed by the caller's credential. Only settled answers
//! are kept: 2xx and client errors that a retry would repeat. 401, 409, 423, 429 and server
//! errors are not kept, so a retry after the cause is gone can succeed.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use platform::problem::Problem;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::AppState;

const MAX_BODY: usize = 1024 * 1024;

/// How old a claim without an answer is when its request is surely gone: no request runs
/// longer than the time limit (`platform::serve::time_limit` answers 408 and drops it), so a
/// claim older than that, with a margin, was left by a request cut off (its process killed,
/// say) and its key may be used again at once. (The events a cut-off request may have
/// committed have ids derived from the key: running it again appends nothing twice.)
pub fn stale_after(request_limit: std::time::Duration) -> std::time::Duration {
    request_limit + std::time::Duration::from_secs(5)
}

#[derive(Serialize, Deserialize)]
struct Stored {
    status: u16,
    content_type: Option<String>,
    etag: Option<String>,
    body: Vec<u8>,
}

fn kept(status: StatusCode) -> bool {
    status.is_success()
        || (status.is_client_error()
            && !matches!(status.as_u16(), 401 | 408 | 409 | 423 | 425 | 429))
}

pub async fn layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let key = request
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or_default().trim().to_owned());
    let credential = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let (Some(key), Some(credential)) = (key, credential) else {
        // Onboarding and the webhooks derive their own idempotency.
        return next.run(request).await;
    };
    if key.is_empty() || key.chars().count() > 200 {
        return Problem::invalid("Idempotency-Key", "1 to 200 characters").into_response();
    }
    let stale = state.idempotency_stale.as_secs_f64();
    match run(&state.app, stale, key, credential, request, next).await {
        Ok(response) => response,
        Err(problem) => problem.into_response(),
    }
}

async fn run(
    app: &app::App,
    stale_secs: f64,
    key: String,
    credential: Vec<u8>,
    request: Request,
    next: Next,
) -> Result<Response, Problem> {
    let scope = Sha256::digest(&credential).to_vec();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too-large",
            "The body is too large",
        )
    })?;
    let mut fingerprint = Sha256::new();
    fingerprint.update(parts.method.as_str());
    fingerprint.update(b" ");
    fingerprint.update(parts.uri.path().as_bytes());
    fingerprint.update(b"\n");
    fingerprint.update(&bytes);
    let fingerprint = fingerprint.finalize().to_vec();
    let pool = app.store.pool();

    for _ in 0..2 {
        let claimed = sqlx::query!(
            "insert into idempotency_keys (scope, key, fingerprint) values ($1, $2, $3)
             on conflict (scope, key) do nothing",
            &scope,
            &key,
            &fingerprint
        )
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if claimed {
            return first(app, &scope, &key, parts, bytes, next).await;
        }
        let row = sqlx::query!(
            r#"select fingerprint, status, response_enc,
                    created_at < now() - make_interval(secs => $3) as "stale!"
             from idempotency_keys where scope = $1 and key = $2"#,
            &scope,
            &key,
            stale_secs
        )
        .fetch_optional(pool)
        .await?;
        let Some(row) = row else {
            continue; // swept meanwhile: claim again
        };
        let (stored_fingerprint, status, response, stale) =
            (row.fingerprint, row.status, row.response_enc, row.stale);
        if stored_fingerprint != fingerprint {
            return Err(Problem::invalid(
                "Idempotency-Key",
                "this key was already used for a different request",
            ));
        }
        match (status, response) {
            (Some(_), Some(sealed)) => return replay(app, &sealed),
            _ if stale => {
                sqlx::query!(
                    "delete from idempotency_keys where scope = $1 and key = $2 and status is null",
                    &scope,
                    &key
                )
                .execute(pool)
                .await?;
            }
            _ => {
                return Err(Problem::conflict(
                    "a request with this Idempotency-Key is still in progress",
                )
                .retry_after(1));
            }
        }
    }
    Err(
        Problem::conflict("a request with this Idempotency-Key is still in progress")
            .retry_after(1),
    )
}

async fn first(
    app: &app::App,
    scope: &[u8],
    key: &str,
    parts: axum::http::request::Parts,
    bytes: Bytes,
    next: Next,
) -> Result<Response, Problem> {
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let pool = app.store.pool();
    let status = response.status();
    if !kept(status) {
        sqlx::query!(
            "delete from idempotency_keys where scope = $1 and key = $2",
            scope,
            key
        )
        .execute(pool)
        .await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, 16 * MAX_BODY)
        .await
        .map_err(Problem::internal)?;
    let header_of = |name: header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let stored = Stored {
        status: status.as_u16(),
        content_type: header_of(header::CONTENT_TYPE),
        etag: header_of(header::ETAG),
        body: body.to_vec(),
    };
    let sealed = app
        .sealer
        .seal(&serde_json::to_vec(&stored).map_err(Problem::internal)?);
    sqlx::query!(
        "update idempotency_keys set status = $3, response_enc = $4 where scope = $1 and key = $2",
        scope,
        key,
        i32::from(status.as_u16()),
        sealed
    )
    .execute(pool)
    .await?;
    if rand::random::<u8>() == 0 {
        // Now and then, forget what is more than a day old.
        let _ = sqlx::query!(
            "delete from idempotency_keys where created_at < now() - interval '1 day'"
        )
        .execute(pool)
        .await;
    }
    Ok(Response::from_parts(parts, Body::from(body)))
}

fn replay(app: &app::App, sealed: &[u8]) -> Result<Response, Problem> {
    let stored: Stored = app
        .sealer
        .open(sealed)
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .ok_or_else(|| Problem::internal("an unreadable stored answer"))?;
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).map_err(Problem::internal)?;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, stored.content_type),
        (header::ETAG, stored.etag),
    ] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(&v).ok()) {
            headers.insert(name, value);
        }
    }
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    Ok(response)
}
