//! Serving HTTP until told to stop, and the signals that tell it.

use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, MatchedPath};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;
use tower_http::catch_panic::CatchPanicLayer;
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

/// Each request's span, named by its route (never by its path: paths carry ids), and a child
/// of the caller's span when the request carries a `traceparent`.
fn request_span(request: &Request) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str());
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{} {route}", request.method()),
        otel.kind = "server",
        http.request.method = %request.method(),
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    let traceparent = request.headers().get(tracecontext::TRACEPARENT);
    tracecontext::follow(&span, traceparent.and_then(|v| v.to_str().ok()));
    span
}

/// How long a client may take to send a request's head (its line and headers): past it the
/// connection is closed, so a client trickling its headers in (slowloris) holds a connection
/// no longer. (The body is timed with the rest of the request: `time_limit`.)
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets in-flight requests
/// finish. Each connection is served by hyper with a timer, so the head of each request must
/// arrive within [`HEADER_READ_TIMEOUT`] (axum's own `serve` gives hyper no timer, which turns
/// hyper's header timeout off); the peer's address reaches handlers as `ConnectInfo`, for the
/// per-address limits.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // The recorder is installed before the first request is counted.
    crate::metrics::handle();
    let app = router
        .layer(CatchPanicLayer::custom(panicked))
        .layer(axum::middleware::from_fn(security_headers))
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(request_span)
                .on_response(|response: &Response, _: Duration, span: &tracing::Span| {
                    span.record("http.response.status_code", response.status().as_u16());
                }),
        );
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = tower::ServiceBuilder::new()
            .layer(axum::Extension(ConnectInfo(peer)))
            .service(app.clone())
            .map_request(|request: hyper::Request<hyper::body::Incoming>| {
                request.map(axum::body::Body::new)
            });
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT);
            let connection = builder.serve_connection_with_upgrades(
                TokioIo::new(stream),
                TowerToHyperService::new(service),
            );
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(err) = served {
                        tracing::debug!(error = %err, "connection ended");
                    }
                    return;
                }
                () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
            // In-flight requests finish; the connection closes after them.
            let _ = connection.await;
        });
    }
    connections.close();
    connections.wait().await;
    Ok(())
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

/// `router` with every route timed by [`time_limit`] at `http`'s limit for a request.
pub fn timed(router: Router, http: &crate::settings::HttpSettings) -> Router {
    router.layer(axum::middleware::from_fn_with_state(
        http.request_limit(),
        time_limit,
    ))
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

/// `router` handling at most `http.max_in_flight` requests at once (unbounded at 0). A request
/// past the bound waits its turn, first come first served, up to `http.queue_ms`; one that
/// gets none is answered 503 problem+json with `Retry-After: 1`, having changed nothing. (Meta
/// redelivers a webhook that is not answered 200, and Stripe does.)
///
/// A burst of requests is then served at the rate the database allows instead of all at once:
/// each request handled holds its parsed body, its futures and, soon, a pooled connection it
/// waits for; one waiting here holds its connection's buffers and its route's service, cloned
/// (axum clones it for each request: keep a service's state cheap to clone). `docs/scaling.md`,
/// "The command API's peak: the hashes and the requests in flight". Health checks and metrics
/// are merged outside it: a busy instance is not a dead one.
pub fn bounded(router: Router, http: &crate::settings::HttpSettings) -> Router {
    if http.max_in_flight == 0 {
        return router;
    }
    let turns = Turns {
        permits: std::sync::Arc::new(tokio::sync::Semaphore::new(http.max_in_flight)),
        wait: Duration::from_millis(http.queue_ms),
    };
    router.layer(axum::middleware::from_fn_with_state(turns, take_turn))
}

#[derive(Clone)]
struct Turns {
    permits: std::sync::Arc<tokio::sync::Semaphore>,
    wait: Duration,
}

/// [`bounded`]'s layer. Counts `http_requests_shed_total` and keeps `http_requests_waiting`.
async fn take_turn(State(turns): State<Turns>, request: Request, next: Next) -> Response {
    let permit = match turns.permits.clone().try_acquire_owned() {
        Ok(permit) => permit,
        Err(_) => {
            let waiting = metrics::gauge!("http_requests_waiting");
            waiting.increment(1.0);
            let turn =
                tokio::time::timeout(turns.wait, turns.permits.clone().acquire_owned()).await;
            waiting.decrement(1.0);
            match turn {
                Ok(Ok(permit)) => permit,
                _ => {
                    metrics::counter!("http_requests_shed_total").increment(1);
                    tracing::debug!("no turn for a request in time; answered 503");
                    return crate::problem::Problem::unavailable(
                        "the service is handling as many requests as it can; try again",
                        1,
                    )
                    .into_response();
                }
            }
        }
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// A handler that panicked answers 500 problem+json (and the service keeps serving), instead of
/// the connection dropping with no answer.
fn panicked(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "a request's handler panicked");
    crate::problem::Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong on our side",
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Semaphore;

    fn settings(max_in_flight: usize, queue_ms: u64) -> crate::settings::HttpSettings {
        crate::settings::HttpSettings {
            host: "127.0.0.1".into(),
            port: 0,
            request_seconds: 30,
            max_in_flight,
            queue_ms,
        }
    }

    /// One route that holds its turn until the test opens `gate`, and counts in `entered` the
    /// requests that are in.
    fn held(gate: Arc<Semaphore>, entered: Arc<Semaphore>) -> Router {
        Router::new().route(
            "/held",
            axum::routing::get(move || {
                let (gate, entered) = (gate.clone(), entered.clone());
                async move {
                    entered.add_permits(1);
                    let _ = gate.acquire().await.unwrap();
                    "done"
                }
            }),
        )
    }

    async fn get(router: &Router) -> Response {
        let request = Request::get("/held")
            .body(axum::body::Body::empty())
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), router.clone().oneshot(request))
            .await
            .expect("answered")
            .unwrap()
    }

    #[tokio::test]
    async fn a_request_past_the_bound_waits_its_turn_and_is_refused_503_when_none_comes() {
        let (gate, entered) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
        let router = bounded(held(gate.clone(), entered.clone()), &settings(1, 300));
        let first = tokio::spawn({
            let router = router.clone();
            async move { get(&router).await }
        });
        entered.acquire().await.unwrap().forget();

        let started = std::time::Instant::now();
        let refused = get(&router).await;
        assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "it waited first"
        );
        assert_eq!(refused.headers()[header::RETRY_AFTER], "1");
        assert_eq!(
            refused.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );

        // One that comes while the first is in is let in when the first is done.
        let second = tokio::spawn({
            let router = router.clone();
            async move { get(&router).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        gate.add_permits(2);
        assert_eq!(first.await.unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn no_bound_lets_every_request_in_at_once() {
        let (gate, entered) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
        let router = bounded(held(gate.clone(), entered.clone()), &settings(0, 1));
        let requests: Vec<_> = (0..3)
            .map(|_| {
                let router = router.clone();
                tokio::spawn(async move { get(&router).await })
            })
            .collect();
        entered.acquire_many(3).await.unwrap().forget();
        gate.add_permits(3);
        for request in requests {
            assert_eq!(request.await.unwrap().status(), StatusCode::OK);
        }
    }
}
