use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "analytics",
    about = "The analytics consumer of the events stream"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Consume the stream into the facts (the default).
    Serve,
    /// Make the facts afresh from the stream while the consumer runs, and wait until done.
    Rebuild {
        /// How long to wait for the running consumer to apply the stream again.
        #[arg(long, default_value_t = 3600)]
        timeout_secs: u64,
    },
    /// The events the consumer gave up on, as JSON lines (a rebuild tries them again).
    DeadLetters,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = analytics::load_settings()?;
    let _telemetry = platform::telemetry::init(&settings.log, "analytics");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = analytics::Application::build(settings).await?;
            tracing::info!(port = app.port(), "analytics listening");
            app.run_until_stopped(platform::serve::shutdown_on_signals())
                .await
        }
        Command::Rebuild { timeout_secs } => {
            let operator = platform::db::operator_pool(&settings.database)?;
            let nats = settings.nats.connect("analytics-rebuild").await?;
            let done = analytics::rebuild::rebuild(
                &operator,
                &nats,
                &settings.nats.namespace()?,
                true,
                Duration::from_secs(timeout_secs),
            )
            .await?;
            println!(
                "analytics rebuilt: {} messages of the stream in {:.1} s",
                done.sequence,
                done.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Command::DeadLetters => {
            let operator = platform::db::operator_pool(&settings.database)?;
            for letter in analytics::consumer::dead_letters(&operator).await? {
                println!("{}", serde_json::to_string(&letter)?);
            }
            Ok(())
        }
    }
}
