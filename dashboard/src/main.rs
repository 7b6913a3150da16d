//! The dashboard's binary: settings, telemetry, serve until SIGTERM.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = dashboard::load_settings()?;
    let _telemetry = platform::telemetry::init(&settings.log, "dashboard");
    let app = dashboard::Application::build(settings).await?;
    tracing::info!(port = app.port(), "dashboard listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}
