//! Database roles, pools and migrations.
//!
//! Three roles (see `migrations/`): `booking_owner` owns the schema and runs migrations;
//! `booking_app` is what services connect as (owns nothing, no BYPASSRLS, RLS-confined);
//! `booking_operator` reads across tenants. Services never connect as the owner.
//!
//! The bootstrap's DDL names roles and databases, which no statement can take as a parameter:
//! it is built here from constants and quoted identifiers, the only SQL of the services that
//! is not compile-checked.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, PgConnection, PgPool};

use crate::settings::DatabaseSettings;

/// Every migration, embedded in the binaries.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub const OWNER_ROLE: &str = "booking_owner";
pub const APP_ROLE: &str = "booking_app";
pub const OPERATOR_ROLE: &str = "booking_operator";

/// The application role's pool. Lazy: a service starts, and reports not-ready, while Postgres
/// is down.
pub fn app_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    lazy_pool(settings.url(), settings)
}

/// The operator role's pool (cross-tenant reads).
pub fn operator_pool(settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    lazy_pool(settings.operator_url(), settings)
}

/// The application role's pool on the hot standby, when one is configured.
pub fn replica_pool(settings: &DatabaseSettings) -> anyhow::Result<Option<PgPool>> {
    settings
        .replica_url()
        .map(|url| lazy_pool(url, settings))
        .transpose()
}

fn lazy_pool(url: &str, settings: &DatabaseSettings) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("invalid database URL")?;
    Ok(PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(Duration::from_millis(settings.acquire_timeout_ms))
        .connect_lazy_with(options.disable_statement_logging()))
}

/// Creates what the migrations need before they can run, as a superuser (`admin_url`): the
/// owner role and the database it owns. Idempotent. Development passwords equal role names;
/// a deployment sets real ones (or uses peer/cert auth).
pub async fn ensure_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect as the Postgres superuser ({admin_url})"))?;
    // Serialize concurrent bootstraps (parallel test processes) on one advisory lock.
    sqlx::query!("select pg_advisory_lock(1651470191) as locked")
        .fetch_one(&mut admin)
        .await?;
    let result = async {
        let owner_exists = sqlx::query_scalar!(
            r#"select exists (select from pg_roles where rolname = $1) as "exists!""#,
            OWNER_ROLE
        )
        .fetch_one(&mut admin)
        .await?;
        if !owner_exists {
            sqlx::query(&format!(
                "create role {OWNER_ROLE} login createdb createrole password '{OWNER_ROLE}'"
            ))
            .execute(&mut admin)
            .await
            .context("failed to create the owner role")?;
        }
        let db_exists = sqlx::query_scalar!(
            r#"select exists (select from pg_database where datname = $1) as "exists!""#,
            database
        )
        .fetch_one(&mut admin)
        .await?;
        if !db_exists {
            sqlx::query(&format!(
                "create database {} owner {OWNER_ROLE}",
                quote_ident(database)
            ))
            .execute(&mut admin)
            .await
            .with_context(|| format!("failed to create database {database}"))?;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = sqlx::query!("select pg_advisory_unlock(1651470191) as unlocked")
        .fetch_one(&mut admin)
        .await;
    result
}

/// Drops `database` and everything in it, disconnecting whoever uses it (`bookingctl
/// db-setup --fresh`: a local demo started afresh).
pub async fn drop_database(admin_url: &str, database: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect as the Postgres superuser ({admin_url})"))?;
    sqlx::query(&format!(
        "drop database if exists {} with (force)",
        quote_ident(database)
    ))
    .execute(&mut admin)
    .await
    .with_context(|| format!("failed to drop database {database}"))?;
    Ok(())
}

/// Runs the migrations as the owner, then gives the service roles their development
/// passwords (the roles themselves are created by the first migration).
pub async fn migrate(owner_url: &str) -> anyhow::Result<()> {
    let mut owner = PgConnection::connect(owner_url)
        .await
        .with_context(|| format!("cannot connect as the owner ({owner_url})"))?;
    MIGRATOR
        .run(&mut owner)
        .await
        .context("failed to run migrations")?;
    for role in [APP_ROLE, OPERATOR_ROLE] {
        sqlx::query(&format!("alter role {role} password '{role}'"))
            .execute(&mut owner)
            .await
            .with_context(|| format!("failed to set the password of {role}"))?;
    }
    // Close explicitly: a database used as a template must have no session left.
    owner.close().await?;
    Ok(())
}

/// A Postgres identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `url` with its user, password (development: the role name) and database replaced.
pub fn url_for(url: &str, user: &str, database: &str) -> anyhow::Result<String> {
    let mut parsed = url::Url::parse(url).context("invalid database URL")?;
    parsed
        .set_username(user)
        .and_then(|()| parsed.set_password(Some(user)))
        .map_err(|()| anyhow::anyhow!("database URL {url} cannot carry credentials"))?;
    Ok(on_database(parsed, database))
}

/// `url` (its user kept) on `database`: a superuser's URL for a database of its cluster.
pub fn url_on(url: &str, database: &str) -> anyhow::Result<String> {
    let parsed = url::Url::parse(url).context("invalid database URL")?;
    Ok(on_database(parsed, database))
}

fn on_database(mut url: url::Url, database: &str) -> String {
    url.set_path(&format!("/{database}"));
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_rewritten_for_another_role_and_database() {
        assert_eq!(
            url_for(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "booking_app",
                "t1"
            )
            .unwrap(),
            "postgres://booking_app:booking_app@127.0.0.1:5432/t1"
        );
        assert_eq!(
            url_for(
                "postgresql://a:b@h/db?sslmode=disable",
                "booking_owner",
                "x"
            )
            .unwrap(),
            "postgresql://booking_owner:booking_owner@h/x?sslmode=disable"
        );
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
