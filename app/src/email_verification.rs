//! The owner proves the business's contact email reaches them before the business connects
//! WhatsApp or takes bookings: a link is made at sign-up (and again on request), the notifier
//! emails it, and following it records `EmailVerified` on the tenant's stream.
//!
//! A link is a token that names its tenant (as every token of the vault does); its hash is what
//! redeems it, and the token itself is sealed only until it is emailed. Following a link twice
//! is harmless; a link sent to an address the business no longer has verifies nothing.

use chrono::{DateTime, Utc};
use domain::Decider as _;
use domain::tenant::{Tenant, TenantCommand, TenantError};
use uuid::Uuid;

use crate::tenants::tenant_stream;
use crate::{App, AppError, CommandContext, Committed, UnitOfWork, execute};

/// How long a verification link works.
pub const LINK_TTL: chrono::Duration = chrono::Duration::days(3);

/// Makes a link for the tenant's contact email `email`, on the unit's transaction: the token is
/// kept sealed until the notifier emails it.
pub(crate) async fn make_link(
    uow: &mut UnitOfWork<'_>,
    app: &App,
    email: &str,
    expires_at: DateTime<Utc>,
) -> Result<(), AppError> {
    let tenant_id = uow.tenant_id();
    let token = vault::new_token(tenant_id);
    let conn = uow.conn().await?;
    vault::email_verification::insert(
        conn,
        tenant_id,
        email,
        &vault::sha256(&token),
        &app.sealer.seal(token.as_bytes()),
        expires_at,
    )
    .await?;
    Ok(())
}

/// Another link, to the address the business has now (an email lost, a link expired). A
/// business whose email is verified already is a conflict.
pub async fn resend(app: &App, ctx: &CommandContext) -> Result<Committed<()>, AppError> {
    let expires_at = Utc::now() + LINK_TTL;
    execute(app, ctx, |uow| {
        Box::pin(async move {
            let stream = tenant_stream(uow.tenant_id());
            let tenant = uow.load::<Tenant>(&stream).await?;
            let events = Tenant::decide(
                &tenant,
                TenantCommand::RequestEmailVerification { expires_at },
            )?;
            let email = tenant
                .onboarded
                .map(|t| t.contact_email)
                .ok_or(AppError::NotFound("tenant"))?;
            make_link(uow, app, email.as_str(), expires_at).await?;
            uow.stage(&stream, &events);
            Ok(())
        })
    })
    .await
}

/// Follows a link: the business's email is verified. A token that is not one, was used or
/// expired, or was sent to an earlier address, is a 422 on `token`; the tenant it names.
pub async fn verify(app: &App, token: &str) -> Result<Committed<Uuid>, AppError> {
    let invalid = || AppError::invalid("token", "the link is not valid, was used or expired");
    let tenant_id = vault::tenant_of_token(token).ok_or_else(invalid)?;
    let ctx = CommandContext::fresh(tenant_id, "system:email-verification");
    let token_hash = vault::sha256(token);
    let token_hash = &token_hash;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let conn = uow.conn().await?;
            let email = vault::email_verification::redeem(conn, token_hash)
                .await?
                .ok_or_else(invalid)?;
            let email = domain::values::Email::parse(&email)
                .map_err(|_| AppError::internal("a stored verification address does not parse"))?;
            let stream = tenant_stream(tenant_id);
            let tenant = uow.load::<Tenant>(&stream).await?;
            let events = Tenant::decide(&tenant, TenantCommand::VerifyEmail { email }).map_err(
                |e| match e {
                    TenantError::EmailChanged => AppError::invalid(
                        "token",
                        "the link was sent to an earlier address: ask for a new one",
                    ),
                    other => other.into(),
                },
            )?;
            uow.stage(&stream, &events);
            Ok(tenant_id)
        })
    })
    .await
}

/// Refuses (`EmailNotVerified`) unless the business's email is verified, read from its
/// stream.
pub async fn require_verified(app: &App, tenant_id: Uuid) -> Result<(), AppError> {
    crate::tenants::require_verified(&crate::tenants::state(&app.store, tenant_id).await?)
}

/// The latest verification token still to be emailed to `email`, and when it expires.
pub async fn token_to_email(
    app: &App,
    tenant_id: Uuid,
    email: &str,
) -> Result<Option<(String, DateTime<Utc>)>, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let row = vault::email_verification::to_email(tx.conn(), email).await?;
    tx.rollback().await?;
    Ok(row.and_then(|sealed| crate::notifications::unseal(app, sealed)))
}

/// The tokens emailed to `email` are no longer kept.
pub async fn emailed(app: &App, tenant_id: Uuid, email: &str) -> Result<(), AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    vault::email_verification::emailed(tx.conn(), email).await?;
    tx.commit().await?;
    Ok(())
}
