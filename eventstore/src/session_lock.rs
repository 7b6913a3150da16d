//! A lock held by a Postgres session of its own: who leads the relay, whose turn it is to
//! apply the projections. The session is detached from its pool, so the advisory lock lives
//! exactly as long as it does and goes with it when the process dies.

use sqlx::{PgConnection, PgPool};

/// Tries to take the advisory lock `(class, hashtext(name))` on `session`, opening the session
/// from `pool` first if there is none. On `false` the session is kept, for the next attempt;
/// on an error the caller drops it (the next attempt opens another).
pub async fn try_lock(
    pool: &PgPool,
    session: &mut Option<PgConnection>,
    class: i32,
    name: &str,
) -> sqlx::Result<bool> {
    if session.is_none() {
        *session = Some(pool.acquire().await?.detach());
    }
    let conn = session.as_mut().expect("a session");
    sqlx::query_scalar!(
        r#"select pg_try_advisory_lock($1, hashtext($2)) as "leader!""#,
        class,
        name
    )
    .fetch_one(conn)
    .await
}

/// Whether the session holding a lock still answers: when it does not, the lock went with it
/// and another process may hold it now.
pub async fn still_held(session: &mut PgConnection) -> bool {
    sqlx::query!("select 1 as alive")
        .fetch_one(session)
        .await
        .is_ok()
}
