//! The Graph API client (`reqwest`), pointed at Meta or, in tests and the demo, at the local
//! fake by its base URL.

use std::time::Duration;

use serde::Deserialize;

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
        let response = self
            .http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| CloudApiError::Unreachable(e.to_string()))?;
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
}
