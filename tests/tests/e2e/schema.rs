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
