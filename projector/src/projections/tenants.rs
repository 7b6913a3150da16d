//! `rm_tenants` (profile, status, plan, WhatsApp number) and `rm_users` (no secrets).

use domain::access::UserEvent;
use domain::tenant::TenantEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;

use super::label;
use crate::projection::{Target, decode};

pub async fn apply(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    match event.stream.stream_type.as_str() {
        "tenant" => tenant(conn, target, event).await,
        "user" => user(conn, target, event).await,
        _ => Ok(()),
    }
}

async fn tenant(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let table = target.table("rm_tenants");
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
            ..
        } => {
            sqlx::query(&format!(
                "insert into {table} (tenant_id, slug, business_name, contact_email, time_zone,
                     plan, status, trial_ends_at, onboarded_at, updated_at)
                 values ($1, $2, $3, $4, $5, $6, 'active', $7, $8, $8)"
            ))
            .bind(tenant)
            .bind(slug.as_str())
            .bind(business_name.as_str())
            .bind(contact_email.as_str())
            .bind(time_zone.as_str())
            .bind(label(&plan))
            .bind(trial_ends_at)
            .bind(at)
            .execute(conn)
            .await?;
        }
        TenantEvent::TenantProfileUpdated {
            business_name,
            contact_email,
            time_zone,
        } => {
            sqlx::query(&format!(
                "update {table} set business_name = coalesce($2, business_name),
                     contact_email = coalesce($3, contact_email),
                     time_zone = coalesce($4, time_zone), updated_at = $5
                 where tenant_id = $1"
            ))
            .bind(tenant)
            .bind(business_name.as_ref().map(|v| v.as_str()))
            .bind(contact_email.as_ref().map(|v| v.as_str()))
            .bind(time_zone.as_ref().map(|v| v.as_str()))
            .bind(at)
            .execute(conn)
            .await?;
        }
        TenantEvent::WhatsAppNumberConnected {
            phone_number_id,
            display_phone_number,
        } => {
            sqlx::query(&format!(
                "update {table} set whatsapp_phone_number_id = $2, whatsapp_display_number = $3,
                     whatsapp_credentials_valid = true, updated_at = $4
                 where tenant_id = $1"
            ))
            .bind(tenant)
            .bind(phone_number_id)
            .bind(display_phone_number)
            .bind(at)
            .execute(conn)
            .await?;
        }
        TenantEvent::WhatsAppNumberDisconnected { .. } => {
            sqlx::query(&format!(
                "update {table} set whatsapp_phone_number_id = null,
                     whatsapp_display_number = null, whatsapp_credentials_valid = null,
                     updated_at = $2
                 where tenant_id = $1"
            ))
            .bind(tenant)
            .bind(at)
            .execute(conn)
            .await?;
        }
        TenantEvent::WhatsAppCredentialsInvalidated { .. } => {
            sqlx::query(&format!(
                "update {table} set whatsapp_credentials_valid = false, updated_at = $2
                 where tenant_id = $1"
            ))
            .bind(tenant)
            .bind(at)
            .execute(conn)
            .await?;
        }
        TenantEvent::TenantSuspended { reason } => {
            set_status(conn, &table, event, "suspended", Some(reason.as_str())).await?
        }
        TenantEvent::TenantReinstated => set_status(conn, &table, event, "active", None).await?,
        TenantEvent::TenantClosed { reason } => {
            set_status(conn, &table, event, "closed", Some(reason.as_str())).await?
        }
    }
    Ok(())
}

async fn set_status(
    conn: &mut PgConnection,
    table: &str,
    event: &RecordedEvent,
    status: &str,
    reason: Option<&str>,
) -> anyhow::Result<()> {
    sqlx::query(&format!(
        "update {table} set status = $2, status_reason = $3, updated_at = $4 where tenant_id = $1"
    ))
    .bind(event.tenant_id)
    .bind(status)
    .bind(reason)
    .bind(event.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn user(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let table = target.table("rm_users");
    let user_id: uuid::Uuid = event.stream.stream_id.parse()?;
    let at = event.recorded_at;
    match decode::<UserEvent>(event)? {
        UserEvent::UserInvited { email, role, .. } => {
            sqlx::query(&format!(
                "insert into {table} (tenant_id, user_id, email, role, active, invited_at, updated_at)
                 values ($1, $2, $3, $4, true, $5, $5)"
            ))
            .bind(event.tenant_id)
            .bind(user_id)
            .bind(email.as_str().to_owned())
            .bind(label(&role))
            .bind(at)
            .execute(conn)
            .await?;
        }
        UserEvent::UserRoleChanged { to, .. } => {
            sqlx::query(&format!(
                "update {table} set role = $3, updated_at = $4 where tenant_id = $1 and user_id = $2"
            ))
            .bind(event.tenant_id)
            .bind(user_id)
            .bind(label(&to))
            .bind(at)
            .execute(conn)
            .await?;
        }
        UserEvent::SecondFactorEnabled => {
            sqlx::query(&format!(
                "update {table} set second_factor = true, updated_at = $3
                 where tenant_id = $1 and user_id = $2"
            ))
            .bind(event.tenant_id)
            .bind(user_id)
            .bind(at)
            .execute(conn)
            .await?;
        }
        UserEvent::UserDeactivated => {
            sqlx::query(&format!(
                "update {table} set active = false, updated_at = $3 where tenant_id = $1 and user_id = $2"
            ))
            .bind(event.tenant_id)
            .bind(user_id)
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
