//! What the notifier needs of the application: who a business's emails go to, the claim that
//! makes an email go out at most once, and the outcome recorded on the tenant's notification
//! stream.

use domain::Decider as _;
use domain::notification::{NotificationCommand, NotificationEvent, Notifications, Template};
use uuid::Uuid;

use crate::events::stream;
use crate::{App, AppError, CommandContext, Committed, execute};

/// The emails of the business's owners and admins who can sign in.
pub async fn admins(app: &App, tenant_id: Uuid) -> Result<Vec<String>, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let emails = sqlx::query_scalar!(
        "select email from rm_users where active and role in ('owner', 'admin') order by email"
    )
    .fetch_all(tx.conn())
    .await?;
    tx.rollback().await?;
    Ok(emails)
}

/// A member's email, from their stream (not a read model: an email must not wait for, or miss,
/// a projection).
pub async fn email_of(
    app: &App,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<String>, AppError> {
    let stream = stream::<domain::access::UserEvent>(user_id);
    let recorded = app.store.read_stream(tenant_id, &stream, 1).await?;
    let (user, _) = crate::events::fold::<domain::access::User>(&stream, recorded)?;
    Ok(user
        .user
        .filter(|(_, _, _, active)| *active)
        .map(|(_, email, _, _)| email.as_str().to_owned()))
}

/// Claims the email of `cause` to `recipient`: `false` when it was claimed before (sent, or
/// in flight, or lost in a crash: never sent twice).
pub async fn claim(
    app: &App,
    tenant_id: Uuid,
    cause: Uuid,
    recipient: &str,
    template: Template,
) -> Result<bool, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let claimed = sqlx::query!(
        "insert into email_claims (tenant_id, event_id, recipient, template)
         values ($1, $2, $3, $4) on conflict do nothing",
        tenant_id,
        cause,
        recipient,
        template.as_str()
    )
    .execute(tx.conn())
    .await?
    .rows_affected()
        == 1;
    tx.commit().await?;
    Ok(claimed)
}

/// Gives a claim back: the email was certainly not sent (the SMTP server was not reached), so
/// it may be tried again.
pub async fn release(
    app: &App,
    tenant_id: Uuid,
    cause: Uuid,
    recipient: &str,
) -> Result<(), AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    sqlx::query!(
        "delete from email_claims where tenant_id = $1 and event_id = $2 and recipient = $3",
        tenant_id,
        cause,
        recipient
    )
    .execute(tx.conn())
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Records how the email of `cause` to `to` went.
pub async fn record_outcome(
    app: &App,
    tenant_id: Uuid,
    cause: Uuid,
    template: Template,
    to: &str,
    error: Option<String>,
) -> Result<Committed<()>, AppError> {
    let ctx = CommandContext::new(tenant_id, "system:notifier", format!("email|{cause}|{to}"));
    let command = NotificationCommand::RecordOutcome {
        cause,
        template,
        to: to.to_owned(),
        sent: error.is_none(),
        error,
    };
    let command = &command;
    execute(app, &ctx, |uow| {
        Box::pin(async move {
            let stream = stream::<NotificationEvent>(uow.tenant_id());
            let state = uow.load::<Notifications>(&stream).await?;
            let events = Notifications::decide(&state, command.clone())
                .unwrap_or_else(|never| match never {});
            uow.stage(&stream, &events);
            Ok(())
        })
    })
    .await
}

/// The token of a member's invitation still to be emailed, and when it expires (`None` when
/// there is none: the owner who signed up, or one emailed already).
pub async fn invitation_token(
    app: &App,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<(String, chrono::DateTime<chrono::Utc>)>, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let row = vault::users::invitation_email(tx.conn(), user_id).await?;
    tx.rollback().await?;
    Ok(row.and_then(|sealed| unseal(app, sealed)))
}

/// The invitation's token is no longer kept once emailed.
pub async fn invitation_emailed(app: &App, tenant_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    vault::users::invitation_emailed(tx.conn(), user_id).await?;
    tx.commit().await?;
    Ok(())
}

/// The latest password-reset token of a member still to be emailed, and when it expires.
pub async fn reset_token(
    app: &App,
    tenant_id: Uuid,
    user_id: Uuid,
) -> Result<Option<(String, chrono::DateTime<chrono::Utc>)>, AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    let row = vault::users::password_reset_email(tx.conn(), user_id).await?;
    tx.rollback().await?;
    Ok(row.and_then(|sealed| unseal(app, sealed)))
}

/// The reset token is no longer kept once emailed.
pub async fn reset_emailed(app: &App, tenant_id: Uuid, user_id: Uuid) -> Result<(), AppError> {
    let mut tx = app.store.begin(tenant_id).await?;
    vault::users::password_reset_emailed(tx.conn(), user_id).await?;
    tx.commit().await?;
    Ok(())
}

/// A sealed token and its expiry, opened.
pub(crate) fn unseal(
    app: &App,
    (sealed, expires): (Vec<u8>, chrono::DateTime<chrono::Utc>),
) -> Option<(String, chrono::DateTime<chrono::Utc>)> {
    let token = String::from_utf8(app.sealer.open(&sealed)?).ok()?;
    Some((token, expires))
}
