//! Tenant isolation in the database, the roles' privileges, append-only storage.

mod common;

use common::*;
use eventstore::{ExpectedVersion, Position};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

async fn count_visible(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar("select count(*) from events")
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_application_role_sees_and_writes_only_the_tenant_of_its_transaction() {
    let s = store().await;
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    for tenant in [a, b] {
        s.store
            .append(
                tenant,
                vec![append(
                    &booking("shared-id"),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", 0)],
                )],
            )
            .await
            .unwrap();
    }

    // Through the store: tenant A reading B's stream id finds only its own.
    let read = s
        .store
        .read_stream(a, &booking("shared-id"), 1)
        .await
        .unwrap();
    assert!(read.iter().all(|e| e.tenant_id == a) && read.len() == 1);

    // Raw SQL as the application role, tenant A set: B's rows do not exist.
    let mut tx = s.store.begin(a).await.unwrap();
    let visible: Vec<Uuid> = sqlx::query_scalar("select tenant_id from events")
        .fetch_all(tx.conn())
        .await
        .unwrap();
    assert_eq!(visible, [a]);

    // Inserting a row for B while A is set is rejected by the policy.
    let insert = sqlx::query(
        "insert into events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload)
         values ($1, 'booking', 'sneaky', 1, $2, 'Requested', 1, '{}')",
    )
    .bind(b)
    .bind(Uuid::new_v4())
    .execute(tx.conn())
    .await;
    let err = insert.expect_err("RLS must refuse another tenant's row");
    assert!(err.to_string().contains("row-level security"), "{err}");
}

#[tokio::test]
async fn with_no_tenant_set_the_application_role_sees_nothing() {
    let s = store().await;
    s.store
        .append(
            Uuid::new_v4(),
            vec![append(
                &booking("b"),
                ExpectedVersion::NoStream,
                vec![event("Requested", 0)],
            )],
        )
        .await
        .unwrap();
    let mut conn = PgConnection::connect(&s.db.app_url()).await.unwrap();
    assert_eq!(count_visible(&mut conn).await, 0);
}

#[tokio::test]
async fn the_tenant_setting_does_not_outlive_its_transaction_on_a_pooled_connection() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    s.store
        .append(
            tenant,
            vec![append(
                &booking("b"),
                ExpectedVersion::NoStream,
                vec![event("Requested", 0)],
            )],
        )
        .await
        .unwrap();
    // One connection in the pool: the next user gets the very same session.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&s.db.app_url())
        .await
        .unwrap();
    let store = eventstore::EventStore::new(pool.clone());
    let mut tx = store.begin(tenant).await.unwrap();
    assert_eq!(count_visible(tx.conn()).await, 1);
    tx.commit().await.unwrap();

    let mut conn = pool.acquire().await.unwrap();
    let setting: Option<String> =
        sqlx::query_scalar("select current_setting('app.tenant_id', true)")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        setting.as_deref(),
        Some(""),
        "transaction-local, gone after commit"
    );
    assert_eq!(count_visible(&mut conn).await, 0);
}

#[tokio::test]
async fn the_application_role_is_not_superuser_owns_nothing_and_cannot_bypass_rls() {
    let s = store().await;
    let mut conn = PgConnection::connect(&s.db.app_url()).await.unwrap();
    // The application role, and the projector's and the sender's, which it may take for a
    // batch.
    for role in ["booking_app", "booking_projector", "booking_sender"] {
        let (superuser, bypass, createrole, createdb): (bool, bool, bool, bool) = sqlx::query_as(
            "select rolsuper, rolbypassrls, rolcreaterole, rolcreatedb from pg_roles where rolname = $1",
        )
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(!superuser && !bypass && !createrole && !createdb, "{role}");

        let owned: i64 = sqlx::query_scalar(
            "select count(*) from pg_class c join pg_roles r on r.oid = c.relowner where r.rolname = $1",
        )
        .bind(role)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert_eq!(owned, 0, "{role} owns no relation");

        let member_of_owner: bool =
            sqlx::query_scalar("select pg_has_role($1, 'booking_owner', 'member')")
                .bind(role)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(!member_of_owner, "{role}");
    }
    for role in ["booking_projector", "booking_sender"] {
        let logs_in: bool =
            sqlx::query_scalar("select rolcanlogin from pg_roles where rolname = $1")
                .bind(role)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert!(!logs_in, "{role} is only ever taken, never logged in as");
    }

    let (rls, forced): (bool, bool) = sqlx::query_as(
        "select relrowsecurity, relforcerowsecurity from pg_class where relname = 'events'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(rls && forced, "RLS enabled and forced on events");
}

#[tokio::test]
async fn events_cannot_be_changed_or_deleted_by_anyone() {
    let s = store().await;
    let tenant = Uuid::new_v4();
    s.store
        .append(
            tenant,
            vec![append(
                &booking("b"),
                ExpectedVersion::NoStream,
                vec![event("Requested", 0)],
            )],
        )
        .await
        .unwrap();

    let mut tx = s.store.begin(tenant).await.unwrap();
    let update = sqlx::query("update events set payload = '{}'")
        .execute(tx.conn())
        .await;
    assert!(
        update
            .unwrap_err()
            .to_string()
            .contains("permission denied")
    );
    tx.rollback().await.unwrap();

    // The owner is subject to the forced policies and has none: it sees no row to change.
    let mut owner = PgConnection::connect(&s.db.owner_url()).await.unwrap();
    let changed = sqlx::query("update events set payload = '{}'")
        .execute(&mut owner)
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 0);

    // A superuser bypasses RLS and privileges; the trigger still refuses.
    let mut superuser = PgConnection::connect(&s.db.superuser_url()).await.unwrap();
    for statement in [
        "update events set payload = '{}'",
        "delete from events",
        "truncate events",
    ] {
        let err = sqlx::query(statement)
            .execute(&mut superuser)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
    let count: i64 = sqlx::query_scalar("select count(*) from events where payload = '{\"n\": 0}'")
        .fetch_one(&mut superuser)
        .await
        .unwrap();
    assert_eq!(count, 1, "the event is unchanged");
}

#[tokio::test]
async fn the_operator_reads_every_tenant_and_writes_nothing() {
    let s = store().await;
    let tenants = [Uuid::new_v4(), Uuid::new_v4()];
    for tenant in tenants {
        s.store
            .append(
                tenant,
                vec![append(
                    &booking("b"),
                    ExpectedVersion::NoStream,
                    vec![event("Requested", 0)],
                )],
            )
            .await
            .unwrap();
    }
    assert_eq!(read_all_until(&s.log, Position::START, 2).await.len(), 2);

    let mut conn = PgConnection::connect(&s.db.operator_url()).await.unwrap();
    let insert = sqlx::query(
        "insert into events (tenant_id, stream_type, stream_id, version, event_id, event_type, schema_version, payload)
         values ($1, 'booking', 'x', 1, $2, 'Requested', 1, '{}')",
    )
    .bind(tenants[0])
    .bind(Uuid::new_v4())
    .execute(&mut conn)
    .await;
    assert!(
        insert
            .unwrap_err()
            .to_string()
            .contains("permission denied")
    );
}
