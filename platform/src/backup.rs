//! Back-up and restore of the platform's database (`bookingctl backup`, `bookingctl restore`).
//!
//! A back-up is `pg_dump`'s custom format of the whole database, taken in one snapshot: the
//! log, the vault (credentials, sealed tokens, customer keys), the outboxes that make the
//! reactors at most once (`wa_outbound`, `email_claims`, webhook deliveries), and the read
//! models. It runs as a role that bypasses row-level security (a superuser, or a dedicated
//! role with `BYPASSRLS` and read access): every table holding tenant data forces RLS.
//!
//! A restore goes into a database that does not exist yet, normally in a new cluster. There,
//! the log's transaction ids mean nothing: xid8 values belong to the cluster that assigned
//! them, a fresh cluster assigns smaller ones, and a reader returns only events of
//! transactions older than its snapshot's xmin. So the restore makes the log the new cluster's
//! own, in one transaction:
//!
//! 1. every event is written again under the restoring transaction's id, its position renumbered
//!    1, 2, ... in the original commit order `(transaction_id, global_position)`, so the
//!    readers' order `(transaction_id, global_position)` is exactly the old one and every
//!    append after the restore comes after all of it;
//! 2. what was derived from the old positions or the old stream starts again from the start
//!    of the log: the relay's checkpoint (it publishes the whole log into a fresh JetStream
//!    stream), every projection's watermark and dead letters, every read model's rows (a
//!    rebuild fills them), and analytics' facts and checkpoint (its consumer reads the fresh
//!    stream again);
//! 3. erasures are applied again: the keys of every subject in `customer_erasures` (the
//!    back-up's own, and those listed by `bookingctl erasures` from a newer copy) are deleted,
//!    so a customer erased after the back-up was taken stays erased.
//!
//! What the outboxes recorded survives, so replaying the whole log sends nothing twice: a reply
//! already claimed in `wa_outbound`, an email already claimed, a webhook already delivered. What
//! happened after the back-up was taken is not in it (the recovery point is the back-up's time).

use std::path::Path;

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};
use tokio::process::Command;

use crate::db::{self, OWNER_ROLE, quote_ident};

/// One erased customer, as `bookingctl erasures` lists them (`tenant_id,subject_id` per line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erasure {
    pub tenant_id: uuid::Uuid,
    pub subject_id: uuid::Uuid,
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// Events in the restored log.
    pub events: i64,
    /// Customer keys deleted again because their subject was erased.
    pub keys_erased: i64,
}

/// `pg_dump` of `database` into `out`, in its custom format, as the superuser of `admin_url`.
pub async fn backup(admin_url: &str, database: &str, out: &Path) -> anyhow::Result<()> {
    let url = db::url_on(admin_url, database)?;
    run(Command::new(tool("pg_dump"))
        .arg("--format=custom")
        .arg("--no-password")
        .arg("--file")
        .arg(out)
        .arg("--dbname")
        .arg(&url))
    .await
    .with_context(|| format!("failed to back up {database}"))
}

/// Every erased customer `database` knows of.
pub async fn erasures(admin_url: &str, database: &str) -> anyhow::Result<Vec<Erasure>> {
    let mut conn = PgConnection::connect(&db::url_on(admin_url, database)?).await?;
    let rows = sqlx::query!(
        "select tenant_id, subject_id from customer_erasures order by erased_at, tenant_id, subject_id"
    )
    .fetch_all(&mut conn)
    .await
    .context("failed to read customer_erasures")?;
    Ok(rows
        .into_iter()
        .map(|r| Erasure {
            tenant_id: r.tenant_id,
            subject_id: r.subject_id,
        })
        .collect())
}

/// The lines `bookingctl erasures` writes.
pub fn format_erasures(erasures: &[Erasure]) -> String {
    erasures
        .iter()
        .map(|e| format!("{},{}\n", e.tenant_id, e.subject_id))
        .collect()
}

/// Reads what [`format_erasures`] wrote; blank lines are ignored.
pub fn parse_erasures(text: &str) -> anyhow::Result<Vec<Erasure>> {
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(n, line)| {
            let (tenant, subject) = line
                .trim()
                .split_once(',')
                .with_context(|| format!("line {}: expected tenant_id,subject_id", n + 1))?;
            Ok(Erasure {
                tenant_id: tenant
                    .parse()
                    .with_context(|| format!("line {}: bad tenant id", n + 1))?,
                subject_id: subject
                    .parse()
                    .with_context(|| format!("line {}: bad subject id", n + 1))?,
            })
        })
        .collect()
}

/// Restores the back-up `from` into `database`, which must not exist, on the cluster of
/// `admin_url` (a superuser); then applies the migrations this binary has that the back-up
/// lacks. The read models are left empty for `projector rebuild`.
pub async fn restore(
    admin_url: &str,
    database: &str,
    from: &Path,
    newer_erasures: &[Erasure],
) -> anyhow::Result<Restored> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect as the Postgres superuser ({admin_url})"))?;
    let exists = sqlx::query_scalar!(
        r#"select exists (select from pg_database where datname = $1) as "exists!""#,
        database
    )
    .fetch_one(&mut admin)
    .await?;
    anyhow::ensure!(
        !exists,
        "database {database} exists: a restore goes into a database of its own"
    );
    // The roles are the cluster's, not the dump's: made as the first migration makes them.
    sqlx::raw_sql(SERVICE_ROLES)
        .execute(&mut admin)
        .await
        .context("failed to create the service roles")?;
    admin.close().await?;
    db::ensure_database(admin_url, database).await?;

    let url = db::url_on(admin_url, database)?;
    run(Command::new(tool("pg_restore"))
        .arg("--exit-on-error")
        .arg("--no-password")
        .arg("--dbname")
        .arg(&url)
        .arg(from))
    .await
    .with_context(|| format!("failed to restore {}", from.display()))?;

    let mut conn = PgConnection::connect(&url).await?;
    let restored = make_log_own(&mut conn, newer_erasures).await?;
    sqlx::query("analyze").execute(&mut conn).await?;
    conn.close().await?;

    db::migrate(&db::url_for(admin_url, OWNER_ROLE, database)?).await?;
    Ok(restored)
}

/// Steps 1 to 3 of the module's description, in one transaction as the superuser.
async fn make_log_own(
    conn: &mut PgConnection,
    newer_erasures: &[Erasure],
) -> anyhow::Result<Restored> {
    let mut tx = conn.begin().await?;
    // The append-only triggers stop even a superuser; a replica session fires none.
    sqlx::query("set local session_replication_role = replica")
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(RENUMBER_LOG)
        .execute(&mut *tx)
        .await
        .context("failed to renumber the log")?;
    let events = sqlx::query_scalar!(r#"select count(*) as "count!" from events"#)
        .fetch_one(&mut *tx)
        .await?;

    sqlx::query!("delete from relay_checkpoints")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("delete from rm_positions")
        .execute(&mut *tx)
        .await?;
    sqlx::query!("delete from rm_dead_letters")
        .execute(&mut *tx)
        .await?;
    let tables = sqlx::query_scalar!("select table_name from rm_tables")
        .fetch_all(&mut *tx)
        .await?;
    if !tables.is_empty() {
        let list: Vec<String> = tables.iter().map(|t| quote_ident(t)).collect();
        sqlx::query(&format!("truncate {}", list.join(", ")))
            .execute(&mut *tx)
            .await
            .context("failed to empty the read models")?;
    }
    sqlx::query!("select from analytics.checkpoints, analytics.reset(consumer)")
        .execute(&mut *tx)
        .await
        .context("failed to reset analytics")?;

    let (tenants, subjects): (Vec<_>, Vec<_>) = newer_erasures
        .iter()
        .map(|e| (e.tenant_id, e.subject_id))
        .unzip();
    sqlx::query!(
        "insert into customer_erasures (tenant_id, subject_id)
         select * from unnest($1::uuid[], $2::uuid[])
         on conflict do nothing",
        &tenants,
        &subjects
    )
    .execute(&mut *tx)
    .await?;
    let keys_erased = sqlx::query!(
        "delete from customer_keys k using customer_erasures e
          where k.tenant_id = e.tenant_id and k.subject_id = e.subject_id"
    )
    .execute(&mut *tx)
    .await?
    .rows_affected() as i64;
    tx.commit().await?;
    Ok(Restored {
        events,
        keys_erased,
    })
}

/// The service roles, as the migrations create them (no password: a deployment's own), and the
/// roles `booking_app` takes for a batch: the projector's (migration 31) and the WhatsApp
/// sender's (migration 34).
const SERVICE_ROLES: &str = "
do $$
begin
    if not exists (select from pg_roles where rolname = 'booking_app') then
        create role booking_app login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
    if not exists (select from pg_roles where rolname = 'booking_operator') then
        create role booking_operator login nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
    if not exists (select from pg_roles where rolname = 'booking_projector') then
        create role booking_projector nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
    if not exists (select from pg_roles where rolname = 'booking_sender') then
        create role booking_sender nologin nosuperuser nocreatedb nocreaterole noinherit nobypassrls;
    end if;
end
$$;
grant booking_projector to booking_app;
grant booking_sender to booking_app;
";

/// The log written again in its commit order, under the restoring transaction's id (the
/// column's default) and positions 1, 2, ...; the identity goes on from the last.
const RENUMBER_LOG: &str = "
create temporary table restored_events on commit drop as
    select row_number() over (order by transaction_id, global_position) as global_position,
           tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version,
           payload, metadata, recorded_at
      from events;
truncate events;
alter table events alter column global_position set generated by default;
insert into events (global_position, tenant_id, stream_type, stream_id, version, event_id,
                    event_type, schema_version, payload, metadata, recorded_at)
    select global_position, tenant_id, stream_type, stream_id, version, event_id, event_type,
           schema_version, payload, metadata, recorded_at
      from restored_events order by global_position;
alter table events alter column global_position set generated always;
select setval(pg_get_serial_sequence('events', 'global_position'),
              coalesce(max(global_position), 1), max(global_position) is not null)
  from restored_events;
";

/// A Postgres client program: from `BOOKING_PG_BIN` (a directory) when set, else the `PATH`.
fn tool(name: &str) -> std::path::PathBuf {
    match std::env::var_os("BOOKING_PG_BIN") {
        Some(dir) => Path::new(&dir).join(name),
        None => name.into(),
    }
}

async fn run(command: &mut Command) -> anyhow::Result<()> {
    let program = command
        .as_std()
        .get_program()
        .to_string_lossy()
        .into_owned();
    let output = command
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("cannot run {program}"))?;
    anyhow::ensure!(
        output.status.success(),
        "{program} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erasure_lists_read_back_what_they_wrote_and_name_the_bad_line() {
        let list = vec![
            Erasure {
                tenant_id: uuid::Uuid::from_u128(1),
                subject_id: uuid::Uuid::from_u128(2),
            },
            Erasure {
                tenant_id: uuid::Uuid::from_u128(3),
                subject_id: uuid::Uuid::from_u128(4),
            },
        ];
        let text = format_erasures(&list);
        assert_eq!(parse_erasures(&format!("{text}\n")).unwrap(), list);
        let err = parse_erasures(&format!("{text}nonsense\n")).unwrap_err();
        assert!(err.to_string().contains("line 3"), "{err}");
    }
}
