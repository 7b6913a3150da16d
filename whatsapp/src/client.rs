//! The Graph API client (`reqwest`), pointed at Meta or, in tests and the demo, at the local
//! fake by its base URL.

use std::time::Duration;

use serde::Deserialize;
use tracing::Instrument as _;

#[derive(Debug, Clone)]
pub struct CloudApi {
    http: reqwest::Client,
    base_url: String,
    version: String,
}

/// `GET /{version}/{phone_number_id}`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PhoneNumberInfo {
    pub id: String,
    #[serde(default)]
    pub display_phone_number: String,
    #[serde(default)]
    pub verified_name: String,
}

/// Meta's error envelope: `{"error":{"message","type","code","error_data","fbtrace_id"}}`.
#[derive(Debug, Clone, Deserialize)]
struct Envelope {
    error: MetaError,
}

#[derive(Debug, Clone, Deserialize)]
struct MetaError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum CloudApiError {
    /// Meta answered with an error: its code (190 bad token, 100 bad parameter, …) and message.
    #[error("Meta refused ({code}): {message}")]
    Meta {
        status: u16,
        code: i64,
        message: String,
    },
    /// No usable answer (network, timeout, unexpected body).
    #[error("the Cloud API could not be reached: {0}")]
    Unreachable(String),
}

impl CloudApi {
    pub fn new(base_url: &str, version: &str, timeout: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(timeout)
                .build()
                .expect("an HTTP client"),
            base_url: base_url.trim_end_matches('/').to_owned(),
            version: version.to_owned(),
        }
    }

    /// Checks that `token` may use `phone_number_id`, and returns the number's details.
    pub async fn phone_number(
        &self,
        phone_number_id: &str,
        token: &str,
    ) -> Result<PhoneNumberInfo, CloudApiError> {
        if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CloudApiError::Meta {
                status: 400,
                code: 100,
                message: "a phone number id is digits".into(),
            });
        }
        let url = format!("{}/{}/{phone_number_id}", self.base_url, self.version);
        let response = self.http.get(url).bearer_auth(token).send().await;
        read_answer(response).await
    }

    /// Sends one message (`POST /{version}/{phone_number_id}/messages`) and returns the wamid
    /// Meta gave it.
    pub async fn send_message(
        &self,
        phone_number_id: &str,
        token: &str,
        message: &serde_json::Value,
    ) -> Result<String, CloudApiError> {
        let url = format!(
            "{}/{}/{phone_number_id}/messages",
            self.base_url, self.version
        );
        // Meta ignores the trace context; a proxy or a fake in between can follow it.
        let span = tracing::info_span!("send_message", otel.kind = "client");
        let mut request = self.http.post(url).bearer_auth(token).json(message);
        if let Some(traceparent) = tracecontext::of(&span) {
            request = request.header(tracecontext::TRACEPARENT, traceparent);
        }
        let response = request.send().instrument(span).await;
        let sent: Sent = read_answer(response).await?;
        sent.messages
            .into_iter()
            .next()
            .map(|m| m.id)
            .ok_or_else(|| CloudApiError::Unreachable("an answer without a message id".into()))
    }
}

#[derive(Debug, Deserialize)]
struct Sent {
    #[serde(default)]
    messages: Vec<SentMessage>,
}

#[derive(Debug, Deserialize)]
struct SentMessage {
    id: String,
}

/// A 2xx body as `T`, Meta's error envelope as [`CloudApiError::Meta`], anything else (a
/// network failure, a timeout, a 5xx without an envelope) as [`CloudApiError::Unreachable`].
async fn read_answer<T: serde::de::DeserializeOwned>(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, CloudApiError> {
    let response = response.map_err(|e| CloudApiError::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| CloudApiError::Unreachable(e.to_string()))?;
    if (200..300).contains(&status) {
        return serde_json::from_slice(&body)
            .map_err(|e| CloudApiError::Unreachable(format!("unexpected answer: {e}")));
    }
    match serde_json::from_slice::<Envelope>(&body) {
        Ok(Envelope { error }) => Err(CloudApiError::Meta {
            status,
            code: error.code,
            message: error.message,
        }),
        Err(_) if status >= 500 => Err(CloudApiError::Unreachable(format!("HTTP {status}"))),
        Err(_) => Err(CloudApiError::Meta {
            status,
            code: 0,
            message: format!("HTTP {status}"),
        }),
    }
}

impl CloudApiError {
    /// Worth retrying after a pause: throughput and pair limits, account limits, Meta's own
    /// failures and timeouts. Everything else (a bad token, a closed 24-hour window, a bad
    /// parameter) fails the same way again.
    pub fn is_transient(&self) -> bool {
        match self {
            CloudApiError::Unreachable(_) => true,
            CloudApiError::Meta { status, code, .. } => {
                matches!(code, 130429 | 131056 | 4 | 80007 | 1 | 2 | 131000) || *status >= 500
            }
        }
    }

    /// Meta's error code (0 when there was no answer).
    pub fn code(&self) -> i64 {
        match self {
            CloudApiError::Meta { code, .. } => *code,
            CloudApiError::Unreachable(_) => 0,
        }
    }
}
