//! Operator command line: prepares the database (roles, database, migrations) and the NATS
//! stream. Everything it does is idempotent, so `just up` and CI run it on every start.

mod chat;
mod demo;
mod history;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bookingctl", about = "Operate the booking platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// A database of a cluster, reached as a Postgres superuser.
#[derive(clap::Args)]
struct Database {
    /// A Postgres superuser's URL (its database is not used).
    #[arg(
        long,
        env = "BOOKING_ADMIN_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    admin_url: String,
    #[arg(long, env = "BOOKING_DATABASE", default_value = "booking")]
    database: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create the owner role and the database if missing, then run the migrations as the owner.
    DbSetup {
        // A Postgres superuser, used only to create the owner role and the database.
        #[command(flatten)]
        db: Database,
        /// Drop the database first: everything in it is forgotten (a local demo afresh).
        #[arg(long)]
        fresh: bool,
    },
    /// Back up the database (pg_dump, custom format, one snapshot) into a file.
    Backup {
        // As a role that bypasses row-level security (a superuser).
        #[command(flatten)]
        db: Database,
        #[arg(long)]
        out: PathBuf,
    },
    /// List the erased customers (tenant_id,subject_id per line), for a restore from an older
    /// back-up to erase them again.
    Erasures {
        #[command(flatten)]
        db: Database,
        /// Where to write the list (standard output when absent).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Restore a back-up into a new database (normally on a new cluster): the log renumbered
    /// in its commit order under this cluster's transaction ids, checkpoints and read models
    /// reset, erasures applied again. Then: `bookingctl nats-provision --fresh`, `projector
    /// rebuild`, and start the services (docs/operations.md).
    Restore {
        // On the cluster to restore into; the database must not exist.
        #[command(flatten)]
        db: Database,
        /// The file `bookingctl backup` wrote.
        #[arg(long)]
        from: PathBuf,
        /// A newer list from `bookingctl erasures` (the live database's, or a newer back-up's).
        #[arg(long)]
        erasures: Option<PathBuf>,
    },
    /// Create (or bring up to date) the JetStream events stream.
    NatsProvision {
        #[arg(long, env = "APP__NATS__URL", default_value = "nats://127.0.0.1:4223")]
        url: String,
        /// The NATS user provisioning needs the operator's (`nats/auth.conf`).
        #[arg(long, env = "BOOKING_NATS_USER")]
        user: Option<String>,
        #[arg(long, env = "BOOKING_NATS_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Empty for production; a lowercase prefix for an isolated namespace.
        #[arg(long, env = "APP__NATS__NAMESPACE", default_value = "")]
        namespace: String,
        /// 3 on the cluster of nats/cluster/, 1 on a single node.
        #[arg(long, default_value_t = 1)]
        replicas: usize,
        /// Delete the stream (and its consumers) first: every event in it is forgotten.
        #[arg(long)]
        fresh: bool,
    },
    /// Print a platform-operator bearer token (for suspend/reinstate and cross-tenant audit).
    OperatorToken {
        /// Who the operator is; recorded as the actor of what they do.
        #[arg(long)]
        operator: String,
        /// The operator signing key (the command API's operator_auth key).
        #[arg(
            long,
            env = "BOOKING_OPERATOR_SECRET",
            default_value = "development-only-operator-secret-0123456789"
        )]
        secret: String,
        #[arg(long, default_value = "op-dev-1")]
        kid: String,
        #[arg(long, default_value = "booking-operator")]
        issuer: String,
        #[arg(long, default_value_t = 3600)]
        ttl_secs: u64,
    },
    /// Seed the demo tenant ("Demo Salon") through the APIs and write its details to an env file.
    Demo {
        #[arg(long, env = "COMMAND_API_URL", default_value = "http://127.0.0.1:8080")]
        command_api: String,
        #[arg(long, env = "QUERY_API_URL", default_value = "http://127.0.0.1:8081")]
        query_api: String,
        #[arg(
            long,
            env = "FAKE_WHATSAPP_URL",
            default_value = "http://127.0.0.1:8090"
        )]
        fake_whatsapp: String,
        #[arg(long, env = "FAKE_WHATSAPP_TOKEN", default_value = "EAAG-good-token")]
        fake_token: String,
        /// The fake Stripe the platform bills through (the host root).
        #[arg(
            long,
            env = "FAKE_STRIPE_URL",
            default_value = "http://127.0.0.1:12111/"
        )]
        fake_stripe: String,
        #[arg(
            long,
            env = "STRIPE_WEBHOOK_SECRET",
            default_value = "whsec_demo_development_only"
        )]
        stripe_webhook_secret: String,
        /// Where the SMTP sink lists the emails it received.
        #[arg(
            long,
            env = "SMTP_SINK_URL",
            default_value = "http://127.0.0.1:8025/messages"
        )]
        smtp_sink: String,
        #[arg(long, default_value = ".data/demo.env")]
        env_file: PathBuf,
        /// The application role's database, to import the demo's past into (a new demo only).
        #[arg(
            long,
            env = "APP__DATABASE__URL",
            default_value = "postgres://booking_app:booking_app@127.0.0.1:5432/booking"
        )]
        database_url: String,
        /// Days of past appointments a new demo starts with (0: none).
        #[arg(long, default_value_t = 90)]
        history_days: i64,
    },
    /// Chat with the demo tenant's bot as a customer, in the terminal.
    Chat {
        /// Your customer phone number.
        #[arg(default_value = "+34600000000")]
        phone: String,
        #[arg(long, default_value = ".data/demo.env")]
        env_file: PathBuf,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse().command;
    if let Command::Chat { phone, env_file } = &command {
        let env = demo::read_env(env_file);
        return chat::run(&env, phone).await;
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    match command {
        Command::Chat { .. } => unreachable!("handled above"),
        Command::Demo {
            command_api,
            query_api,
            fake_whatsapp,
            fake_token,
            fake_stripe,
            stripe_webhook_secret,
            smtp_sink,
            env_file,
            database_url,
            history_days,
        } => {
            let past = (history_days > 0).then_some(demo::Past {
                database_url,
                days: history_days,
            });
            let env = demo::seed(
                &demo::Urls {
                    command_api,
                    query_api,
                    fake_whatsapp,
                    fake_token,
                    fake_stripe,
                    stripe_webhook_secret,
                    smtp_sink,
                },
                past.as_ref(),
                &env_file,
            )
            .await?;
            println!("\n  Demo Salon is ready ({}):\n", env_file.display());
            for (k, v) in &env {
                println!("    {k}={v}");
            }
            println!("\n  Chat with its bot:  just chat\n");
        }
        Command::DbSetup {
            db: Database {
                admin_url,
                database,
            },
            fresh,
        } => {
            if fresh {
                platform::db::drop_database(&admin_url, &database).await?;
                tracing::info!(%database, "database dropped");
            }
            platform::db::ensure_database(&admin_url, &database).await?;
            let owner_url = platform::db::url_for(&admin_url, platform::db::OWNER_ROLE, &database)?;
            platform::db::migrate(&owner_url).await?;
            tracing::info!(%database, "database ready");
        }
        Command::Backup {
            db: Database {
                admin_url,
                database,
            },
            out,
        } => {
            platform::backup::backup(&admin_url, &database, &out).await?;
            tracing::info!(%database, out = %out.display(), "backed up");
        }
        Command::Erasures {
            db: Database {
                admin_url,
                database,
            },
            out,
        } => {
            let list = platform::backup::erasures(&admin_url, &database).await?;
            let text = platform::backup::format_erasures(&list);
            match out {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("cannot write {}", path.display()))?,
                None => print!("{text}"),
            }
        }
        Command::Restore {
            db: Database {
                admin_url,
                database,
            },
            from,
            erasures,
        } => {
            let newer = match erasures {
                Some(path) => platform::backup::parse_erasures(
                    &std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?,
                )?,
                None => Vec::new(),
            };
            let restored = platform::backup::restore(&admin_url, &database, &from, &newer).await?;
            tracing::info!(
                %database,
                events = restored.events,
                keys_erased = restored.keys_erased,
                "restored; next: bookingctl nats-provision --fresh, projector rebuild, start the services"
            );
        }
        Command::NatsProvision {
            url,
            user,
            password,
            namespace,
            replicas,
            fresh,
        } => {
            let ns = if namespace.is_empty() {
                nats::Namespace::root()
            } else {
                nats::Namespace::with_prefix(&namespace)?
            };
            let password = password.map(secrecy::SecretString::from);
            let login = platform::settings::login(user.as_deref(), password.as_ref(), "nats")?;
            let client = nats::connect(&url, "bookingctl", login.as_ref()).await?;
            let js = async_nats::jetstream::new(client);
            if fresh {
                match js.delete_stream(ns.events_stream()).await {
                    Ok(_) => tracing::info!(stream = %ns.events_stream(), "stream deleted"),
                    Err(err) => {
                        tracing::info!(stream = %ns.events_stream(), %err, "no stream to delete")
                    }
                }
            }
            nats::provision_events_stream(&js, &ns, nats::Storage::File, replicas).await?;
            tracing::info!(stream = %ns.events_stream(), "stream ready");
        }
        Command::OperatorToken {
            operator,
            secret,
            kid,
            issuer,
            ttl_secs,
        } => {
            let settings = platform::auth::AuthSettings {
                issuer,
                access_ttl_secs: ttl_secs,
                refresh_ttl_days: 1,
                active_kid: kid.clone(),
                keys: vec![platform::auth::KeySetting {
                    kid,
                    secret: secret.into(),
                }],
            };
            let keys =
                platform::auth::OperatorKeys(platform::auth::JwtKeys::from_settings(&settings)?);
            println!(
                "{}",
                keys.issue(&operator, std::time::Duration::from_secs(ttl_secs))?
            );
        }
    }
    Ok(())
}
