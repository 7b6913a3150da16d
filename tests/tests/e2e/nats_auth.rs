//! NATS authentication and least privilege, against the project's server and its shipped
//! users (`nats/auth.conf`): nobody connects anonymously, only the relay publishes events, and
//! each service keeps to its own subjects. That the services can do their work as these users
//! is shown by every other test (they run as them).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use bytes::Bytes;
use futures::StreamExt as _;
use secrecy::ExposeSecret as _;
use testkit::{TestNats, connect_as, login};

/// The services' users, which must not publish events.
const NOT_THE_RELAY: [&str; 4] = ["command-api", "query-api", "projector", "analytics"];

/// A client as `user` that records the errors the server sends it (permission violations).
async fn watched(url: &str, user: &str) -> (async_nats::Client, Arc<Mutex<Vec<String>>>) {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let login = login(user);
    let client = async_nats::ConnectOptions::with_user_and_password(
        login.user.clone(),
        login.password.expose_secret().to_owned(),
    )
    .custom_inbox_prefix(login.inbox_prefix())
    .event_callback(move |event| {
        let seen = seen.clone();
        async move {
            if let async_nats::Event::ServerError(error) = event {
                seen.lock().unwrap().push(error.to_string().to_lowercase());
            }
        }
    })
    .connect(url)
    .await
    .unwrap_or_else(|err| panic!("{user} connects: {err}"));
    (client, errors)
}

async fn violations(errors: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    // The server's -ERR arrives on its own; give it a moment after the flush.
    for _ in 0..50 {
        let found: Vec<String> = errors
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.contains("permissions violation"))
            .cloned()
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Vec::new()
}

async fn events_stream(nats: &TestNats) -> jetstream::stream::Stream {
    nats::provision_events_stream(&nats.jetstream(), &nats.ns, nats::Storage::Memory, 1)
        .await
        .expect("the operator provisions the stream")
}

#[tokio::test]
async fn anonymous_clients_and_wrong_passwords_are_refused() {
    let nats = TestNats::new().await;

    let anonymous = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(&nats.url)
        .await;
    let error = anonymous.expect_err("an anonymous client is refused");
    assert_eq!(
        error.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation,
        "{error}"
    );

    let wrong = async_nats::ConnectOptions::with_user_and_password(
        "relay".into(),
        "not-the-password".into(),
    )
    .connection_timeout(Duration::from_secs(2))
    .connect(&nats.url)
    .await;
    let error = wrong.expect_err("a wrong password is refused");
    assert_eq!(
        error.kind(),
        async_nats::ConnectErrorKind::AuthorizationViolation
    );

    // Every service's own login is accepted.
    for user in [
        "operator",
        "relay",
        "command-api",
        "query-api",
        "projector",
        "analytics",
    ] {
        connect_as(&nats.url, user).await.flush().await.unwrap();
    }
}

#[tokio::test]
async fn only_the_relay_publishes_events() {
    let nats = TestNats::new().await;
    let stream = events_stream(&nats).await;
    let tenant = uuid::Uuid::new_v4();
    let subject = nats
        .ns
        .event_subject(tenant, "booking", "AppointmentBooked");

    for user in NOT_THE_RELAY {
        let (client, errors) = watched(&nats.url, user).await;
        client
            .publish(subject.clone(), Bytes::from_static(b"{\"forged\":true}"))
            .await
            .unwrap();
        client.flush().await.unwrap();
        let refused = violations(&errors).await;
        assert!(
            refused.iter().any(|e| e.contains("publish")),
            "{user} was not refused: {refused:?}"
        );
    }

    // The relay's message is the stream's first: nothing before it was stored.
    let relay = jetstream::new(connect_as(&nats.url, "relay").await);
    let ack = relay
        .publish(subject.clone(), Bytes::from_static(b"{\"real\":true}"))
        .await
        .expect("the relay publishes")
        .await
        .expect("the stream stores it");
    assert_eq!(ack.sequence, 1);
    let first = stream.get_raw_message(1).await.unwrap();
    assert_eq!(first.payload, Bytes::from_static(b"{\"real\":true}"));
}

#[tokio::test]
async fn a_service_keeps_to_its_own_subjects() {
    let nats = TestNats::new().await;
    let stream = events_stream(&nats).await;
    let tenant = uuid::Uuid::new_v4();

    // Reading the events directly off the subjects (outside a durable consumer, which the
    // operator grants) is refused to every service.
    let mut spies = Vec::new();
    for user in [
        "command-api",
        "query-api",
        "projector",
        "analytics",
        "relay",
    ] {
        let (client, errors) = watched(&nats.url, user).await;
        let subscription = client.subscribe(nats.ns.all_events()).await.unwrap();
        client.flush().await.unwrap();
        spies.push((user, client, errors, subscription));
    }
    let relay = jetstream::new(connect_as(&nats.url, "relay").await);
    relay
        .publish(
            nats.ns
                .event_subject(tenant, "booking", "AppointmentBooked"),
            Bytes::from_static(b"{}"),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    for (user, _client, errors, mut subscription) in spies {
        let refused = violations(&errors).await;
        assert!(
            refused.iter().any(|e| e.contains("subscription")),
            "{user} subscribed to the events: {refused:?}"
        );
        let got = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
        assert!(!matches!(got, Ok(Some(_))), "{user} read an event");
    }

    // Another service's inbox (where its pulled messages arrive) is out of reach.
    let (analytics, errors) = watched(&nats.url, "analytics").await;
    let _spy = analytics
        .subscribe(format!("{}.>", login("projector").inbox_prefix()))
        .await
        .unwrap();
    analytics.flush().await.unwrap();
    assert!(!violations(&errors).await.is_empty());

    // The projector pulls its own consumers, not the analytics consumer; neither deletes the
    // stream.
    let operator = nats.jetstream();
    let analytics_consumer = nats::consume::durable_consumer(
        &operator,
        &nats.ns,
        "analytics",
        nats.ns.all_events(),
        &Default::default(),
    )
    .await
    .unwrap()
    .unwrap();
    drop(analytics_consumer);
    let projector = jetstream::new(connect_as(&nats.url, "projector").await);
    let mut projector = projector;
    projector.set_timeout(Duration::from_millis(500));
    let as_projector = projector.get_stream(nats.ns.events_stream()).await.unwrap();
    assert!(
        as_projector
            .get_consumer::<jetstream::consumer::pull::Config>("analytics")
            .await
            .is_err(),
        "the projector looked up the analytics consumer"
    );
    assert!(
        projector
            .delete_stream(nats.ns.events_stream())
            .await
            .is_err(),
        "the projector deleted the stream"
    );
    let mut analytics = jetstream::new(connect_as(&nats.url, "analytics").await);
    analytics.set_timeout(Duration::from_millis(500));
    assert!(
        analytics
            .delete_stream(nats.ns.events_stream())
            .await
            .is_err()
    );
    let as_analytics = analytics.get_stream(nats.ns.events_stream()).await.unwrap();
    assert!(
        as_analytics
            .get_consumer::<jetstream::consumer::pull::Config>("projections")
            .await
            .is_err(),
        "analytics looked up a projector's consumer"
    );
    assert!(
        as_analytics
            .get_consumer::<jetstream::consumer::pull::Config>("analytics")
            .await
            .is_ok(),
        "analytics looks up its own consumer"
    );
    assert_eq!(stream.cached_info().config.name, nats.ns.events_stream());
}

#[test]
fn every_shipped_server_config_is_valid_with_authentication() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for config in [
        "nats/single.conf",
        "nats/cluster/n1.conf",
        "nats/cluster/n2.conf",
        "nats/cluster/n3.conf",
    ] {
        let checked = std::process::Command::new("nats-server")
            .current_dir(root)
            .envs(testkit::dev_env())
            .args(["-t", "-c", config])
            .output()
            .expect("nats-server runs");
        assert!(
            checked.status.success(),
            "{config}: {}",
            String::from_utf8_lossy(&checked.stderr)
        );
        let text = std::fs::read_to_string(format!("{root}/{config}")).unwrap();
        assert!(text.contains("include"), "{config} includes auth.conf");
    }
    // Without the passwords the server does not start at all (no user falls back to none).
    let unset = std::process::Command::new("nats-server")
        .current_dir(root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .args(["-t", "-c", "nats/single.conf"])
        .output()
        .unwrap();
    assert!(!unset.status.success());
}
