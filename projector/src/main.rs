use clap::{Parser, Subcommand};

/// The projector allocates and frees a batch's decoded events, folded rows and statement
/// arrays over and over: with glibc's allocator a third of a rebuild's own CPU time went to
/// malloc and free (merging and splitting freed chunks); mimalloc's thread-local free lists
/// take a fraction of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use projector::projection::Projection;

#[derive(Parser)]
#[command(name = "projector", about = "Relay, projections, reactors and replay")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay, the projections and the reactors (the default).
    Serve,
    /// Rebuild read models from the event store and swap them in while the live consumers run.
    Rebuild {
        /// One projection (tenants, catalog, bookings, agenda, conversations, usage); all if absent.
        #[arg(long)]
        projection: Option<Projection>,
        /// Rebuild only this tenant's rows, in place, in one transaction.
        #[arg(long)]
        tenant: Option<uuid::Uuid>,
    },
    /// Events the projections gave up on.
    DeadLetters {
        #[command(subcommand)]
        action: DeadLetterAction,
    },
}

#[derive(Subcommand)]
enum DeadLetterAction {
    /// List them as JSON lines.
    List {
        #[arg(long)]
        projection: Option<Projection>,
    },
    /// Apply them again from the event store; successes are removed.
    Retry {
        #[arg(long)]
        projection: Option<Projection>,
        #[arg(long)]
        event: Option<uuid::Uuid>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = projector::load_settings()?;
    let _telemetry = platform::telemetry::init(&settings.log, "projector");
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = projector::Application::build(settings).await?;
            tracing::info!(port = app.port(), "projector listening");
            app.run_until_stopped(platform::serve::shutdown_on_signals())
                .await
        }
        Command::Rebuild { projection, tenant } => {
            let rebuilder = projector::rebuilder(&settings)?;
            let request = projector::rebuild::RebuildRequest {
                projections: projection.map_or_else(|| Projection::ALL.to_vec(), |p| vec![p]),
                tenant,
                progress: true,
            };
            let report = rebuilder.run(&request).await?;
            println!(
                "rebuilt {} from {} events in {:.1} s ({:.0} events/s), up to {}",
                request
                    .projections
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                report.events,
                report.elapsed.as_secs_f64(),
                report.events_per_second(),
                report.last_position
            );
            Ok(())
        }
        Command::DeadLetters { action } => {
            let runtime = projector::runtime(&settings).await?;
            match action {
                DeadLetterAction::List { projection } => {
                    for letter in projector::dead_letters::list(&runtime.pool, projection).await? {
                        println!("{}", serde_json::to_string(&letter)?);
                    }
                }
                DeadLetterAction::Retry { projection, event } => {
                    for outcome in
                        projector::dead_letters::retry(&runtime, projection, event).await?
                    {
                        println!("{}", serde_json::to_string(&outcome)?);
                    }
                }
            }
            Ok(())
        }
    }
}
