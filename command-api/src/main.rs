#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = command_api::load_settings()?;
    platform::telemetry::init(&settings.log);
    let app = command_api::Application::build(settings).await?;
    tracing::info!(port = app.port(), "command-api listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}
