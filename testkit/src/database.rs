use std::time::Duration;

use platform::db::{self, APP_ROLE, MIGRATOR, OPERATOR_ROLE, OWNER_ROLE, quote_ident, url_for};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection as _, PgConnection, PgPool};
use uuid::Uuid;

const TEMPLATE_LOCK: i64 = 1651470192;

fn admin_url() -> String {
    std::env::var("BOOKING_TEST_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database of one's own, migrated, dropped when this value is dropped.
pub struct TestDb {
    pub name: String,
    admin_url: String,
}

impl TestDb {
    /// Clones a fresh database from the migrated template (creating the template first if
    /// this set of migrations has none yet).
    pub async fn new() -> Self {
        let admin_url = admin_url();
        let template = ensure_template(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot prepare the template database: {err:#}"));
        let name = format!("booking_test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to Postgres at {admin_url}: {err}"));
        // A template must have no other session; another test's clone may briefly hold one.
        let mut attempt = 0;
        loop {
            let created = sqlx::query(&format!(
                "create database {} template {} owner {OWNER_ROLE}",
                quote_ident(&name),
                quote_ident(&template)
            ))
            .execute(&mut admin)
            .await;
            match created {
                Ok(_) => break,
                Err(err) if attempt < 50 && err.to_string().contains("being accessed") => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
                }
                Err(err) => panic!("cannot create test database {name}: {err}"),
            }
        }
        let _ = admin.close().await;
        Self { name, admin_url }
    }

    /// A database that exists already on the cluster of `admin_url` (e.g. one a restore made),
    /// dropped when this value is dropped, as the others.
    pub fn adopt(admin_url: &str, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            admin_url: admin_url.to_owned(),
        }
    }

    fn url_as(&self, role: &str) -> String {
        url_for(&self.admin_url, role, &self.name).expect("a valid admin URL")
    }

    /// The application role: no BYPASSRLS, owns nothing; what services connect as.
    pub fn app_url(&self) -> String {
        self.url_as(APP_ROLE)
    }

    /// The operator role: reads every tenant's events.
    pub fn operator_url(&self) -> String {
        self.url_as(OPERATOR_ROLE)
    }

    /// The owner: for tests that must reach around the services (e.g. to prove the owner is
    /// stopped by a trigger).
    pub fn owner_url(&self) -> String {
        self.url_as(OWNER_ROLE)
    }

    /// A superuser session on this database: bypasses RLS and privileges, so tests can show
    /// what still stops it (the append-only trigger).
    pub fn superuser_url(&self) -> String {
        db::url_on(&self.admin_url, &self.name).expect("a valid admin URL")
    }

    pub async fn superuser_url_pool(&self) -> PgPool {
        pool(&self.superuser_url(), 2).await
    }

    pub async fn app_pool(&self) -> PgPool {
        pool(&self.app_url(), 16).await
    }

    pub async fn operator_pool(&self) -> PgPool {
        pool(&self.operator_url(), 8).await
    }

    pub async fn owner_pool(&self) -> PgPool {
        pool(&self.owner_url(), 4).await
    }
}

async fn pool(url: &str, max: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max)
        .connect(url)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"))
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // `KEEP_TEST_DB=1` leaves the database behind, to look into after a failure.
        if std::env::var_os("KEEP_TEST_DB").is_some() {
            eprintln!(
                "KEEP_TEST_DB: the test's database {} is left behind",
                self.name
            );
            return;
        }
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        crate::block_on_cleanup(async move {
            if let Ok(mut admin) = PgConnection::connect(&admin_url).await {
                let _ = sqlx::query(&format!(
                    "drop database if exists {} with (force)",
                    quote_ident(&name)
                ))
                .execute(&mut admin)
                .await;
                let _ = admin.close().await;
            }
        });
    }
}

/// The template for the current migrations: `booking_template_<digest of the migrations>`.
/// Created and migrated once, under an advisory lock, by whichever test process comes first.
async fn ensure_template(admin_url: &str) -> anyhow::Result<String> {
    let digest = MIGRATOR
        .iter()
        .flat_map(|m| m.checksum.iter().copied().chain(m.version.to_le_bytes()))
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    let template = format!("booking_template_{digest:016x}");

    let mut admin = PgConnection::connect(admin_url).await?;
    sqlx::query("select pg_advisory_lock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await?;
    let result = async {
        let exists: bool =
            sqlx::query_scalar("select exists (select from pg_database where datname = $1)")
                .bind(&template)
                .fetch_one(&mut admin)
                .await?;
        if !exists {
            let migrated = async {
                db::ensure_database(admin_url, &template).await?;
                db::migrate(&url_for(admin_url, OWNER_ROLE, &template)?).await
            }
            .await;
            if let Err(err) = migrated {
                let _ = sqlx::query(&format!(
                    "drop database if exists {} with (force)",
                    quote_ident(&template)
                ))
                .execute(&mut admin)
                .await;
                return Err(err);
            }
        }
        anyhow::Ok(())
    }
    .await;
    let _ = sqlx::query("select pg_advisory_unlock($1)")
        .bind(TEMPLATE_LOCK)
        .execute(&mut admin)
        .await;
    let _ = admin.close().await;
    result.map(|()| template)
}
