//! `rm_tenants` (profile, status, plan, whether its email is verified, WhatsApp number) and
//! `rm_users` (no secrets).

use domain::DomainEvent as _;
use domain::access::UserEvent;
use domain::tenant::{TenantEvent, TenantStatus};
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use crate::projection::decode;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    match event.stream.stream_type.as_str() {
        TenantEvent::STREAM_TYPE => tenant(conn, event).await,
        UserEvent::STREAM_TYPE => user(conn, event).await,
        _ => Ok(()),
    }
}

async fn tenant(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let at = event.recorded_at;
    let tenant = event.tenant_id;
    match decode::<TenantEvent>(event)? {
        TenantEvent::TenantOnboarded {
            business_name,
            slug,
            contact_email,
            time_zone,
            plan,
            trial_ends_at,
            email_verified,
            ..
        } => {
            sqlx::query!(
                "insert into rm_tenants (tenant_id, slug, business_name, contact_email, time_zone,
                     plan, status, trial_ends_at, onboarded_at, updated_at, email_verified)
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, $10)",
                tenant,
                slug.as_str(),
                business_name.as_str(),
                contact_email.as_str(),
                time_zone.as_str(),
                plan.as_str(),
                TenantStatus::Active.as_str(),
                trial_ends_at,
                at,
                email_verified
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::TenantProfileUpdated {
            business_name,
            contact_email,
            time_zone,
        } => {
            sqlx::query!(
                "update rm_tenants set business_name = coalesce($2, business_name),
                     contact_email = coalesce($3, contact_email),
                     time_zone = coalesce($4, time_zone), updated_at = $5
                 where tenant_id = $1",
                tenant,
                business_name.as_ref().map(|v| v.as_str()),
                contact_email.as_ref().map(|v| v.as_str()),
                time_zone.as_ref().map(|v| v.as_str()),
                at
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::EmailVerificationRequested { .. } => {}
        TenantEvent::EmailVerified { .. } => {
            sqlx::query!(
                "update rm_tenants set email_verified = true, updated_at = $2
                 where tenant_id = $1",
                tenant,
                at
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::WhatsAppNumberConnected {
            phone_number_id,
            display_phone_number,
        } => {
            sqlx::query!(
                "update rm_tenants set whatsapp_phone_number_id = $2, whatsapp_display_number = $3,
                     whatsapp_credentials_valid = true, updated_at = $4
                 where tenant_id = $1",
                tenant,
                phone_number_id,
                display_phone_number,
                at
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::WhatsAppNumberDisconnected { .. } => {
            sqlx::query!(
                "update rm_tenants set whatsapp_phone_number_id = null,
                     whatsapp_display_number = null, whatsapp_credentials_valid = null,
                     updated_at = $2
                 where tenant_id = $1",
                tenant,
                at
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::WhatsAppCredentialsInvalidated { .. } => {
            sqlx::query!(
                "update rm_tenants set whatsapp_credentials_valid = false, updated_at = $2
                 where tenant_id = $1",
                tenant,
                at
            )
            .execute(conn)
            .await?;
        }
        TenantEvent::TenantSuspended { reason, .. } => {
            set_status(conn, event, TenantStatus::Suspended, Some(reason.as_str())).await?
        }
        TenantEvent::TenantReinstated => {
            set_status(conn, event, TenantStatus::Active, None).await?
        }
        TenantEvent::TenantClosed { reason } => {
            set_status(conn, event, TenantStatus::Closed, Some(reason.as_str())).await?
        }
    }
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    event: &RecordedEvent,
    status: TenantStatus,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query!(
        "update rm_tenants set status = $2, status_reason = $3, updated_at = $4
         where tenant_id = $1",
        event.tenant_id,
        status.as_str(),
        reason,
        event.recorded_at
    )
    .execute(conn)
    .await?;
    Ok(())
}

async fn user(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let user_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    match decode::<UserEvent>(event)? {
        UserEvent::UserInvited { email, role, .. } => {
            sqlx::query!(
                "insert into rm_users (tenant_id, user_id, email, role, active, invited_at,
                     updated_at)
                 values ($1, $2, $3, $4, true, $5, $5)",
                event.tenant_id,
                user_id,
                email.as_str(),
                role.as_str(),
                at
            )
            .execute(conn)
            .await?;
        }
        UserEvent::UserRoleChanged { to, .. } => {
            sqlx::query!(
                "update rm_users set role = $3, updated_at = $4
                 where tenant_id = $1 and user_id = $2",
                event.tenant_id,
                user_id,
                to.as_str(),
                at
            )
            .execute(conn)
            .await?;
        }
        UserEvent::SecondFactorEnabled => {
            sqlx::query!(
                "update rm_users set second_factor = true, updated_at = $3
                 where tenant_id = $1 and user_id = $2",
                event.tenant_id,
                user_id,
                at
            )
            .execute(conn)
            .await?;
        }
        // Secrets' business: the read model has nothing to show.
        UserEvent::PasswordResetRequested { .. } | UserEvent::PasswordReset => {}
        UserEvent::UserDeactivated => {
            sqlx::query!(
                "update rm_users set active = false, updated_at = $3
                 where tenant_id = $1 and user_id = $2",
                event.tenant_id,
                user_id,
                at
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
