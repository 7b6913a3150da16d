//! Layered configuration: built-in defaults, then an optional TOML file, then `APP__…`
//! environment variables (`APP__DATABASE__URL`, `APP__HTTP__PORT`, …). Secrets are wrapped so
//! they never reach a log line.

use std::path::PathBuf;

use anyhow::Context as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Defaults every service shares; a service adds its own (at least its port) on top.
const COMMON_DEFAULTS: &str = r#"
[http]
host = "127.0.0.1"

[database]
url = "postgres://booking_app:booking_app@127.0.0.1:5432/booking"
operator_url = "postgres://booking_operator:booking_operator@127.0.0.1:5432/booking"
max_connections = 16
acquire_timeout_ms = 3000

[nats]
url = "nats://127.0.0.1:4223"
namespace = ""
storage = "file"

[redis]
url = "redis://127.0.0.1:6379"
key_prefix = "booking:"

[log]
filter = "info,sqlx=warn"
format = "pretty"
"#;

/// Loads a service's settings. The file is `$APP_CONFIG_FILE` if set, else
/// `config/<service>.toml` if it exists.
pub fn load<T: DeserializeOwned>(service: &str, service_defaults: &str) -> anyhow::Result<T> {
    let file = std::env::var_os("APP_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(format!("config/{service}.toml")));
    let required = std::env::var_os("APP_CONFIG_FILE").is_some();
    config::Config::builder()
        .add_source(config::File::from_str(
            COMMON_DEFAULTS,
            config::FileFormat::Toml,
        ))
        .add_source(config::File::from_str(
            service_defaults,
            config::FileFormat::Toml,
        ))
        .add_source(config::File::from(file.clone()).required(required))
        .add_source(
            config::Environment::with_prefix("APP")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()
        .and_then(|c| c.try_deserialize())
        .with_context(|| {
            format!(
                "invalid configuration for {service} (file {})",
                file.display()
            )
        })
}

#[derive(Debug, Clone, Deserialize)]
pub struct HttpSettings {
    pub host: String,
    pub port: u16,
    /// The most a request may take from its first byte to its answer (a body that trickles
    /// in counts against it); past it the answer is 408, problem+json, and the connection
    /// closes. A stream (server-sent events) is timed until it starts.
    #[serde(default = "default_request_seconds")]
    pub request_seconds: u64,
    /// The requests this instance handles at once, where a service bounds them
    /// ([`crate::serve::bounded`]; 0: no bound). One past it waits its turn, up to
    /// `queue_ms`.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long a request waits for a turn before it is answered 503 with `Retry-After`.
    #[serde(default = "default_queue_ms")]
    pub queue_ms: u64,
}

fn default_request_seconds() -> u64 {
    30
}

fn default_max_in_flight() -> usize {
    64
}

fn default_queue_ms() -> u64 {
    5_000
}

impl HttpSettings {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    pub fn request_limit(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.request_seconds.max(1))
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    /// The application role: owns nothing, confined to one tenant per transaction.
    pub url: SecretString,
    /// The operator role: cross-tenant reads (relay, replay, operator audit).
    pub operator_url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
    /// The application role on a streaming-replication hot standby, for the query API's
    /// reads that allow it (see `query-api`'s reader). Unset: everything reads the primary.
    #[serde(default)]
    pub replica_url: Option<SecretString>,
}

impl DatabaseSettings {
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }

    pub fn operator_url(&self) -> &str {
        self.operator_url.expose_secret()
    }

    pub fn replica_url(&self) -> Option<&str> {
        self.replica_url.as_ref().map(|url| url.expose_secret())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct NatsSettings {
    pub url: String,
    /// Empty in production; a lowercase prefix isolates a test or a second environment.
    pub namespace: String,
    pub storage: StorageSetting,
    /// The service's own NATS user and password (`nats/auth.conf` says which subjects each
    /// user may use). Unset only against a server without authentication.
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<SecretString>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StorageSetting {
    File,
    Memory,
}

impl NatsSettings {
    pub fn namespace(&self) -> anyhow::Result<nats::Namespace> {
        if self.namespace.is_empty() {
            Ok(nats::Namespace::root())
        } else {
            Ok(nats::Namespace::with_prefix(&self.namespace)?)
        }
    }

    /// The login, when both a user and a password are set; an error when only one is.
    pub fn login(&self) -> anyhow::Result<Option<nats::Login>> {
        login(self.user.as_deref(), self.password.as_ref(), "nats")
    }

    /// Connects as this service's user (see [`nats::connect`]); `name` names the connection in
    /// the server's monitoring.
    pub async fn connect(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        nats::connect(&self.url, name, self.login()?.as_ref()).await
    }

    pub fn storage(&self) -> nats::Storage {
        match self.storage {
            StorageSetting::File => nats::Storage::File,
            StorageSetting::Memory => nats::Storage::Memory,
        }
    }
}

/// A NATS login from a user and a password setting (`section` names them in the error).
pub fn login(
    user: Option<&str>,
    password: Option<&SecretString>,
    section: &str,
) -> anyhow::Result<Option<nats::Login>> {
    match (user, password) {
        (None, None) => Ok(None),
        (Some(user), Some(password)) if !user.is_empty() => Ok(Some(nats::Login {
            user: user.to_owned(),
            password: password.clone(),
        })),
        _ => anyhow::bail!("{section}: set both the NATS user and its password, or neither"),
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LogSettings {
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The settings every service has. A service with more (the projector's relay) declares its
/// own struct with these fields plus its own.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceSettings {
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub nats: NatsSettings,
    pub redis: RedisSettings,
    pub log: LogSettings,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Probe {
        http: HttpSettings,
        database: DatabaseSettings,
        nats: NatsSettings,
    }

    // One test touches the process environment, so nothing races on it.
    #[test]
    fn defaults_then_file_then_environment() {
        let probe: Probe = load("probe-without-file", "[http]\nport = 9000").unwrap();
        assert_eq!(probe.http.port, 9000);
        assert_eq!(probe.nats.storage, StorageSetting::File);
        assert!(probe.database.url().contains("booking_app"));
        assert!(
            !format!("{:?}", probe.database).contains("booking_app:booking_app"),
            "secrets must not print"
        );

        // Edition 2024 makes `set_var` unsafe and this crate forbids unsafe code, so the
        // environment layer is checked in a child process running the test below.
        let file = std::env::temp_dir().join(format!("settings-{}.toml", std::process::id()));
        std::fs::write(
            &file,
            "[http]\nport = 9200\n[nats]\nnamespace = \"fromfile\"\n",
        )
        .unwrap();
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "settings::tests::child_reads_environment",
                "--nocapture",
            ])
            .env("APP_CONFIG_FILE", &file)
            .env("APP__HTTP__PORT", "9123")
            .env("PLATFORM_SETTINGS_CHILD", "1")
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&file);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}");
        // The file overrides the defaults; the environment overrides the file.
        assert!(stdout.contains("port=9123 namespace=fromfile"), "{stdout}");
    }

    #[test]
    fn child_reads_environment() {
        if std::env::var_os("PLATFORM_SETTINGS_CHILD").is_none() {
            return;
        }
        let probe: Probe = load("probe-without-file", "[http]\nport = 9000").unwrap();
        println!(
            "port={} namespace={}",
            probe.http.port,
            probe.nats.namespace().unwrap().prefix()
        );
    }
}
