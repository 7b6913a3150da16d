//! `rm_bot_config` (settings and the configuration's version, the ETag of `PUT /v1/bot-config`)
//! and `rm_services`.

use domain::bot_config::BotConfigEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::projection::{Target, decode};

pub async fn apply(
    conn: &mut PgConnection,
    target: Target,
    event: &RecordedEvent,
) -> anyhow::Result<()> {
    let config = target.table("rm_bot_config");
    let services = target.table("rm_services");
    let at = event.recorded_at;
    let tenant = event.tenant_id;
    let decoded = decode::<BotConfigEvent>(event)?;
    let settings = match &decoded {
        BotConfigEvent::BotConfigured { settings } => Some(Json(settings.as_ref())),
        _ => None,
    };
    sqlx::query(&format!(
        "insert into {config} (tenant_id, version, settings, updated_at) values ($1, $2, $3, $4)
         on conflict (tenant_id) do update
         set version = excluded.version,
             settings = coalesce(excluded.settings, {config}.settings),
             updated_at = excluded.updated_at"
    ))
    .bind(tenant)
    .bind(event.version as i32)
    .bind(settings)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    match decoded {
        BotConfigEvent::BotConfigured { .. } => {}
        BotConfigEvent::ServiceAdded { service } => {
            sqlx::query(&format!(
                "insert into {services} (tenant_id, service_id, name, active, service, position,
                     updated_at)
                 values ($1, $2, $3, $4, $5,
                     (select count(*) from {services} where tenant_id = $1), $6)"
            ))
            .bind(tenant)
            .bind(service.id.uuid())
            .bind(&service.name)
            .bind(service.active)
            .bind(Json(&service))
            .bind(at)
            .execute(conn)
            .await?;
        }
        BotConfigEvent::ServiceUpdated { service } => {
            sqlx::query(&format!(
                "update {services} set name = $3, active = $4, service = $5, updated_at = $6
                 where tenant_id = $1 and service_id = $2"
            ))
            .bind(tenant)
            .bind(service.id.uuid())
            .bind(&service.name)
            .bind(service.active)
            .bind(Json(&service))
            .bind(at)
            .execute(conn)
            .await?;
        }
        BotConfigEvent::ServiceRetired { service_id } => {
            sqlx::query(&format!(
                "update {services}
                 set active = false, service = jsonb_set(service, '{{active}}', 'false'),
                     updated_at = $3
                 where tenant_id = $1 and service_id = $2"
            ))
            .bind(tenant)
            .bind(service_id.uuid())
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
