//! A business's webhook endpoints: registered with a signing secret shown once (sealed in the
//! vault), disabled and enabled, asked to deliver an event again, deleted; and disabled by the
//! deliverer when every attempt has failed for longer than deliveries are retried.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::ids::WebhookEndpointId;
use domain::integration::Topic;
use domain::webhook::{
    DisableReason, WebhookCommand, WebhookEndpoint, WebhookEvent, WebhookUrl, WebhookUrlError,
};
use uuid::Uuid;

use crate::events::stream;
use crate::{App, AppError, CommandContext, Committed, FieldError, Rejection, execute};

/// Signing secrets are recognisable by this prefix. The whole secret, prefix included, is the
/// HMAC key.
pub const SECRET_PREFIX: &str = "whsec_";

/// What a business asks for.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    /// Topic names; empty: every topic.
    pub topics: Vec<String>,
    pub description: String,
}

/// A registered endpoint with its secret (shown once: only its sealed form is kept).
#[derive(Debug, Clone)]
pub struct Registered {
    pub endpoint_id: Uuid,
    pub url: String,
    pub topics: Vec<String>,
    pub description: String,
    pub secret: String,
}

pub async fn register(
    app: &App,
    ctx: &CommandContext,
    request: NewEndpoint,
) -> Result<Committed<Registered>, AppError> {
    let url = WebhookUrl::parse(&request.url, app.policy.webhooks_allow_http).map_err(|err| {
        let message = match err {
            WebhookUrlError::NotHttps => {
                "must use https (a receiver outside this machine needs TLS)".to_owned()
            }
            other => other.to_string(),
        };
        AppError::invalid("url", message)
    })?;
    let mut topics = Vec::with_capacity(request.topics.len());
    let mut unknown = Vec::new();
    for (i, name) in request.topics.iter().enumerate() {
        match Topic::parse(name) {
            Some(topic) => topics.push(topic),
            None => unknown.push(FieldError::new(
                format!("topics[{i}]"),
                format!(
                    "not a topic: {name:?} (one of {})",
                    Topic::ALL.map(Topic::name).join(", ")
                ),
            )),
        }
    }
    if !unknown.is_empty() {
        return Err(AppError::Invalid(unknown));
    }
    let endpoint_id = Uuid::new_v4();
    let secret = format!(
        "{SECRET_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    );
    let events = WebhookEndpoint::decide(
        &Default::default(),
        WebhookCommand::Register {
            endpoint_id: WebhookEndpointId::from_uuid(endpoint_id),
            url,
            topics,
            description: request.description,
        },
    )
    .map_err(Rejection::Webhook)?;
    let WebhookEvent::WebhookEndpointRegistered {
        url,
        topics,
        description,
        ..
    } = &events[0]
    else {
        unreachable!("registering registers")
    };
    let registered = Registered {
        endpoint_id,
        url: url.as_str().to_owned(),
        topics: topics.clone(),
        description: description.clone(),
        secret,
    };
    let sealed = app.sealer.seal(registered.secret.as_bytes());
    let (events, registered, sealed) = (&events, &registered, &sealed);
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let tenant_id = uow.tenant_id();
            vault::webhooks::store(uow.conn().await?, tenant_id, endpoint_id, sealed).await?;
            uow.stage(&stream::<WebhookEvent>(endpoint_id), events);
            Ok(registered.clone())
        })
    })
    .await
}

/// Disables, enables, redelivers or deletes an endpoint of the context's tenant (another
/// tenant's id reads as absent).
pub async fn command(
    app: &App,
    ctx: &CommandContext,
    endpoint_id: Uuid,
    command: WebhookCommand,
) -> Result<Committed<()>, AppError> {
    let command = &command;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let endpoint = stream::<WebhookEvent>(endpoint_id);
            let state = uow.load::<WebhookEndpoint>(&endpoint).await?;
            let events =
                WebhookEndpoint::decide(&state, command.clone()).map_err(Rejection::Webhook)?;
            if matches!(command, WebhookCommand::Delete) {
                vault::webhooks::forget(uow.conn().await?, endpoint_id).await?;
            }
            uow.stage(&endpoint, &events);
            Ok(())
        })
    })
    .await
}

/// The deliverer gives up on an endpoint whose every attempt failed since `failing_since`: it
/// is disabled (its owners and admins are emailed). Nothing happens if it is already disabled
/// or gone.
pub async fn disable_failing(
    app: &App,
    tenant_id: Uuid,
    endpoint_id: Uuid,
    failing_since: DateTime<Utc>,
    last_error: &str,
) -> Result<(), AppError> {
    let ctx = CommandContext::fresh(tenant_id, "system:webhooks");
    let reason = DisableReason::Failing {
        failing_since,
        last_error: last_error.chars().take(300).collect(),
    };
    match command(app, &ctx, endpoint_id, WebhookCommand::Disable { reason }).await {
        Ok(_)
        | Err(AppError::Rejected(Rejection::Webhook(
            domain::webhook::WebhookError::AlreadyDisabled
            | domain::webhook::WebhookError::NotFound,
        ))) => Ok(()),
        Err(err) => Err(err),
    }
}

/// An endpoint's signing secret, for the deliverer.
pub async fn secret(app: &App, tenant_id: Uuid, endpoint_id: Uuid) -> Result<String, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let sealed = vault::webhooks::sealed(tx.conn(), endpoint_id).await?;
    tx.commit().await?;
    sealed
        .and_then(|s| app.sealer.open(&s))
        .and_then(|s| String::from_utf8(s).ok())
        .ok_or(AppError::NotFound("webhook secret"))
}
