//! Serving HTTP until told to stop, and the signals that tell it.

use axum::Router;
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
        .layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(TraceLayer::new_for_http())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
