//! A business's WhatsApp number: connecting it (secrets sealed in the vault, the number
//! routed to the tenant, an event that says only that a number was connected), and what the
//! webhook and the sender need to read back.

use std::collections::HashMap;

use domain::Decider as _;
use domain::tenant::{Tenant, TenantCommand, WhatsAppNumber};
use eventstore::EventStore;
use uuid::Uuid;

use crate::tenants::tenant_stream;
use crate::{App, AppError, CommandContext, Committed, ConstraintExt as _, execute};

/// A number Meta confirmed, with the secrets to keep.
#[derive(Clone)]
pub struct Connection {
    pub phone_number_id: String,
    pub display_phone_number: String,
    pub access_token: String,
    pub app_secret: String,
    pub verify_token: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}

/// Connects (or replaces) the tenant's number; the number it replaced, if any, so that its
/// routes can be forgotten. A number another business connected is a conflict on
/// `phone_number_id`.
pub async fn connect(
    app: &App,
    ctx: &CommandContext,
    connection: Connection,
) -> Result<Committed<Option<String>>, AppError> {
    let access_token_enc = app.sealer.seal(connection.access_token.as_bytes());
    let app_secret_enc = app.sealer.seal(connection.app_secret.as_bytes());
    let verify_token_hash = vault::sha256(&connection.verify_token);
    let (c, access_token_enc, app_secret_enc, verify_token_hash) = (
        &connection,
        &access_token_enc,
        &app_secret_enc,
        &verify_token_hash,
    );
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let tenant_id = uow.tenant_id();
            let stream = tenant_stream(tenant_id);
            let tenant = uow.load::<Tenant>(&stream).await?;
            let events = Tenant::decide(
                &tenant,
                TenantCommand::ConnectWhatsApp(WhatsAppNumber {
                    phone_number_id: c.phone_number_id.clone(),
                    display_phone_number: c.display_phone_number.clone(),
                }),
            )?;
            let conn = uow.conn().await?;
            vault::directory::route_number(
                &mut *conn,
                &c.phone_number_id,
                tenant_id,
                verify_token_hash,
            )
            .await
            .on_constraint(vault::directory::NUMBER_TAKEN, || {
                AppError::taken(
                    "phone_number_id",
                    "already connected",
                    "this number is connected to another account",
                )
            })?;
            vault::whatsapp::store(
                conn,
                tenant_id,
                vault::whatsapp::SealedCredentials {
                    phone_number_id: &c.phone_number_id,
                    display_phone_number: &c.display_phone_number,
                    access_token_enc,
                    app_secret_enc,
                },
            )
            .await?;
            uow.stage(&stream, &events);
            Ok(tenant
                .onboarded
                .and_then(|t| t.whatsapp)
                .map(|w| w.phone_number_id))
        })
    })
    .await
}

/// The tenants the given numbers are connected to (numbers nobody connected are absent).
pub async fn tenants_of_numbers(
    store: &EventStore,
    phone_number_ids: &[String],
) -> Result<HashMap<String, Uuid>, AppError> {
    Ok(
        vault::directory::tenants_of_numbers(store.pool(), phone_number_ids)
            .await?
            .into_iter()
            .collect(),
    )
}

/// Whether some business connected its number with this verify token (Meta's verification).
pub async fn verify_token_known(store: &EventStore, verify_token: &str) -> Result<bool, AppError> {
    Ok(vault::directory::verify_token_known(store.pool(), &vault::sha256(verify_token)).await?)
}

/// The app secret a tenant's webhooks are signed with.
pub async fn app_secret(app: &App, tenant_id: Uuid) -> Result<Vec<u8>, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let sealed = vault::whatsapp::app_secret(tx.conn()).await?;
    tx.rollback().await?;
    sealed
        .and_then(|s| app.sealer.open(&s))
        .ok_or_else(|| AppError::internal("unreadable WhatsApp credentials"))
}

/// The number a tenant's replies go out from and its access token (`None`: no number
/// connected).
pub async fn sender_credentials(
    app: &App,
    tenant_id: Uuid,
) -> Result<Option<(String, String)>, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let row = vault::whatsapp::sender(tx.conn()).await?;
    tx.rollback().await?;
    let Some((phone_number_id, sealed)) = row else {
        return Ok(None);
    };
    let token = app
        .sealer
        .open(&sealed)
        .ok_or_else(|| AppError::internal("the stored access token does not open with this key"))?;
    let token = String::from_utf8(token)
        .map_err(|_| AppError::internal("the stored access token is not text"))?;
    Ok(Some((phone_number_id, token)))
}
