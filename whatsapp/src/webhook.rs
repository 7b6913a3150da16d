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
    pub fn content(&self) -> Inbound {
        match (
            self.kind.as_str(),
            &self.text,
            &self.interactive,
            &self.button,
        ) {
            ("text", Some(text), _, _) => Inbound::Text {
                body: text.body.clone(),
            },
            ("interactive", _, Some(i), _) => {
                match (i.kind.as_str(), &i.button_reply, &i.list_reply) {
                    ("button_reply", Some(r), _) => Inbound::ButtonReply {
                        id: r.id.clone(),
                        title: r.title.clone(),
                    },
                    ("list_reply", _, Some(r)) => Inbound::ListReply {
                        id: r.id.clone(),
                        title: r.title.clone(),
                    },
                    _ => Inbound::Unsupported {
                        message_type: format!("interactive/{}", i.kind),
                    },
                }
            }
            // A template's quick reply: the payload is the choice, as a reply button's id.
            ("button", _, _, Some(b)) if !b.payload.is_empty() => Inbound::ButtonReply {
                id: b.payload.clone(),
                title: b.text.clone(),
            },
            ("button", _, _, Some(b)) => Inbound::Text {
                body: b.text.clone(),
            },
            (kind, ..) => Inbound::Unsupported {
                message_type: kind.to_owned(),
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
            .and_then(|p| p.name.clone())
    }
}

impl Notification {
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
