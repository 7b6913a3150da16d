//! The bot's replies in the Cloud API's send format: text, reply buttons, lists, templates.

use domain::bot::message::Reply;
use domain::values::PhoneNumber;
use serde_json::{Value, json};

/// The body of `POST /{version}/{phone_number_id}/messages` for `reply` to `to`.
pub fn message_body(to: &PhoneNumber, reply: &Reply) -> Value {
    let to = to.wa_id();
    match reply {
        Reply::Text { body } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "text",
            "text": {"preview_url": false, "body": body},
        }),
        Reply::Buttons { body, buttons } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "interactive",
            "interactive": {
                "type": "button",
                "body": {"text": body},
                "action": {"buttons": buttons.iter().map(|b| json!({
                    "type": "reply",
                    "reply": {"id": b.id, "title": b.title},
                })).collect::<Vec<_>>()},
            },
        }),
        Reply::List { body, button, rows } => json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": to,
            "type": "interactive",
            "interactive": {
                "type": "list",
                "body": {"text": body},
                "action": {
                    "button": button,
                    "sections": [{
                        "title": "Options",
                        "rows": rows.iter().map(|r| {
                            let mut row = json!({"id": r.id, "title": r.title});
                            if let Some(d) = &r.description {
                                row["description"] = json!(d);
                            }
                            row
                        }).collect::<Vec<_>>(),
                    }],
                },
            },
        }),
        Reply::Template {
            name,
            language,
            body,
            buttons,
        } => {
            let mut components = Vec::new();
            if !body.is_empty() {
                components.push(json!({
                    "type": "body",
                    "parameters": body.iter().map(|p| json!({"type": "text", "text": p})).collect::<Vec<_>>(),
                }));
            }
            for (index, payload) in buttons.iter().enumerate() {
                components.push(json!({
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": index.to_string(),
                    "parameters": [{"type": "payload", "payload": payload}],
                }));
            }
            json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to,
                "type": "template",
                "template": {
                    "name": name,
                    "language": {"code": language},
                    "components": components,
                },
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::bot::message::Choice;

    #[test]
    fn replies_take_meta_shapes() {
        let to = PhoneNumber::parse("+34600000001").unwrap();
        let text = message_body(&to, &Reply::Text { body: "Hi".into() });
        assert_eq!(text["to"], "34600000001");
        assert_eq!(text["text"]["body"], "Hi");
        let choice = |id: &str| Choice {
            id: id.into(),
            title: id.to_uppercase(),
            description: Some("d".into()),
        };
        let buttons = message_body(
            &to,
            &Reply::Buttons {
                body: "Pick".into(),
                buttons: vec![choice("a"), choice("b")],
            },
        );
        assert_eq!(buttons["interactive"]["type"], "button");
        assert_eq!(
            buttons["interactive"]["action"]["buttons"][1]["reply"]["id"],
            "b"
        );
        let list = message_body(
            &to,
            &Reply::List {
                body: "Pick".into(),
                button: "Times".into(),
                rows: vec![choice("x")],
            },
        );
        assert_eq!(list["interactive"]["action"]["button"], "Times");
        assert_eq!(
            list["interactive"]["action"]["sections"][0]["rows"][0]["description"],
            "d"
        );
        let template = message_body(
            &to,
            &Reply::template(
                "booking_reminder",
                "es",
                ["Ana".into()],
                vec!["p0".into(), "p1".into()],
            ),
        );
        assert_eq!(template["type"], "template");
        assert_eq!(template["template"]["language"]["code"], "es");
        let components = &template["template"]["components"];
        assert_eq!(components[0]["parameters"][0]["text"], "Ana");
        assert_eq!(components[2]["sub_type"], "quick_reply");
        assert_eq!(components[2]["index"], "1");
        assert_eq!(components[2]["parameters"][0]["payload"], "p1");
    }
}
