//! The schema agrees with the code: status-like columns allow exactly the labels the domain
//! (or the sender) writes, the projections are the ones the migrations catalogue, and the
//! statements the projector builds at run time prepare against both the live tables and a
//! rebuild's shadows.

use domain::access::{Permission, Role};
use domain::booking::{BookingStatus, Channel};
use domain::conversation::{DELIVERY_LABELS, Direction};
use domain::plan::Plan;
use domain::tenant::TenantStatus;
use projector::projection::Projection;
use projector::sender::ClaimState;
use sqlx::{Executor as _, PgPool};
use testkit::TestDb;

/// The quoted literals of a constraint's definition: the labels it allows.
async fn allowed(superuser: &PgPool, table: &str, constraint: &str) -> Vec<String> {
    let definition: String = sqlx::query_scalar(
        "select pg_get_constraintdef(c.oid) from pg_constraint c
           join pg_class t on t.oid = c.conrelid
          where t.relname = $1 and c.conname = $2",
    )
    .bind(table)
    .bind(constraint)
    .fetch_one(superuser)
    .await
    .unwrap_or_else(|e| panic!("{table}.{constraint}: {e}"));
    let mut labels: Vec<String> = definition
        .split('\'')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    labels.sort();
    labels
}

fn sorted(labels: impl IntoIterator<Item = &'static str>) -> Vec<String> {
    let mut labels: Vec<String> = labels.into_iter().map(str::to_owned).collect();
    labels.sort();
    labels
}

#[tokio::test]
async fn status_columns_allow_exactly_the_labels_the_code_writes() {
    let db = TestDb::new().await;
    let superuser = db.superuser_url_pool().await;
    let checks = [
        (
            "rm_tenants",
            "rm_tenants_status_label",
            TenantStatus::labels(),
        ),
        ("rm_tenants", "rm_tenants_plan_label", Plan::labels()),
        ("rm_users", "rm_users_role_label", Role::labels()),
        (
            "user_credentials",
            "user_credentials_role_label",
            Role::labels(),
        ),
        (
            "rm_bookings",
            "rm_bookings_status_label",
            BookingStatus::labels(),
        ),
        (
            "rm_bookings",
            "rm_bookings_channel_label",
            Channel::labels(),
        ),
        (
            "rm_conversations",
            "rm_conversations_last_direction_label",
            Direction::labels(),
        ),
        (
            "rm_messages",
            "rm_messages_direction_label",
            Direction::labels(),
        ),
        (
            "rm_messages",
            "rm_messages_status_label",
            DELIVERY_LABELS.to_vec(),
        ),
        ("api_keys", "api_keys_scopes_label", Permission::labels()),
        (
            "wa_outbound",
            "wa_outbound_state_label",
            ClaimState::ALL.iter().map(|s| s.as_str()).collect(),
        ),
    ];
    for (table, constraint, labels) in checks {
        assert_eq!(
            allowed(&superuser, table, constraint).await,
            sorted(labels),
            "{table}.{constraint}"
        );
    }
    // And a label nobody defined is refused.
    let bogus = sqlx::query(
        "insert into rm_messages (tenant_id, customer_phone, version, message_id, direction,
             content, at)
         values (gen_random_uuid(), '+34600000000', 1, 'm', 'sideways', '{}', now())",
    )
    .execute(&superuser)
    .await
    .unwrap_err();
    assert_eq!(
        bogus.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("23514"),
        "{bogus}"
    );
}

#[tokio::test]
async fn the_projections_are_the_ones_the_migrations_catalogue() {
    let db = TestDb::new().await;
    let superuser = db.superuser_url_pool().await;
    let catalogued: Vec<String> =
        sqlx::query_scalar("select distinct projection from rm_tables order by 1")
            .fetch_all(&superuser)
            .await
            .unwrap();
    let mut ours: Vec<String> = Projection::ALL
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    ours.sort();
    assert_eq!(catalogued, ours);
}

#[tokio::test]
async fn the_projectors_run_time_statements_prepare_on_live_and_shadow_tables() {
    let db = TestDb::new().await;
    let operator = db.operator_pool().await;
    let app = db.app_pool().await;
    for projection in Projection::ALL {
        sqlx::query("select rm_create_shadows($1)")
            .bind(projection.name())
            .execute(&operator)
            .await
            .unwrap();
        for search_path in ["public", "rebuild, public"] {
            let mut tx = sqlx::Acquire::begin(&app).await.unwrap();
            tx.execute(format!("set local search_path to {search_path}").as_str())
                .await
                .unwrap();
            for sql in projection.applied_sql().all() {
                tx.prepare(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{projection} on {search_path}: {e}\n{sql}"));
            }
        }
        sqlx::query("select rm_drop_shadows($1)")
            .bind(projection.name())
            .execute(&operator)
            .await
            .unwrap();
    }
}

/// `app.tenant_ids` (a batch's tenants) reaches rows only through the projector's role
/// (`booking_projector`, which the projector takes for a batch): every read model, to read and
/// write, and the log and the customers' keys, to read; for the tenants it names alone, and for
/// none when it names none. (And through the WhatsApp sender's role, on its claims alone:
/// `sender::replies_of_many_tenants_are_claimed_and_settled_one_statement_for_all`.)
/// `booking_app` (every query) still checks each row against `app.tenant_id` alone.
#[tokio::test]
async fn a_batchs_tenants_reach_the_projectors_role_alone() {
    let db = TestDb::new().await;
    let superuser = db.superuser_url_pool().await;
    let policies: Vec<(String, String, String)> = sqlx::query_as(
        "select tablename::text, cmd::text, array_to_string(roles, ',') from pg_policies
          where schemaname = 'public'
            and (qual like '%app.tenant_ids%' or with_check like '%app.tenant_ids%')
          order by 1",
    )
    .fetch_all(&superuser)
    .await
    .unwrap();
    let mut expected: Vec<(String, String, String)> =
        sqlx::query_scalar::<_, String>("select table_name::text from rm_tables")
            .fetch_all(&superuser)
            .await
            .unwrap()
            .into_iter()
            .map(|t| (t, "ALL".to_owned(), "booking_projector".to_owned()))
            .chain(["customer_erasures", "customer_keys", "events"].map(|t| {
                (
                    t.to_owned(),
                    "SELECT".to_owned(),
                    "booking_projector".to_owned(),
                )
            }))
            // The WhatsApp sender's claims (migration 34), in its own role.
            .chain(std::iter::once((
                "wa_outbound".to_owned(),
                "ALL".to_owned(),
                "booking_sender".to_owned(),
            )))
            .collect();
    expected.sort();
    assert_eq!(policies, expected);

    let app = db.app_pool().await;
    let (ours, theirs) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    // In a transaction naming `ours`, as `role` (none: booking_app).
    let attempt = |role: Option<&'static str>, sql: &'static str, tenant: uuid::Uuid| {
        let app = app.clone();
        async move {
            let mut tx = app.begin().await.unwrap();
            sqlx::query("select set_config('app.tenant_ids', $1, true)")
                .bind(format!(r#"{{"{ours}": true}}"#))
                .execute(&mut *tx)
                .await
                .unwrap();
            if let Some(role) = role {
                sqlx::query("select set_config('role', $1, true)")
                    .bind(role)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query(sql).bind(tenant).execute(&mut *tx).await
        }
    };
    let refused_by_rls = |result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>, what| {
        let err = result.expect_err(what);
        assert!(
            err.to_string().contains("row-level security"),
            "{what}: {err}"
        );
    };
    let projector = Some("booking_projector");
    let usage = "insert into rm_usage (tenant_id, period) values ($1, '2030-01')";
    let version = "insert into rm_bookings_applied (tenant_id, stream_type, stream_id, version)
                   values ($1, 'booking', 'b', 1)";
    for sql in [usage, version] {
        attempt(projector, sql, ours)
            .await
            .expect("the projector writes a listed tenant's rows");
        refused_by_rls(
            attempt(projector, sql, theirs).await,
            "the projector writes no other tenant's rows",
        );
        refused_by_rls(
            attempt(None, sql, ours).await,
            "booking_app takes app.tenant_id alone",
        );
    }
    let append = "insert into events (tenant_id, stream_type, stream_id, version, event_id,
                      event_type, schema_version, payload, metadata)
                  values ($1, 'booking', 'b', 1, gen_random_uuid(), 'X', 1, '{}', '{}')";
    let denied = attempt(projector, append, ours).await.unwrap_err();
    assert!(
        denied.to_string().contains("permission denied"),
        "the projector appends nothing: {denied}"
    );

    // With no tenant listed, the projector's role sees nothing.
    let mut tenant_tx = app.begin().await.unwrap();
    sqlx::query("select set_config('app.tenant_id', $1, true)")
        .bind(ours.to_string())
        .execute(&mut *tenant_tx)
        .await
        .unwrap();
    sqlx::query("insert into rm_usage (tenant_id, period) values ($1, '2030-02')")
        .bind(ours)
        .execute(&mut *tenant_tx)
        .await
        .unwrap();
    tenant_tx.commit().await.unwrap();
    let mut tx = app.begin().await.unwrap();
    sqlx::query("select set_config('role', 'booking_projector', true)")
        .execute(&mut *tx)
        .await
        .unwrap();
    let seen: i64 = sqlx::query_scalar("select count(*) from rm_usage")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 0, "no list, no rows");
}

/// A rebuild's shadows carry every index of the live tables under its live name (so that a
/// migration naming an index finds it after a rebuild swapped the shadows in): the constraints'
/// and the projections' own at once; the ones only readers use, and the applied versions' keys,
/// once the shadows are loaded.
#[tokio::test]
async fn shadows_get_the_live_indexes_under_their_names_the_readers_ones_after_the_load() {
    let db = TestDb::new().await;
    let superuser = db.superuser_url_pool().await;
    let indexes = |schema: &'static str| {
        let superuser = superuser.clone();
        async move {
            sqlx::query_as::<_, (String, String, String)>(
                "select tablename::text, indexname::text,
                        replace(indexdef, ' ON ' || schemaname || '.', ' ON ')
                   from pg_indexes
                  where schemaname = $1 and tablename in (select table_name from rm_tables)
                  order by 1, 2",
            )
            .bind(schema)
            .fetch_all(&superuser)
            .await
            .unwrap()
        }
    };
    let deferred: Vec<String> =
        sqlx::query_scalar("select index_name from rm_deferred_indexes order by 1")
            .fetch_all(&superuser)
            .await
            .unwrap();
    // A rebuild's first pass writes each stream's applied version once (`load_together`), so
    // the applied versions' keys are built after it too.
    for projection in Projection::ALL {
        let key = format!("rm_{}_applied_pkey", projection.name());
        assert!(deferred.contains(&key), "{key} is built after the load");
    }
    crate::projections::shadows_step(&db, "select rm_create_shadows($1)", &Projection::ALL).await;
    let live = indexes("public").await;
    assert!(
        deferred
            .iter()
            .all(|name| live.iter().any(|(_, index, _)| index == name)),
        "every deferred index is a live one: {deferred:?}"
    );
    let at_once: Vec<_> = live
        .iter()
        .filter(|(_, index, _)| !deferred.contains(index))
        .cloned()
        .collect();
    assert_eq!(indexes("rebuild").await, at_once, "before the load");
    crate::projections::shadows_step(&db, "select rm_index_shadows($1)", &Projection::ALL).await;
    assert_eq!(indexes("rebuild").await, live, "after the load");
}
