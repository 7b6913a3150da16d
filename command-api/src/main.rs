/// Password hashing (argon2id, 19 MiB a hash) runs on blocking threads; glibc's allocator keeps
/// what each thread's arena held long after, and the process grew to hundreds of MiB after a
/// burst of sign-ups. mimalloc returns large freed blocks to the system. The feature
/// `system-allocator` keeps the system's, for heap profilers that follow malloc (heaptrack,
/// `just profile-heap`).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // Before the runtime's threads allocate their first pages.
    let huge_pages = without_transparent_huge_pages();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(huge_pages))
}

async fn run(huge_pages: std::io::Result<()>) -> anyhow::Result<()> {
    let settings = command_api::load_settings()?;
    let _telemetry = platform::telemetry::init(&settings.log, "command-api");
    if let Err(err) = huge_pages {
        tracing::warn!(%err, "could not turn transparent huge pages off; memory may peak higher");
    }
    let app = command_api::Application::build(settings).await?;
    tracing::info!(port = app.port(), "command-api listening");
    app.run_until_stopped(platform::serve::shutdown_on_signals())
        .await
}

/// Turns transparent huge pages off for this process. mimalloc asks the kernel for them on
/// its arena, and a huge page is resident whole, 2 MiB, however little of it is in use: under
/// a burst of sign-ups or 100 conversations at once, 34 to 66 MiB of this process were huge
/// pages, and its peak was 107 to 111 MiB. Without them it was 97 to 99 MiB in three runs of
/// four, for about a twelfth more of this process's CPU (faults of 4 KiB pages). Redis asks
/// the same of its hosts, for the same reason. The projector and the query API keep them: they
/// stay far under 100 MiB either way, and their CPU is the drain's. `docs/scaling.md`, "The
/// command API's peak: huge pages".
fn without_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}
