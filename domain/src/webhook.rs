//! A business's webhook endpoints: URLs its own systems listen on for the public events
//! (`integration`). Stream `webhook_endpoint/<endpoint_id>`. The signing secret is the vault's
//! and never in an event; how deliveries went is the deliverer's log, not events. An endpoint
//! is registered, disabled (by a person, or by the deliverer after days of failure) and enabled
//! again, asked to deliver an event again, and deleted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::decider::Decider;
use crate::event::DomainEvent;
use crate::ids::WebhookEndpointId;
use crate::integration::Topic;

/// Where a business receives its events: an absolute `https` URL (`http` only where the
/// platform allows it, for a receiver on the same machine in development), without
/// credentials or fragment, at most 2,048 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WebhookUrl(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookUrlError {
    #[error("must be an absolute http(s) URL")]
    NotAUrl,
    #[error("must use https")]
    NotHttps,
    #[error("must not carry a user name or password (no @)")]
    Credentials,
    #[error("must not have a #fragment")]
    Fragment,
    #[error("must be at most 2048 characters")]
    TooLong,
}

impl WebhookUrl {
    /// The URLs a document promises to accept, as a pattern (the API's schema): `https://`, a
    /// host name of letters, digits and single inner hyphens (so no `xn--` label, which must
    /// be valid Punycode) whose last label starts with a letter, an optional port and a path
    /// and query
    /// of printable ASCII without `"`, `#` or `@`. [`Self::parse`] takes more (an IP address,
    /// a name in another script, `http://` where allowed); every URL this admits it takes.
    pub const PATTERN: &'static str = r#"^https://([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)*[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?([/?][!$-?A-~]*)?$"#;

    /// `allow_http`: whether `http://` is accepted (development and tests).
    pub fn parse(raw: &str, allow_http: bool) -> Result<Self, WebhookUrlError> {
        let raw = raw.trim();
        if raw.len() > 2048 {
            return Err(WebhookUrlError::TooLong);
        }
        // Refused as written, before the parser would encode or split them: a space, an `@`
        // anywhere (`https://bank.example@evil.example` reads as the bank's) and a `#`.
        if raw.chars().any(char::is_whitespace) {
            return Err(WebhookUrlError::NotAUrl);
        }
        if raw.contains('@') {
            return Err(WebhookUrlError::Credentials);
        }
        if raw.contains('#') {
            return Err(WebhookUrlError::Fragment);
        }
        let url = url::Url::parse(raw).map_err(|_| WebhookUrlError::NotAUrl)?;
        match url.scheme() {
            "https" => {}
            "http" if allow_http => {}
            "http" => return Err(WebhookUrlError::NotHttps),
            _ => return Err(WebhookUrlError::NotAUrl),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(WebhookUrlError::NotAUrl);
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(WebhookUrlError::Credentials);
        }
        if url.fragment().is_some() {
            return Err(WebhookUrlError::Fragment);
        }
        Ok(Self(url.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why deliveries stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DisableReason {
    /// Someone of the business turned it off.
    Manual,
    /// Every attempt failed since `failing_since`, for longer than deliveries are retried.
    Failing {
        failing_since: DateTime<Utc>,
        last_error: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookCommand {
    Register {
        endpoint_id: WebhookEndpointId,
        url: WebhookUrl,
        /// Empty: every topic, also those added later.
        topics: Vec<Topic>,
        description: String,
    },
    Disable {
        reason: DisableReason,
    },
    Enable,
    /// Deliver the public event numbered `seq` again (or now, if it is still being retried).
    Redeliver {
        seq: i64,
    },
    Delete,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum WebhookEvent {
    WebhookEndpointRegistered {
        endpoint_id: WebhookEndpointId,
        url: WebhookUrl,
        /// Topic names; empty means every topic.
        topics: Vec<String>,
        #[serde(default)]
        description: String,
    },
    WebhookEndpointDisabled {
        reason: DisableReason,
    },
    WebhookEndpointEnabled,
    WebhookRedeliveryRequested {
        seq: i64,
    },
    WebhookEndpointDeleted,
}

impl DomainEvent for WebhookEvent {
    const STREAM_TYPE: &'static str = "webhook_endpoint";

    fn event_type(&self) -> &'static str {
        match self {
            Self::WebhookEndpointRegistered { .. } => "WebhookEndpointRegistered",
            Self::WebhookEndpointDisabled { .. } => "WebhookEndpointDisabled",
            Self::WebhookEndpointEnabled => "WebhookEndpointEnabled",
            Self::WebhookRedeliveryRequested { .. } => "WebhookRedeliveryRequested",
            Self::WebhookEndpointDeleted => "WebhookEndpointDeleted",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum WebhookState {
    #[default]
    Absent,
    Enabled,
    Disabled,
    Deleted,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the endpoint already exists")]
    Exists,
    #[error("no such endpoint")]
    NotFound,
    #[error("the endpoint is already disabled")]
    AlreadyDisabled,
    #[error("the endpoint is already enabled")]
    AlreadyEnabled,
    #[error("the endpoint is disabled: enable it to deliver again")]
    Disabled,
    #[error("the description is at most 200 characters")]
    DescriptionTooLong,
    #[error("no such event")]
    NoSuchEvent,
}

pub struct WebhookEndpoint;

impl Decider for WebhookEndpoint {
    type State = WebhookState;
    type Command = WebhookCommand;
    type Event = WebhookEvent;
    type Error = WebhookError;

    fn decide(
        state: &WebhookState,
        command: WebhookCommand,
    ) -> Result<Vec<WebhookEvent>, WebhookError> {
        use WebhookState as S;
        match (state, command) {
            (
                S::Absent,
                WebhookCommand::Register {
                    endpoint_id,
                    url,
                    mut topics,
                    description,
                },
            ) => {
                let description = description.trim().to_owned();
                if description.chars().count() > 200 {
                    return Err(WebhookError::DescriptionTooLong);
                }
                topics.sort_by_key(|t| t.name());
                topics.dedup();
                Ok(vec![WebhookEvent::WebhookEndpointRegistered {
                    endpoint_id,
                    url,
                    topics: topics.iter().map(|t| t.name().to_owned()).collect(),
                    description,
                }])
            }
            (S::Absent | S::Deleted, _) => Err(WebhookError::NotFound),
            (_, WebhookCommand::Register { .. }) => Err(WebhookError::Exists),
            (S::Disabled, WebhookCommand::Disable { .. }) => Err(WebhookError::AlreadyDisabled),
            (S::Enabled, WebhookCommand::Disable { reason }) => {
                Ok(vec![WebhookEvent::WebhookEndpointDisabled { reason }])
            }
            (S::Enabled, WebhookCommand::Enable) => Err(WebhookError::AlreadyEnabled),
            (S::Disabled, WebhookCommand::Enable) => Ok(vec![WebhookEvent::WebhookEndpointEnabled]),
            (S::Disabled, WebhookCommand::Redeliver { .. }) => Err(WebhookError::Disabled),
            (S::Enabled, WebhookCommand::Redeliver { seq }) => {
                if seq < 1 {
                    return Err(WebhookError::NoSuchEvent);
                }
                Ok(vec![WebhookEvent::WebhookRedeliveryRequested { seq }])
            }
            (S::Enabled | S::Disabled, WebhookCommand::Delete) => {
                Ok(vec![WebhookEvent::WebhookEndpointDeleted])
            }
        }
    }

    fn evolve(state: WebhookState, event: &WebhookEvent) -> WebhookState {
        match event {
            WebhookEvent::WebhookEndpointRegistered { .. }
            | WebhookEvent::WebhookEndpointEnabled => WebhookState::Enabled,
            WebhookEvent::WebhookEndpointDisabled { .. } => WebhookState::Disabled,
            WebhookEvent::WebhookRedeliveryRequested { .. } => state,
            WebhookEvent::WebhookEndpointDeleted => WebhookState::Deleted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::scenario::given;
    use crate::event::assert_round_trips;

    fn registered() -> WebhookEvent {
        WebhookEvent::WebhookEndpointRegistered {
            endpoint_id: WebhookEndpointId::from_uuid(uuid::Uuid::from_u128(7)),
            url: WebhookUrl::parse("https://hooks.example.com/booking", false).unwrap(),
            topics: vec!["booking.cancelled".into(), "booking.created".into()],
            description: "CRM".into(),
        }
    }

    proptest::proptest! {
        #[test]
        fn every_url_the_documented_pattern_admits_is_taken(
            raw in proptest::string::string_regex(
                WebhookUrl::PATTERN.trim_start_matches('^').trim_end_matches('$'),
            ).unwrap(),
        ) {
            // The document's `maxLength` (2,048) says the rest.
            let parsed = WebhookUrl::parse(&raw, false);
            if raw.len() <= 2048 {
                proptest::prop_assert!(parsed.is_ok(), "{raw}");
            } else {
                proptest::prop_assert_eq!(parsed, Err(WebhookUrlError::TooLong));
            }
        }
    }

    #[test]
    fn urls_are_absolute_https_without_credentials() {
        assert!(WebhookUrl::parse("https://hooks.example.com/x?y=1", false).is_ok());
        assert_eq!(
            WebhookUrl::parse("http://hooks.example.com/x", false),
            Err(WebhookUrlError::NotHttps)
        );
        assert!(WebhookUrl::parse("http://127.0.0.1:9000/x", true).is_ok());
        assert_eq!(
            WebhookUrl::parse("ftp://hooks.example.com/", true),
            Err(WebhookUrlError::NotAUrl)
        );
        assert_eq!(
            WebhookUrl::parse("/relative", true),
            Err(WebhookUrlError::NotAUrl)
        );
        assert_eq!(
            WebhookUrl::parse("https://user:pw@hooks.example.com/", false),
            Err(WebhookUrlError::Credentials)
        );
        assert_eq!(
            WebhookUrl::parse("https://hooks.example.com/#x", false),
            Err(WebhookUrlError::Fragment)
        );
        // What a parser would quietly encode or read otherwise is refused as written.
        assert_eq!(
            WebhookUrl::parse("https://bank.example@evil.example/", false),
            Err(WebhookUrlError::Credentials)
        );
        assert_eq!(
            WebhookUrl::parse("https://hooks.example.com/a@b", false),
            Err(WebhookUrlError::Credentials)
        );
        assert_eq!(
            WebhookUrl::parse("https://hooks.example.com/a b", false),
            Err(WebhookUrlError::NotAUrl)
        );
        assert!(WebhookUrl::parse("  https://hooks.example.com/a  ", false).is_ok());
        let long = format!("https://hooks.example.com/{}", "a".repeat(2048));
        assert_eq!(
            WebhookUrl::parse(&long, false),
            Err(WebhookUrlError::TooLong)
        );
    }

    #[test]
    fn an_endpoint_is_registered_once_with_its_topics_sorted() {
        let WebhookEvent::WebhookEndpointRegistered {
            endpoint_id, url, ..
        } = registered()
        else {
            unreachable!()
        };
        let register = WebhookCommand::Register {
            endpoint_id,
            url,
            topics: vec![
                Topic::BookingCreated,
                Topic::BookingCancelled,
                Topic::BookingCreated,
            ],
            description: " CRM ".into(),
        };
        given::<WebhookEndpoint>(&[])
            .when(register.clone())
            .then_expect(&[registered()]);
        given::<WebhookEndpoint>(&[registered()])
            .when(register)
            .then_expect_error(WebhookError::Exists);
    }

    #[test]
    fn disabled_endpoints_deliver_nothing_until_enabled() {
        let failing = DisableReason::Failing {
            failing_since: "2026-12-01T10:00:00Z".parse().unwrap(),
            last_error: "connection refused".into(),
        };
        let disabled = WebhookEvent::WebhookEndpointDisabled {
            reason: failing.clone(),
        };
        given::<WebhookEndpoint>(&[registered()])
            .when(WebhookCommand::Disable {
                reason: failing.clone(),
            })
            .then_expect(std::slice::from_ref(&disabled));
        given::<WebhookEndpoint>(&[registered(), disabled.clone()])
            .when(WebhookCommand::Disable {
                reason: DisableReason::Manual,
            })
            .then_expect_error(WebhookError::AlreadyDisabled);
        given::<WebhookEndpoint>(&[registered(), disabled.clone()])
            .when(WebhookCommand::Redeliver { seq: 3 })
            .then_expect_error(WebhookError::Disabled);
        given::<WebhookEndpoint>(&[registered(), disabled.clone()])
            .when(WebhookCommand::Enable)
            .then_expect(&[WebhookEvent::WebhookEndpointEnabled]);
        given::<WebhookEndpoint>(&[registered()])
            .when(WebhookCommand::Enable)
            .then_expect_error(WebhookError::AlreadyEnabled);
        given::<WebhookEndpoint>(&[registered()])
            .when(WebhookCommand::Redeliver { seq: 0 })
            .then_expect_error(WebhookError::NoSuchEvent);
        given::<WebhookEndpoint>(&[registered(), WebhookEvent::WebhookEndpointDeleted])
            .when(WebhookCommand::Enable)
            .then_expect_error(WebhookError::NotFound);
        given::<WebhookEndpoint>(&[])
            .when(WebhookCommand::Delete)
            .then_expect_error(WebhookError::NotFound);
        assert_round_trips(&[
            registered(),
            disabled,
            WebhookEvent::WebhookEndpointDisabled {
                reason: DisableReason::Manual,
            },
            WebhookEvent::WebhookEndpointEnabled,
            WebhookEvent::WebhookRedeliveryRequested { seq: 4 },
            WebhookEvent::WebhookEndpointDeleted,
        ]);
    }
}
