//! `rm_bot_config` (settings and the configuration's version, the ETag of `PUT /v1/bot-config`)
//! and `rm_services`.

use domain::bot_config::BotConfigEvent;
use eventstore::RecordedEvent;
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::projection::decode;

pub async fn apply(conn: &mut PgConnection, event: &RecordedEvent) -> anyhow::Result<()> {
    let at = event.recorded_at;
    let tenant = event.tenant_id;
    let decoded = decode::<BotConfigEvent>(event)?;
    let settings = match &decoded {
        BotConfigEvent::BotConfigured { settings } => {
            Some(serde_json::to_value(settings.as_ref())?)
        }
        BotConfigEvent::ServiceAdded { .. }
        | BotConfigEvent::ServiceUpdated { .. }
        | BotConfigEvent::ServiceRetired { .. } => None,
    };
    sqlx::query!(
        "insert into rm_bot_config (tenant_id, version, settings, updated_at)
         values ($1, $2, $3, $4)
         on conflict (tenant_id) do update
         set version = excluded.version,
             settings = coalesce(excluded.settings, rm_bot_config.settings),
             updated_at = excluded.updated_at",
        tenant,
        event.version as i32,
        settings,
        at
    )
    .execute(&mut *conn)
    .await?;
    match decoded {
        BotConfigEvent::BotConfigured { .. } => {}
        BotConfigEvent::ServiceAdded { service } => {
            sqlx::query!(
                "insert into rm_services (tenant_id, service_id, name, active, service, position,
                     updated_at)
                 values ($1, $2, $3, $4, $5,
                     (select count(*) from rm_services where tenant_id = $1), $6)",
                tenant,
                service.id.uuid(),
                &service.name,
                service.active,
                Json(&service) as _,
                at
            )
            .execute(conn)
            .await?;
        }
        BotConfigEvent::ServiceUpdated { service } => {
            sqlx::query!(
                "update rm_services set name = $3, active = $4, service = $5, updated_at = $6
                 where tenant_id = $1 and service_id = $2",
                tenant,
                service.id.uuid(),
                &service.name,
                service.active,
                Json(&service) as _,
                at
            )
            .execute(conn)
            .await?;
        }
        BotConfigEvent::ServiceRetired { service_id } => {
            sqlx::query!(
                "update rm_services
                 set active = false, service = jsonb_set(service, '{active}', 'false'),
                     updated_at = $3
                 where tenant_id = $1 and service_id = $2",
                tenant,
                service_id.uuid(),
                at
            )
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
