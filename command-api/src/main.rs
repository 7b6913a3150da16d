/// Password hashing (argon2id, 19 MiB a hash) runs on blocking threads; glibc's allocator keeps
/// what each thread's arena held long after, and the process grew to hundreds of MiB after a
/// burst of sign-ups. mimalloc returns large freed blocks to the system.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = command_api::load_settings()?;
    let _telemetry = platform::telemetry::init(&settings.log, "command-api");
    let app = command_api::Application::build(settings).await?;
    tracing::info!(port = app.port(), "command-api listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}
