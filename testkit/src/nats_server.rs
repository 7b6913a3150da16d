use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use nats::Namespace;

use crate::free_port;

fn shared_nats_url() -> String {
    std::env::var("BOOKING_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4223".to_owned())
}

/// The development passwords the project's servers run with (`nats/dev.env`).
const DEV_ENV: &str = include_str!("../../nats/dev.env");

/// The users and permissions every shipped server config includes.
const AUTH_CONF: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../nats/auth.conf");

/// `nats/dev.env`'s variables, as the servers' environment.
pub fn dev_env() -> impl Iterator<Item = (&'static str, &'static str)> {
    DEV_ENV
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
}

/// The login of a user of `nats/auth.conf` (`operator`, `relay`, `command-api`, `query-api`,
/// `projector`, `analytics`) with its development password.
pub fn login(user: &str) -> nats::Login {
    let variable = format!(
        "BOOKING_NATS_{}_PASSWORD",
        user.to_ascii_uppercase().replace('-', "_")
    );
    let password = dev_env()
        .find(|(name, _)| *name == variable)
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("nats/dev.env has no {variable}"));
    nats::Login {
        user: user.to_owned(),
        password: password.to_owned().into(),
    }
}

/// Connects to the server at `url` as `user` (see [`login`]).
pub async fn connect_as(url: &str, user: &str) -> async_nats::Client {
    nats::connect(url, user, Some(&login(user)))
        .await
        .unwrap_or_else(|err| panic!("cannot reach NATS at {url}: {err:#}"))
}

/// A namespace of one's own on a NATS server: its events stream is deleted when this value is
/// dropped.
pub struct TestNats {
    pub url: String,
    pub ns: Namespace,
    pub client: async_nats::Client,
}

impl TestNats {
    /// A fresh namespace on the shared server.
    pub async fn new() -> Self {
        Self::on(&shared_nats_url()).await
    }

    /// A fresh namespace on the server at `url`; the test's own client is the operator.
    pub async fn on(url: &str) -> Self {
        let client = connect_as(url, "operator").await;
        Self {
            url: url.to_owned(),
            ns: Namespace::unique(),
            client,
        }
    }

    pub fn jetstream(&self) -> jetstream::Context {
        jetstream::new(self.client.clone())
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        let url = self.url.clone();
        let stream = self.ns.events_stream();
        crate::block_on_cleanup(async move {
            let operator = login("operator");
            let connect = async_nats::ConnectOptions::with_user_and_password(
                operator.user,
                secrecy::ExposeSecret::expose_secret(&operator.password).to_owned(),
            )
            .connection_timeout(Duration::from_millis(500))
            .connect(&url);
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), connect).await {
                let _ = tokio::time::timeout(
                    Duration::from_secs(2),
                    jetstream::new(client).delete_stream(&stream),
                )
                .await;
            }
        });
    }
}

/// A nats-server process of one's own (JetStream on, file storage in a private directory, the
/// users of `nats/auth.conf`), for tests that stop and restart the server. Killed and its directory removed when dropped.
pub struct NatsServer {
    port: u16,
    store_dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn start() -> Self {
        let port = free_port();
        let store_dir = std::env::temp_dir().join(format!("booking-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&store_dir).expect("a store directory");
        let mut server = Self {
            port,
            store_dir,
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (no graceful shutdown), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM), as an operator's restart would.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&binary)
            .envs(dev_env())
            .args(["-c", AUTH_CONF])
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
        self.child = Some(child);
        wait_for_port(self.port, "nats-server");
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store_dir);
    }
}

/// Waits (up to 10 s) until a server started on `port` accepts connections.
pub(crate) fn wait_for_port(port: u16, server: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{server} did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A 3-node JetStream cluster of one's own (each node a [`NatsServer`]-like process on free
/// ports, routed to the others, the users of `nats/auth.conf`), for tests that lose a node.
/// Killed and its directories removed when dropped.
pub struct NatsCluster {
    nodes: Vec<ClusterNode>,
}

struct ClusterNode {
    name: String,
    port: u16,
    cluster_port: u16,
    store_dir: PathBuf,
    child: Option<Child>,
}

impl NatsCluster {
    pub fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let nodes = (1..=3)
            .map(|n| ClusterNode {
                name: format!("booking-test-{}-n{n}", &id[..8]),
                port: free_port(),
                cluster_port: free_port(),
                store_dir: std::env::temp_dir().join(format!("booking-nats-{id}-n{n}")),
                child: None,
            })
            .collect();
        let mut cluster = Self { nodes };
        for n in 0..3 {
            cluster.restart(n);
        }
        cluster
    }

    /// Every node's client URL, comma-separated (what a client is given).
    pub fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `n`'s (0, 1 or 2) client URL.
    pub fn node_url(&self, n: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[n].port)
    }

    /// Kills node `n` at once, as a crash would.
    pub fn kill(&mut self, n: usize) {
        if let Some(mut child) = self.nodes[n].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `n` again on its ports and storage, and waits until it accepts connections.
    pub fn restart(&mut self, n: usize) {
        self.kill(n);
        let routes = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != n)
            .map(|(_, node)| format!("nats-route://127.0.0.1:{}", node.cluster_port))
            .collect::<Vec<_>>()
            .join(",");
        let node = &mut self.nodes[n];
        std::fs::create_dir_all(&node.store_dir).expect("a store directory");
        let binary = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".into());
        let child = Command::new(&binary)
            .envs(dev_env())
            .args(["-c", AUTH_CONF, "-a", "127.0.0.1", "-n", &node.name])
            .args(["-p", &node.port.to_string(), "-js", "-sd"])
            .arg(&node.store_dir)
            .args(["--cluster_name", "booking-test"])
            .args([
                "--cluster",
                &format!("nats://127.0.0.1:{}", node.cluster_port),
            ])
            .args(["--routes", &routes])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {binary}: {err}"));
        node.child = Some(child);
        wait_for_port(node.port, "nats-server");
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for n in 0..self.nodes.len() {
            self.kill(n);
            let _ = std::fs::remove_dir_all(&self.nodes[n].store_dir);
        }
    }
}
