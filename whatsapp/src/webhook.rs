//! What Meta POSTs to the webhook. One notification may batch several entries, each with
//! several changes, each with several messages or statuses: every one is handled.

use domain::bot::message::Inbound;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct Notification {
    pub object: String,
    #[serde(default)]
    pub entry: Vec<Entry>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub changes: Vec<Change>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Change {
    #[serde(default)]
    pub field: String,
    pub value: ChangeValue,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ChangeValue {
    #[serde(default)]
    pub messaging_product: String,
    pub metadata: Metadata,
    #[serde(default)]
    pub contacts: Vec<Contact>,
    #[serde(default)]
    pub messages: Vec<Message>,
    #[serde(default)]
    pub statuses: Vec<Status>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub display_phone_number: String,
    pub phone_number_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Contact {
    #[serde(default)]
    pub profile: Option<Profile>,
    pub wa_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Message {
    pub from: String,
    pub id: String,
    #[serde(default)]
    pub timestamp: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<Text>,
    #[serde(default)]
    pub interactive: Option<Interactive>,
    /// A tap on a template's quick-reply button.
    #[serde(default)]
    pub button: Option<TemplateButton>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Text {
    pub body: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Interactive {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub button_reply: Option<Reply>,
    #[serde(default)]
    pub list_reply: Option<Reply>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Reply {
    pub id: String,
    pub title: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TemplateButton {
    /// What the send put on the button (a reminder's `remind:…`).
    #[serde(default)]
    pub payload: String,
    #[serde(default)]
    pub text: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Status {
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub recipient_id: String,
}

impl Message {
    /// The domain's view of the content. Anything the bot cannot read becomes `Unsupported`,
    /// never an error: the customer still gets an answer.
    /// What the customer sent, each text cut to what WhatsApp itself allows (a message's text
    /// 4,096 characters, a choice's id 256 and title 24), whatever the body claimed.
    pub fn content(&self) -> Inbound {
        match (
            self.kind.as_str(),
            &self.text,
            &self.interactive,
            &self.button,
        ) {
            ("text", Some(text), _, _) => Inbound::Text {
                body: at_most(&text.body, TEXT_MAX),
            },
            ("interactive", _, Some(i), _) => {
                match (i.kind.as_str(), &i.button_reply, &i.list_reply) {
                    ("button_reply", Some(r), _) => Inbound::ButtonReply {
                        id: at_most(&r.id, ID_MAX),
                        title: at_most(&r.title, TITLE_MAX),
                    },
                    ("list_reply", _, Some(r)) => Inbound::ListReply {
                        id: at_most(&r.id, ID_MAX),
                        title: at_most(&r.title, TITLE_MAX),
                    },
                    _ => Inbound::Unsupported {
                        message_type: format!("interactive/{}", at_most(&i.kind, TYPE_MAX)),
                    },
                }
            }
            // A template's quick reply: the payload is the choice, as a reply button's id.
            ("button", _, _, Some(b)) if !b.payload.is_empty() => Inbound::ButtonReply {
                id: at_most(&b.payload, ID_MAX),
                title: at_most(&b.text, TITLE_MAX),
            },
            ("button", _, _, Some(b)) => Inbound::Text {
                body: at_most(&b.text, TEXT_MAX),
            },
            (kind, ..) => Inbound::Unsupported {
                message_type: at_most(kind, TYPE_MAX),
            },
        }
    }

    /// When Meta says it was sent (Unix seconds).
    pub fn sent_at(&self) -> Option<i64> {
        self.timestamp.parse().ok()
    }
}

impl ChangeValue {
    /// The sender's profile name, from the contacts beside the message.
    pub fn profile_name(&self, wa_id: &str) -> Option<String> {
        self.contacts
            .iter()
            .find(|c| c.wa_id == wa_id)
            .and_then(|c| c.profile.as_ref())
            .and_then(|p| p.name.as_deref())
            .map(|name| at_most(name, NAME_MAX))
    }
}

const TEXT_MAX: usize = 4096;
const ID_MAX: usize = 256;
const TITLE_MAX: usize = 24;
const NAME_MAX: usize = 256;
const TYPE_MAX: usize = 64;

/// `text` cut to `max` characters.
fn at_most(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

impl Notification {
    /// A webhook's body as a notification, with every NUL character taken out of its strings:
    /// no Postgres text can hold one, and refusing the body would make Meta redeliver the
    /// whole batch for days. JSON carries a NUL only as the escape `\u0000`, so a body
    /// without one is read once, straight into the types.
    pub fn parse(body: &[u8]) -> serde_json::Result<Self> {
        if !body.windows(6).any(|w| w == br"\u0000") {
            return serde_json::from_slice(body);
        }
        fn scrub(value: &mut serde_json::Value) {
            match value {
                serde_json::Value::String(s) => s.retain(|c| c != '\0'),
                serde_json::Value::Array(items) => items.iter_mut().for_each(scrub),
                serde_json::Value::Object(map) => map.values_mut().for_each(scrub),
                _ => {}
            }
        }
        let mut value: serde_json::Value = serde_json::from_slice(body)?;
        scrub(&mut value);
        serde_json::from_value(value)
    }

    /// Every phone number id the notification concerns.
    pub fn phone_number_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .entry
            .iter()
            .flat_map(|e| {
                e.changes
                    .iter()
                    .map(|c| c.value.metadata.phone_number_id.clone())
            })
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// The `messages` changes, in order.
    pub fn changes(&self) -> impl Iterator<Item = &ChangeValue> {
        self.entry
            .iter()
            .flat_map(|e| e.changes.iter())
            .filter(|c| c.field == "messages")
            .map(|c| &c.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BATCH: &str = r#"{"object":"whatsapp_business_account","entry":[
      {"id":"WABA","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
        "contacts":[{"profile":{"name":"Sheena"},"wa_id":"16505551234"}],
        "messages":[
          {"from":"16505551234","id":"wamid.A","timestamp":"1739321024","type":"text","text":{"body":"hi"}},
          {"from":"16505551234","id":"wamid.B","timestamp":"1739321025","type":"interactive",
           "interactive":{"type":"button_reply","button_reply":{"id":"confirm","title":"Confirm"}},
           "context":{"from":"15550783881","id":"wamid.OUT"}},
          {"from":"16505551234","id":"wamid.C","timestamp":"1739321026","type":"interactive",
           "interactive":{"type":"list_reply","list_reply":{"id":"svc:1","title":"Haircut","description":"25 EUR"}}},
          {"from":"16505551234","id":"wamid.D","timestamp":"1739321027","type":"image","image":{"id":"media"}},
          {"from":"16505551234","id":"wamid.E","timestamp":"1739321028","type":"button",
           "button":{"payload":"remind:cancel:b1","text":"Cancel"},"context":{"from":"15550783881","id":"wamid.TPL"}}
        ]}}]},
      {"id":"WABA2","changes":[{"field":"messages","value":{"messaging_product":"whatsapp",
        "metadata":{"display_phone_number":"15550000000","phone_number_id":"999"},
        "statuses":[{"id":"wamid.OUT","status":"delivered","timestamp":"1739321030","recipient_id":"16505551234"}]}}]}
    ]}"#;

    #[test]
    fn what_a_customer_sends_is_cut_to_whatsapps_limits_and_loses_nul_characters() {
        let long = "é".repeat(200_000);
        let batch = BATCH
            .replace(r#""body":"hi""#, &format!(r#""body":"a\u0000b{long}""#))
            .replace(r#""name":"Sheena""#, r#""name":"She\u0000ena""#);
        let n = Notification::parse(batch.as_bytes()).unwrap();
        let change = n.changes().next().unwrap();
        let Inbound::Text { body } = change.messages[0].content() else {
            panic!("a text")
        };
        assert_eq!(body.chars().count(), 4096);
        assert!(body.starts_with("abé"), "{}", &body[..8]);
        assert_eq!(
            change.profile_name("16505551234").as_deref(),
            Some("Sheena")
        );
    }

    #[test]
    fn a_batch_yields_every_message_and_status() {
        let n: Notification = serde_json::from_str(BATCH).unwrap();
        assert_eq!(n.phone_number_ids(), ["106540352242922", "999"]);
        let changes: Vec<&ChangeValue> = n.changes().collect();
        let contents: Vec<Inbound> = changes[0].messages.iter().map(Message::content).collect();
        assert_eq!(
            contents,
            [
                Inbound::Text { body: "hi".into() },
                Inbound::ButtonReply {
                    id: "confirm".into(),
                    title: "Confirm".into()
                },
                Inbound::ListReply {
                    id: "svc:1".into(),
                    title: "Haircut".into()
                },
                Inbound::Unsupported {
                    message_type: "image".into()
                },
                Inbound::ButtonReply {
                    id: "remind:cancel:b1".into(),
                    title: "Cancel".into()
                },
            ]
        );
        assert_eq!(
            changes[0].profile_name("16505551234").as_deref(),
            Some("Sheena")
        );
        assert_eq!(changes[1].statuses[0].status, "delivered");
    }
}

/// Meta's webhook bodies as anyone could send them: whatever the bytes, reading them never
/// panics, and what is read holds no NUL and no text past WhatsApp's own limits.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::signature::{sign, verify_signature};
    use domain::bot::message::Inbound;
    use proptest::prelude::*;

    /// A message of any type with any fields Meta might send (or not).
    fn message() -> impl Strategy<Value = serde_json::Value> {
        (
            prop::sample::select(vec![
                "text",
                "interactive",
                "button",
                "image",
                "reaction",
                "location",
                "unknown",
                "",
            ]),
            any::<String>(),
            any::<String>(),
            prop::option::of(any::<String>()),
            prop::sample::select(vec!["button_reply", "list_reply", "nfm_reply", ""]),
        )
            .prop_map(|(kind, from, text, timestamp, reply)| {
                let mut message = serde_json::json!({
                    "from": from, "id": format!("wamid.{text:.8}"),
                    "type": kind, "text": {"body": text},
                    "interactive": {"type": reply, reply: {"id": text, "title": text}},
                    "button": {"payload": text, "text": text},
                });
                // Meta leaves a field out rather than sending null.
                if let Some(timestamp) = timestamp {
                    message["timestamp"] = timestamp.into();
                }
                message
            })
    }

    fn body() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(message(), 0..4),
            any::<String>(),
            any::<String>(),
        )
            .prop_map(|(messages, phone_number_id, name)| {
                serde_json::json!({"object": "whatsapp_business_account", "entry": [
                    {"id": "WABA", "changes": [{"field": "messages", "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "1555", "phone_number_id": phone_number_id},
                        "contacts": [{"profile": {"name": name}, "wa_id": "16505551234"}],
                        "messages": messages,
                    }}]}
                ]})
                .to_string()
            })
    }

    proptest! {
        #[test]
        fn any_bytes_are_read_or_refused_without_a_panic(bytes in any::<Vec<u8>>()) {
            if let Ok(notification) = Notification::parse(&bytes) {
                let _ = notification.phone_number_ids();
                for change in notification.changes() {
                    for message in &change.messages {
                        let _ = message.content();
                        let _ = message.sent_at();
                    }
                }
            }
        }

        #[test]
        fn what_is_read_holds_no_nul_and_fits_whatsapp(body in body()) {
            let notification = Notification::parse(body.as_bytes()).unwrap();
            for change in notification.changes() {
                prop_assert!(!change.metadata.phone_number_id.contains('\0'));
                if let Some(name) = change.profile_name("16505551234") {
                    prop_assert!(!name.contains('\0'));
                }
                for message in &change.messages {
                    prop_assert!(!message.from.contains('\0'));
                    match message.content() {
                        Inbound::Text { body } => prop_assert!(!body.contains('\0')),
                        Inbound::ButtonReply { id, title } | Inbound::ListReply { id, title } => {
                            prop_assert!(!id.contains('\0') && !title.contains('\0'));
                            prop_assert!(id.chars().count() <= ID_MAX);
                            prop_assert!(title.chars().count() <= TITLE_MAX);
                        }
                        Inbound::Unsupported { message_type } => {
                            prop_assert!(message_type.chars().count() <= TYPE_MAX);
                        }
                    }
                }
            }
        }

        /// Only the exact body under the app's secret passes: one byte changed, another
        /// secret, or any header at all fails.
        #[test]
        fn only_the_exact_body_under_the_secret_is_genuine(
            body in any::<Vec<u8>>(),
            flip in any::<prop::sample::Index>(),
            header in any::<String>(),
        ) {
            let secret = b"app-secret-0123456789";
            let genuine = sign(secret, &body);
            prop_assert!(verify_signature(secret, &body, &genuine));
            prop_assert!(!verify_signature(b"another-secret-0123", &body, &genuine));
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip.index(body.len())] ^= 1;
                prop_assert!(!verify_signature(secret, &changed, &genuine));
            }
            prop_assume!(header != genuine);
            prop_assert!(!verify_signature(secret, &body, &header));
        }
    }
}
