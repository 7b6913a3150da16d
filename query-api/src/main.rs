/// As the command API and the projector: mimalloc (the read benchmark runs this service in
/// its own process, with the same allocator).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = query_api::load_settings()?;
    let _telemetry = platform::telemetry::init(&settings.log, "query-api");
    let app = query_api::Application::build(settings).await?;
    tracing::info!(port = app.port(), "query-api listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}
