//! The three services start, report readiness truthfully and stop cleanly.

use std::process::Stdio;
use std::time::Duration;

use e2e_tests::{
    REDIS_URL, binary, command_api_settings, free_port, projector_settings, query_api_settings,
    service_settings, wait_for_status,
};
use testkit::{TestDb, TestNats};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn every_service_is_healthy_and_ready_when_its_dependencies_answer() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    let stop = CancellationToken::new();

    let command = command_api::Application::build(command_api_settings(service_settings(
        &db, &nats, REDIS_URL,
    )))
    .await
    .unwrap();
    let query = query_api::Application::build(query_api_settings(&db, &nats))
        .await
        .unwrap();
    let projector = projector::Application::build(projector_settings(&db, &nats))
        .await
        .unwrap();
    let ports = [command.port(), query.port(), projector.port()];
    let tasks = [
        tokio::spawn(command.run_until_stopped(stop.clone())),
        tokio::spawn(query.run_until_stopped(stop.clone())),
        tokio::spawn(projector.run_until_stopped(stop.clone())),
    ];

    for port in ports {
        let health = wait_for_status(
            &format!("http://127.0.0.1:{port}/healthz"),
            200,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(health, Some(200), "port {port} healthz");
        let ready = wait_for_status(
            &format!("http://127.0.0.1:{port}/readyz"),
            200,
            Duration::from_secs(10),
        )
        .await;
        assert_eq!(ready, Some(200), "port {port} readyz");
    }

    stop.cancel();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops in time")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test]
async fn readiness_answers_503_and_names_the_dependency_that_is_down() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    // Nothing listens on port 1.
    let app = command_api::Application::build(command_api_settings(service_settings(
        &db,
        &nats,
        "redis://127.0.0.1:1",
    )))
    .await
    .unwrap();
    let port = app.port();
    let stop = CancellationToken::new();
    let task = tokio::spawn(app.run_until_stopped(stop.clone()));

    let response = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["nats"], "ok");
    assert!(
        body["checks"]["redis"]
            .as_str()
            .unwrap()
            .starts_with("down"),
        "{body}"
    );

    // The process itself is fine: liveness stays green.
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn each_service_binary_starts_from_environment_settings_and_exits_cleanly_on_sigterm() {
    let db = TestDb::new().await;
    let nats = TestNats::new().await;
    for name in ["command-api", "query-api", "projector"] {
        let port = free_port();
        let mut child = tokio::process::Command::new(binary(name))
            .env("APP__HTTP__PORT", port.to_string())
            .env("APP__DATABASE__URL", db.app_url())
            .env("APP__DATABASE__OPERATOR_URL", db.operator_url())
            .env("APP__NATS__URL", &nats.url)
            .envs(e2e_tests::nats_login_env(name))
            .env("APP__NATS__NAMESPACE", nats.ns.prefix())
            .env("APP__NATS__STORAGE", "memory")
            .env("APP__LOG__FILTER", "warn")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let ready = wait_for_status(
            &format!("http://127.0.0.1:{port}/readyz"),
            200,
            Duration::from_secs(20),
        )
        .await;
        assert_eq!(ready, Some(200), "{name} ready");

        let pid = child.id().unwrap().to_string();
        // The command API turns transparent huge pages off (its memory peak); the others keep
        // the system's setting.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        if let Some(thp) = status.lines().find_map(|l| l.strip_prefix("THP_enabled:")) {
            assert_eq!(
                thp.trim() == "0",
                name == "command-api",
                "{name}: THP_enabled {thp}"
            );
        }
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .expect("exits in time")
            .unwrap();
        assert!(status.success(), "{name} exits 0 on SIGTERM, got {status}");
    }
}
