//! A local SMTP server for the demo and the tests: it speaks enough SMTP for a real client
//! (`EHLO`/`HELO`, `MAIL FROM`, `RCPT TO`, `DATA` with dot-stuffing, `RSET`, `NOOP`, `QUIT`),
//! accepts every message, keeps it, and lists what it received over HTTP
//! (`GET /messages?to=`). No TLS and no authentication: it listens on loopback only.

use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// One message as received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Mail {
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    /// The body after the headers, unfolded soft line breaks of quoted-printable undone.
    pub body: String,
    /// The message as sent (headers and body).
    pub raw: String,
    pub received_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone, Default)]
pub struct Sink {
    mails: Arc<Mutex<Vec<Mail>>>,
}

impl Sink {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every message received, oldest first.
    pub fn received(&self) -> Vec<Mail> {
        self.mails.lock().expect("not poisoned").clone()
    }

    /// The messages with `address` among their recipients.
    pub fn to(&self, address: &str) -> Vec<Mail> {
        self.received()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Serves SMTP on a free loopback port: its port.
    pub async fn spawn(self) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("an address").port();
        tokio::spawn(self.serve(listener));
        port
    }

    /// Serves SMTP on `listener` until the process ends.
    pub async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let sink = self.clone();
            tokio::spawn(async move {
                if let Err(err) = sink.session(stream).await {
                    tracing::debug!(error = %err, "an SMTP session ended badly");
                }
            });
        }
    }

    async fn session(&self, stream: TcpStream) -> std::io::Result<()> {
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read);
        write.write_all(b"220 smtp-sink ESMTP ready\r\n").await?;
        let (mut from, mut to) = (String::new(), Vec::new());
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_owned();
            let upper = command.to_ascii_uppercase();
            let reply: &[u8] = if upper.starts_with("EHLO") {
                b"250-smtp-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
            } else if upper.starts_with("HELO") {
                b"250 smtp-sink\r\n"
            } else if upper.starts_with("MAIL FROM:") {
                from = address(&command["MAIL FROM:".len()..]);
                to.clear();
                b"250 OK\r\n"
            } else if upper.starts_with("RCPT TO:") {
                to.push(address(&command["RCPT TO:".len()..]));
                b"250 OK\r\n"
            } else if upper == "DATA" {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut raw = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    raw.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                self.keep(from.clone(), std::mem::take(&mut to), raw);
                b"250 OK: queued\r\n"
            } else if upper == "RSET" {
                from.clear();
                to.clear();
                b"250 OK\r\n"
            } else if upper == "NOOP" {
                b"250 OK\r\n"
            } else if upper == "QUIT" {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            } else {
                b"502 Command not implemented\r\n"
            };
            write.write_all(reply).await?;
        }
    }

    fn keep(&self, from: String, to: Vec<String>, raw: String) {
        let (headers, body) = raw
            .split_once("\r\n\r\n")
            .or_else(|| raw.split_once("\n\n"))
            .unwrap_or((raw.as_str(), ""));
        let subject = headers
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_owned();
        let quoted = headers
            .to_ascii_lowercase()
            .contains("content-transfer-encoding: quoted-printable");
        let body = if quoted {
            body.replace("=\r\n", "").replace("=3D", "=")
        } else {
            body.to_owned()
        };
        self.mails.lock().expect("not poisoned").push(Mail {
            from,
            to,
            subject,
            body: body.replace("\r\n", "\n"),
            raw,
            received_at: chrono::Utc::now(),
        });
    }

    /// `GET /messages?to=`: what was received, oldest first.
    pub fn router(self) -> Router {
        Router::new().route("/messages", get(list)).with_state(self)
    }
}

/// `<a@b>` (with any parameters after it) as `a@b`.
fn address(raw: &str) -> String {
    let raw = raw.trim();
    raw.strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map(|(a, _)| a.to_owned())
        .unwrap_or_else(|| raw.split_whitespace().next().unwrap_or_default().to_owned())
}

#[derive(Deserialize)]
struct ListQuery {
    to: Option<String>,
}

async fn list(State(sink): State<Sink>, Query(query): Query<ListQuery>) -> Json<Vec<Mail>> {
    Json(match query.to {
        Some(to) => sink.to(&to),
        None => sink.received(),
    })
}
