use clap::Parser;

/// A local SMTP server that keeps what it receives (the demo's and the tests' mailbox).
#[derive(Parser)]
#[command(name = "smtp-sink")]
struct Cli {
    /// Where SMTP is served.
    #[arg(long, env = "SMTP_SINK_SMTP_ADDR", default_value = "127.0.0.1:2525")]
    smtp: String,
    /// Where `GET /messages?to=` lists what was received.
    #[arg(long, env = "SMTP_SINK_HTTP_ADDR", default_value = "127.0.0.1:8025")]
    http: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let sink = smtp_sink::Sink::new();
    let smtp = tokio::net::TcpListener::bind(&cli.smtp).await?;
    let http = tokio::net::TcpListener::bind(&cli.http).await?;
    tracing::info!(smtp = %smtp.local_addr()?, http = %http.local_addr()?, "SMTP sink listening");
    tokio::spawn(sink.clone().serve(smtp));
    axum::serve(http, sink.router()).await?;
    Ok(())
}
