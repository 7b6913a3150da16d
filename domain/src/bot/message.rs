//! What customers send and what the bot answers, in WhatsApp's terms but free of its wire
//! format (the `whatsapp` edge maps both ways). Replies respect WhatsApp's limits by
//! construction: the constructors truncate titles and cap rows and buttons.

use serde::{Deserialize, Serialize};

/// An inbound message's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Inbound {
    Text {
        body: String,
    },
    /// A tap on a reply button.
    ButtonReply {
        id: String,
        title: String,
    },
    /// A pick from an interactive list.
    ListReply {
        id: String,
        title: String,
    },
    /// Image, audio, location, sticker, reaction…: the bot cannot read these.
    Unsupported {
        message_type: String,
    },
}

/// A choice offered to the customer: the id comes back in the reply, the title is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// What the bot sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reply {
    Text {
        body: String,
    },
    /// Up to 3 reply buttons (titles up to 20 characters).
    Buttons {
        body: String,
        buttons: Vec<Choice>,
    },
    /// An interactive list: up to 10 rows (titles up to 24, descriptions up to 72 characters),
    /// opened by a button labelled up to 20 characters.
    List {
        body: String,
        button: String,
        rows: Vec<Choice>,
    },
    /// A message template approved for the business's account: what may be sent more than 24
    /// hours after the customer last wrote. `body` fills its body's parameters in order;
    /// `buttons` are the payloads of its quick-reply buttons, in order.
    Template {
        name: String,
        language: String,
        body: Vec<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buttons: Vec<String>,
    },
}

pub const MAX_BUTTONS: usize = 3;
pub const MAX_BUTTON_TITLE: usize = 20;
pub const MAX_ROWS: usize = 10;
pub const MAX_ROW_TITLE: usize = 24;
pub const MAX_ROW_DESCRIPTION: usize = 72;
pub const MAX_TEXT: usize = 4096;
pub const MAX_INTERACTIVE_BODY: usize = 1024;
/// A template's body parameter (no line breaks or tabs, and not four spaces in a row).
pub const MAX_TEMPLATE_PARAMETER: usize = 1024;
pub const MAX_TEMPLATE_BUTTONS: usize = 10;

/// Cuts `s` to `max` characters, ending with `…` when cut.
pub fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl Reply {
    pub fn text(body: impl AsRef<str>) -> Self {
        Reply::Text {
            body: fit(body.as_ref(), MAX_TEXT),
        }
    }

    /// Buttons if the choices fit in three, else a list (of at most ten rows).
    pub fn choices(body: impl AsRef<str>, button: &str, choices: Vec<Choice>) -> Self {
        if choices.len() <= MAX_BUTTONS && choices.iter().all(|c| c.description.is_none()) {
            Reply::Buttons {
                body: fit(body.as_ref(), MAX_INTERACTIVE_BODY),
                buttons: choices
                    .into_iter()
                    .map(|c| Choice {
                        title: fit(&c.title, MAX_BUTTON_TITLE),
                        ..c
                    })
                    .collect(),
            }
        } else {
            Reply::List {
                body: fit(body.as_ref(), MAX_TEXT),
                button: fit(button, MAX_BUTTON_TITLE),
                rows: choices
                    .into_iter()
                    .take(MAX_ROWS)
                    .map(|c| Choice {
                        title: fit(&c.title, MAX_ROW_TITLE),
                        description: c.description.map(|d| fit(&d, MAX_ROW_DESCRIPTION)),
                        id: c.id,
                    })
                    .collect(),
            }
        }
    }

    /// A template, its parameters made acceptable to WhatsApp: line breaks and tabs become
    /// ` · ` and spaces, runs of spaces one, each cut to the maximum.
    pub fn template(
        name: &str,
        language: &str,
        body: impl IntoIterator<Item = String>,
        buttons: Vec<String>,
    ) -> Self {
        let parameter = |p: String| {
            let joined = p
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" · ");
            let single = joined
                .replace('\t', " ")
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            fit(&single, MAX_TEMPLATE_PARAMETER)
        };
        Reply::Template {
            name: name.to_owned(),
            language: language.to_owned(),
            body: body.into_iter().map(parameter).collect(),
            buttons,
        }
    }

    /// The choices offered, if any (ids and titles).
    pub fn offered(&self) -> &[Choice] {
        match self {
            Reply::Text { .. } | Reply::Template { .. } => &[],
            Reply::Buttons { buttons, .. } => buttons,
            Reply::List { rows, .. } => rows,
        }
    }

    /// The text shown (a template's first parameter, its own text being Meta's).
    pub fn body(&self) -> &str {
        match self {
            Reply::Text { body } | Reply::Buttons { body, .. } | Reply::List { body, .. } => body,
            Reply::Template { body, .. } => body.first().map_or("", String::as_str),
        }
    }

    /// Whether it is within WhatsApp's limits.
    pub fn fits_whatsapp(&self) -> bool {
        match self {
            Reply::Text { body } => body.chars().count() <= MAX_TEXT,
            Reply::Buttons { body, buttons } => {
                body.chars().count() <= MAX_INTERACTIVE_BODY
                    && (1..=MAX_BUTTONS).contains(&buttons.len())
                    && buttons
                        .iter()
                        .all(|b| b.title.chars().count() <= MAX_BUTTON_TITLE && b.id.len() <= 256)
            }
            Reply::List { body, button, rows } => {
                body.chars().count() <= MAX_TEXT
                    && button.chars().count() <= MAX_BUTTON_TITLE
                    && (1..=MAX_ROWS).contains(&rows.len())
                    && rows.iter().all(|r| {
                        r.title.chars().count() <= MAX_ROW_TITLE
                            && r.id.len() <= 200
                            && r.description
                                .as_ref()
                                .is_none_or(|d| d.chars().count() <= MAX_ROW_DESCRIPTION)
                    })
            }
            Reply::Template {
                name,
                body,
                buttons,
                ..
            } => {
                !name.is_empty()
                    && buttons.len() <= MAX_TEMPLATE_BUTTONS
                    && buttons.iter().all(|b| b.len() <= 256)
                    && body.iter().all(|p| {
                        !p.is_empty()
                            && p.chars().count() <= MAX_TEMPLATE_PARAMETER
                            && !p.contains(['\n', '\t'])
                            && !p.contains("    ")
                    })
            }
        }
    }
}

/// Lowercase, accents removed, whitespace collapsed: how keywords and typed answers compare.
pub fn normalize(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let stripped: String = s
        .nfd()
        .filter(|c| !('\u{0300}'..='\u{036f}').contains(c))
        .collect::<String>()
        .to_lowercase();
    stripped
        .split(|c: char| !(c.is_alphanumeric() || c == '-' || c == ':'))
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether the normalized `text` contains the normalized `phrase` as whole words.
pub fn contains_words(text: &str, phrase: &str) -> bool {
    let text = format!(" {} ", normalize(text));
    let phrase = normalize(phrase);
    !phrase.is_empty() && text.contains(&format!(" {phrase} "))
}

/// Fills `{placeholders}`; unknown ones stay as written (configuration validation refuses them).
pub fn render(template: &str, vars: &[(&str, &str)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in vars {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization_ignores_case_accents_and_punctuation() {
        assert_eq!(normalize("  ¡Hola,  Señor!  "), "hola senor");
        assert_eq!(normalize("CANCELAR"), "cancelar");
        assert!(contains_words("Quiero cancelar mi cita", "CANCELAR"));
        assert!(contains_words("¿Dónde están?", "donde"));
        assert!(!contains_words("cancelled", "cancel"));
    }

    #[test]
    fn choices_become_buttons_or_a_list_within_the_limits() {
        let choice = |i: usize| Choice {
            id: format!("c{i}"),
            title: format!("A very long option title number {i}"),
            description: None,
        };
        let buttons = Reply::choices("Pick", "Options", (0..3).map(choice).collect());
        assert!(matches!(&buttons, Reply::Buttons { buttons, .. } if buttons.len() == 3));
        assert!(buttons.fits_whatsapp());
        let list = Reply::choices("Pick", "Options", (0..14).map(choice).collect());
        assert!(matches!(&list, Reply::List { rows, .. } if rows.len() == 10));
        assert!(list.fits_whatsapp());
        assert_eq!(fit("abcdef", 4), "abc…");
    }

    #[test]
    fn templates_fill_their_placeholders() {
        assert_eq!(
            render(
                "{service} at {time}",
                &[("service", "Haircut"), ("time", "10:00")]
            ),
            "Haircut at 10:00"
        );
    }
}
