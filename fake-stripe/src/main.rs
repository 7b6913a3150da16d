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
    tracing::info!(addr = %address, "fake Stripe listening");
    axum::serve(listener, fake_stripe::router(fake)).await?;
    Ok(())
}
