#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = analytics::load_settings()?;
    platform::telemetry::init(&settings.log);
    let app = analytics::Application::build(settings).await?;
    tracing::info!(port = app.port(), "analytics listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}
