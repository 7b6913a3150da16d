use clap::Parser;

/// A local WhatsApp Cloud API for the demo and the tests.
#[derive(Parser)]
#[command(name = "fake-whatsapp")]
struct Cli {
    #[arg(long, env = "FAKE_WHATSAPP_ADDR", default_value = "127.0.0.1:8090")]
    addr: String,
    /// The access token every number accepts.
    #[arg(long, env = "FAKE_WHATSAPP_TOKEN", default_value = fake_whatsapp::DEFAULT_TOKEN)]
    token: String,
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
    tracing::info!(addr = %listener.local_addr()?, "fake WhatsApp Cloud API listening");
    axum::serve(
        listener,
        fake_whatsapp::router(fake_whatsapp::Fake::new(&cli.token)),
    )
    .await?;
    Ok(())
}
