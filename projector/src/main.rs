#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = projector::load_settings()?;
    platform::telemetry::init(&settings.log);
    let app = projector::Application::build(settings).await?;
    tracing::info!(port = app.port(), "projector listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}
