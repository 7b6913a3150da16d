use clap::Parser;

/// A local Stripe for the demo and the tests.
#[derive(Parser)]
#[command(name = "fake-stripe")]
struct Cli {
    #[arg(long, env = "FAKE_STRIPE_ADDR", default_value = "127.0.0.1:12111")]
    addr: String,
    /// Where to deliver webhooks (the command API's `/webhooks/stripe`).
    #[arg(long, env = "FAKE_STRIPE_WEBHOOK_URL")]
    webhook_url: Option<String>,
    /// The endpoint's signing secret (`whsec_...`).
    #[arg(
        long,
        env = "STRIPE_WEBHOOK_SECRET",
        default_value = "whsec_fake_development_only"
    )]
    webhook_secret: String,
    /// Keep the account's objects in this file across restarts, as Stripe keeps them (the
    /// demo's database remembers its customer).
    #[arg(long, env = "FAKE_STRIPE_STATE_FILE")]
    state_file: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(&cli.addr).await?;
    let address = listener.local_addr()?;
    let fake = fake_stripe::Fake::new();
    fake.set_public_url(&format!("http://{address}/"));
    if let Some(url) = cli.webhook_url {
        fake.configure_webhooks(fake_stripe::WebhookTarget {
            url,
            secret: cli.webhook_secret,
            repeat: 0,
            reverse: false,
        });
    }
    if let Some(path) = cli.state_file {
        if let Ok(text) = std::fs::read_to_string(&path) {
            fake.restore(&text)?;
            tracing::info!(path = %path.display(), "restored the saved account");
        }
        // Written when it changed, at most every 200 ms, through a temporary file (a kill
        // never leaves half a file).
        let saving = fake.clone();
        tokio::spawn(async move {
            let mut last = String::new();
            loop {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                let text = saving.save();
                if text != last {
                    let temporary = path.with_extension("tmp");
                    if std::fs::write(&temporary, &text)
                        .and_then(|()| std::fs::rename(&temporary, &path))
                        .is_ok()
                    {
                        last = text;
                    }
                }
            }
        });
    }
    tracing::info!(addr = %address, "fake Stripe listening");
    axum::serve(listener, fake_stripe::router(fake)).await?;
    Ok(())
}
