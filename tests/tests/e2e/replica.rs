//! The query API beside a streaming-replication hot standby (`database.replica_url`): reads go
//! to the standby, a consistency token never reads older than its write (the standby answers
//! when it has replayed that far, the primary otherwise), and a standby that stops leaves the
//! primary to answer.

use std::time::Duration;

use e2e_tests::tenant::{Tenant, slot};
use e2e_tests::{
    REDIS_URL, eventually, projector_settings, query_api_settings, spawn_command_api_on,
    spawn_projector, spawn_query_api,
};
use platform::db::{APP_ROLE, OWNER_ROLE, url_for, url_on};
use secrecy::SecretString;
use sqlx::Connection as _;
use testkit::{PgCluster, TestDb, TestNats};

async fn on_standby(standby: &PgCluster, statement: &str) {
    let mut conn = sqlx::PgConnection::connect(&url_on(&standby.admin_url(), "booking").unwrap())
        .await
        .unwrap();
    sqlx::query(statement).execute(&mut conn).await.unwrap();
}

fn booking_ids(page: &serde_json::Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{page}"))
        .iter()
        .map(|b| b["booking_id"].as_str().unwrap().to_owned())
        .collect()
}

/// How many reads the query API answered from `source`, as its metrics count them.
async fn reads_from(query: &str, source: &str) -> u64 {
    let text = reqwest::get(format!("{query}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = format!("query_reads_total{{source=\"{source}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&series)?.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn reads_go_to_the_standby_and_a_consistency_token_never_reads_older_than_its_write() {
    let primary = PgCluster::start();
    platform::db::ensure_database(&primary.admin_url(), "booking")
        .await
        .unwrap();
    platform::db::migrate(&url_for(&primary.admin_url(), OWNER_ROLE, "booking").unwrap())
        .await
        .unwrap();
    let standby = PgCluster::standby_of(&primary);
    let db = TestDb::adopt(&primary.admin_url(), "booking");
    let nats = TestNats::new().await;
    let _projector = spawn_projector(projector_settings(&db, &nats)).await;
    let mut settings = query_api_settings(&db, &nats);
    settings.database.replica_url = Some(SecretString::from(
        url_for(&standby.admin_url(), APP_ROLE, "booking").unwrap(),
    ));
    let query = spawn_query_api(settings).await;
    let app = spawn_command_api_on(db, nats, "http://127.0.0.1:1", REDIS_URL, |_| {}).await;
    let t = Tenant {
        owner: app.onboard("standby").await,
        app: &app,
    };
    let owner = t.owner.access_token.clone();
    let service = t.configured().await;
    let (status, first) = t.book(&service, &slot(10), "+34600000001", None).await;
    assert_eq!(status, 201, "{first}");
    let first_id = first["booking_id"].as_str().unwrap().to_owned();
    let (status, page) = query
        .get("/v1/bookings", &owner, first["consistency_token"].as_str())
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(booking_ids(&page), std::slice::from_ref(&first_id));
    // The standby follows: a read without a token sees the booking soon.
    eventually(Duration::from_secs(20), || async {
        let (_, page) = query.get("/v1/bookings", &owner, None).await;
        (page["items"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await
    .expect("the standby replays the booking");

    // The standby stops replaying (as one far behind would): a read without a token is the
    // standby's, which has not seen the second booking; one with the second booking's token
    // is the primary's, which has.
    on_standby(&standby, "select pg_wal_replay_pause()").await;
    let (status, second) = t.book(&service, &slot(12), "+34600000002", None).await;
    assert_eq!(status, 201, "{second}");
    let second_id = second["booking_id"].as_str().unwrap().to_owned();
    let second_token = second["consistency_token"].as_str().unwrap().to_owned();
    let (status, page) = query.get("/v1/bookings", &owner, Some(&second_token)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(booking_ids(&page), [first_id.clone(), second_id.clone()]);
    let (status, page) = query.get("/v1/bookings", &owner, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        booking_ids(&page),
        std::slice::from_ref(&first_id),
        "read on the standby"
    );
    // A token no write answered with is still refused, not waited for on the standby.
    let (status, body) = query
        .get("/v1/bookings", &owner, Some("999999999.999999999"))
        .await;
    assert_eq!(status, 422, "{body}");

    // Replaying again, the standby answers the token itself, and reads without one catch up.
    on_standby(&standby, "select pg_wal_replay_resume()").await;
    eventually(Duration::from_secs(20), || async {
        let (_, page) = query.get("/v1/bookings", &owner, None).await;
        (page["items"].as_array().map(Vec::len) == Some(2)).then_some(())
    })
    .await
    .expect("the standby replays the second booking");
    let replica_reads = reads_from(&query.address, "replica").await;
    let (status, page) = query
        .get(
            &format!("/v1/bookings/{second_id}"),
            &owner,
            Some(&second_token),
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        reads_from(&query.address, "replica").await,
        replica_reads + 1,
        "the standby answered the token"
    );

    // The standby is gone: the primary answers every read, with a token or without.
    standby.kill();
    let (status, page) = query.get("/v1/bookings", &owner, None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(booking_ids(&page), [first_id.clone(), second_id.clone()]);
    let (status, page) = query.get("/v1/bookings", &owner, Some(&second_token)).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(booking_ids(&page).len(), 2);
}
