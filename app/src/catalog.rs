//! The bot configuration (hours, closures, rules, payments, keyword replies, texts) and the
//! services the business offers. One versioned stream per tenant: an edit names the version
//! it was made on, and an edit of an older version is refused (the domain decides).

use domain::Decider as _;
use domain::bot_config::{BotConfig, BotConfigCommand, BotConfigEvent, BotSettings, Service};
use domain::ids::ServiceId;
use eventstore::StreamRef;

use crate::events::stream;
use crate::{App, AppError, CommandContext, Committed, execute};

/// The bot configuration's stream: one per tenant.
pub fn config_stream() -> StreamRef {
    stream::<BotConfigEvent>("main")
}

/// Replaces the configuration edited at `expected_version`; the new version.
pub async fn configure(
    app: &App,
    ctx: &CommandContext,
    expected_version: u32,
    settings: BotSettings,
) -> Result<Committed<u32>, AppError> {
    let settings = Box::new(settings);
    run(app, ctx, Some(expected_version), |expected_version| {
        BotConfigCommand::Configure {
            expected_version,
            settings: settings.clone(),
        }
    })
    .await
}

/// Adds a service; with a client's key, a retry finds it added and changes nothing (the id
/// derives from the key), and the same key for another service is refused.
pub async fn add_service(
    app: &App,
    ctx: &CommandContext,
    expected_version: Option<u32>,
    service: Service,
) -> Result<Committed<u32>, AppError> {
    let service = &service;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let config = uow.load::<BotConfig>(&config_stream()).await?;
            if let Some(existing) = config.services.get(&service.id) {
                // Only this command's key makes this id.
                return if existing == service {
                    Ok(config.version)
                } else {
                    Err(AppError::IdempotencyMismatch)
                };
            }
            let events = BotConfig::decide(
                &config,
                BotConfigCommand::AddService {
                    expected_version: expected_version.unwrap_or(config.version),
                    service: service.clone(),
                },
            )?;
            uow.stage(&config_stream(), &events);
            Ok(config.version + events.len() as u32)
        })
    })
    .await
}

/// Replaces a service's details.
pub async fn update_service(
    app: &App,
    ctx: &CommandContext,
    expected_version: Option<u32>,
    service: Service,
) -> Result<Committed<u32>, AppError> {
    run(app, ctx, expected_version, |expected_version| {
        BotConfigCommand::UpdateService {
            expected_version,
            service: service.clone(),
        }
    })
    .await
}

/// Retires a service: no longer offered; its bookings keep their history.
pub async fn retire_service(
    app: &App,
    ctx: &CommandContext,
    expected_version: Option<u32>,
    service_id: ServiceId,
) -> Result<Committed<u32>, AppError> {
    run(app, ctx, expected_version, |expected_version| {
        BotConfigCommand::RetireService {
            expected_version,
            service_id,
        }
    })
    .await
}

/// Decides `command` at the version the client names, or (`None`: allowed for service edits)
/// at whatever version is current; the version after it.
async fn run(
    app: &App,
    ctx: &CommandContext,
    expected_version: Option<u32>,
    command: impl Fn(u32) -> BotConfigCommand + Send + Sync,
) -> Result<Committed<u32>, AppError> {
    let command = &command;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let config = uow.load::<BotConfig>(&config_stream()).await?;
            let events =
                BotConfig::decide(&config, command(expected_version.unwrap_or(config.version)))?;
            uow.stage(&config_stream(), &events);
            Ok(config.version + events.len() as u32)
        })
    })
    .await
}
