//! Members' sessions: the browser holds only a random id in an HttpOnly, SameSite=Strict cookie
//! (Secure and `__Host-` prefixed behind TLS); Redis holds, under the id's SHA-256, the member's
//! access and refresh tokens and the session's CSRF token, for as long as the session is used.
//! Without Redis nobody is signed in: pages answer 503, never a session of someone else.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::COOKIE;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use redis::AsyncCommands as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// What a session keeps.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    /// Forms carry it for browsers that send no `Sec-Fetch-Site`.
    pub csrf: String,
}

impl Session {
    /// The member as the platform records them in events (`user:<id>`), read from their
    /// access token for display only (the APIs verify it; the dashboard never trusts it).
    pub fn actor(&self) -> Option<String> {
        let payload = self.access_token.split('.').nth(1)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        Some(format!("user:{}", claims["sub"].as_str()?))
    }
}

#[derive(Clone)]
pub struct Sessions {
    client: redis::Client,
    prefix: String,
    secure: bool,
    idle: Duration,
}

/// A random, URL-safe token of 32 bytes.
pub fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    pub fn new(client: redis::Client, prefix: &str, secure: bool, idle: Duration) -> Self {
        Self {
            client,
            prefix: prefix.to_owned(),
            secure,
            idle,
        }
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-session"
        } else {
            "session"
        }
    }

    fn key(&self, id: &str) -> String {
        format!(
            "{}dashboard:session:{}",
            self.prefix,
            hex::encode(Sha256::digest(id.as_bytes()))
        )
    }

    async fn connection(&self) -> anyhow::Result<redis::aio::MultiplexedConnection> {
        Ok(tokio::time::timeout(
            Duration::from_secs(2),
            self.client.get_multiplexed_async_connection(),
        )
        .await??)
    }

    /// The session id the request's cookie names, if any.
    pub fn id_of(&self, headers: &HeaderMap) -> Option<String> {
        let name = self.cookie_name();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .filter(|v| v.len() == 43)
    }

    /// The session of `id`, its idle time restarted.
    pub async fn get(&self, id: &str) -> anyhow::Result<Option<Session>> {
        let mut conn = self.connection().await?;
        let key = self.key(id);
        let raw: Option<String> = conn
            .get_ex(&key, redis::Expiry::EX(self.idle.as_secs()))
            .await?;
        Ok(raw.and_then(|r| serde_json::from_str(&r).ok()))
    }

    pub async fn put(&self, id: &str, session: &Session) -> anyhow::Result<()> {
        let mut conn = self.connection().await?;
        let _: () = conn
            .set_ex(
                self.key(id),
                serde_json::to_string(session)?,
                self.idle.as_secs(),
            )
            .await?;
        Ok(())
    }

    pub async fn forget(&self, id: &str) -> anyhow::Result<()> {
        let mut conn = self.connection().await?;
        let _: () = conn.del(self.key(id)).await?;
        Ok(())
    }

    /// The `Set-Cookie` value that names session `id` in the browser.
    pub fn cookie(&self, id: &str) -> String {
        format!(
            "{}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
            self.cookie_name(),
            self.idle.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// The `Set-Cookie` value that removes it.
    pub fn cleared(&self) -> String {
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
            self.cookie_name(),
            if self.secure { "; Secure" } else { "" }
        )
    }
}
