//! Where Postgres's time goes, by statement: `pg_stat_statements` for one database over a fixed
//! workload, each statement's calls and execution time per unit of work. The extension must be
//! loaded by the server (`scripts/services.sh` sets `shared_preload_libraries`); where it is
//! not, the profile says so and is skipped.

use sqlx::PgPool;

/// The extension's counters for one database, reset at [`StatementProfile::start`].
pub struct StatementProfile {
    database: String,
}

/// One statement's share of a workload.
pub struct StatementCost {
    pub calls: i64,
    pub exec_ms: f64,
    pub rows: i64,
    pub query: String,
}

impl StatementProfile {
    /// Resets the counters of `superuser`'s database, or `None` if the extension is not
    /// loaded.
    pub async fn start(superuser: &PgPool) -> Option<Self> {
        let loaded: bool = sqlx::query_scalar(
            "select coalesce(current_setting('shared_preload_libraries', true), '') like '%pg_stat_statements%'",
        )
        .fetch_one(superuser)
        .await
        .ok()?;
        if !loaded {
            eprintln!("pg_stat_statements is not loaded: no statement profile");
            return None;
        }
        sqlx::query("create extension if not exists pg_stat_statements")
            .execute(superuser)
            .await
            .ok()?;
        let database: String = sqlx::query_scalar("select current_database()")
            .fetch_one(superuser)
            .await
            .ok()?;
        sqlx::query(
            "select pg_stat_statements_reset(0, (select oid from pg_database where datname = $1), 0)",
        )
        .bind(&database)
        .execute(superuser)
        .await
        .ok()?;
        Some(Self { database })
    }

    /// The statements run since [`start`](Self::start), most execution time first: the top
    /// `n` and the totals of all of them (calls, ms).
    pub async fn finish(
        &self,
        superuser: &PgPool,
        n: usize,
    ) -> sqlx::Result<(Vec<StatementCost>, (i64, f64))> {
        let rows: Vec<(i64, f64, i64, String)> = sqlx::query_as(
            "select calls, total_exec_time + total_plan_time, rows, query
             from pg_stat_statements
             where dbid = (select oid from pg_database where datname = $1) and toplevel
             order by 2 desc",
        )
        .bind(&self.database)
        .fetch_all(superuser)
        .await?;
        let totals = rows.iter().fold((0, 0.0), |(c, t), r| (c + r.0, t + r.1));
        let top = rows
            .into_iter()
            .take(n)
            .map(|(calls, exec_ms, rows, query)| StatementCost {
                calls,
                exec_ms,
                rows,
                query,
            })
            .collect();
        Ok((top, totals))
    }
}

/// Prints the profile as a Markdown table per `units` units of work (`unit` names one).
pub fn print_table(top: &[StatementCost], (calls, ms): (i64, f64), units: u64, unit: &str) {
    let per = |x: f64| x / units.max(1) as f64;
    println!(
        "\nPostgres statements (top-level, pg_stat_statements): {:.1} calls and {:.2} ms of execution per {unit}\n",
        per(calls as f64),
        per(ms)
    );
    println!("| calls per {unit} | exec ms per {unit} | share | rows per call | statement |");
    println!("|---:|---:|---:|---:|---|");
    for s in top {
        let query: String = s.query.split_whitespace().collect::<Vec<_>>().join(" ");
        let query: String = query.chars().take(110).collect();
        println!(
            "| {:.2} | {:.3} | {:.0} % | {:.1} | `{}` |",
            per(s.calls as f64),
            per(s.exec_ms),
            100.0 * s.exec_ms / ms.max(1e-9),
            s.rows as f64 / s.calls.max(1) as f64,
            query.replace('|', "\\|")
        );
    }
}
