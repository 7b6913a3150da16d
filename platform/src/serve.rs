//! Serving HTTP until told to stop, and the signals that tell it.

use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

/// A token cancelled on SIGTERM or Ctrl-C: the one shutdown signal every task of a service
/// watches, so in-flight work finishes and checkpoints before the process exits.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => tracing::info!("interrupted; shutting down"),
            _ = terminate => tracing::info!("terminated; shutting down"),
        }
        cancel.cancel();
    });
    token
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The peer address reaches handlers (`ConnectInfo`) for per-IP limits; forwarded-for
    // headers are not trusted.
    // The recorder is installed before the first request is counted.
    crate::metrics::handle();
    let service = router
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// What every answer of every service carries unless it says otherwise: not to be sniffed into
/// another type, framed, cached or sent on as a referrer. (The dashboard's pages add their own
/// content security policy; the APIs answer JSON.)
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Answers 408 (problem+json, the connection closed) to a request not answered within `limit`
/// from when it started: a client trickling its body in holds a connection and a task no longer
/// than that, and neither does a handler stuck on a dependency. A layer:
/// `axum::middleware::from_fn_with_state(limit, time_limit)`.
pub async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(
                limit_s = limit.as_secs(),
                "a request took too long; answered 408"
            );
            let mut response = crate::problem::Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request-timeout",
                "The request took too long",
            )
            .detail(format!(
                "a request must be sent and answered within {} s",
                limit.as_secs()
            ))
            .into_response();
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            response
        }
    }
}
