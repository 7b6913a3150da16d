//! A business's customers' personal data in events: which values of which events are theirs,
//! whose they are, and what each reads as once the customer is erased.
//!
//! The application seals each value listed here with its customer's key before it is appended
//! (crypto-shredding, `eventstore::personal`); erasing the customer deletes the key, and from
//! then on every reader gets the value's stand-in instead. Stand-ins are values the events'
//! types accept, so an erased customer's events still decode and fold: their bookings still
//! count and their revenue still adds up, with no one behind them. A test keeps this table
//! whole: no sample event outside it carries a customer's phone or name, and every stand-in
//! decodes.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::values::PhoneNumber;

/// Where an event names the customer whose data it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectAt {
    /// The phone at this JSON pointer of the payload.
    Field(&'static str),
    /// The stream's id: the customer's conversation.
    Stream,
}

/// What a personal value reads as once its customer is erased.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandIn {
    /// `+999` and twelve digits of the subject id: a number no one has (999 is a country code
    /// the ITU never assigns), the same for all of one customer's events.
    Phone,
    /// Absent: an optional name.
    Nothing,
    /// A booking's customer: the stand-in phone, no name.
    Customer,
    /// A message the customer sent, or one they were sent: a text saying it was erased.
    Message,
    /// The bot's memory of the conversation: as at its start.
    BotState,
}

/// The personal values of one event type, and whose they are.
#[derive(Debug, Clone, Copy)]
pub struct Personal {
    pub subject: SubjectAt,
    /// JSON pointers into the payload (a value absent from a payload is simply not there).
    pub fields: &'static [(&'static str, StandIn)],
}

/// The personal values of `event_type`, or `None` when it holds none.
pub fn of(event_type: &str) -> Option<Personal> {
    use StandIn::*;
    let personal = |subject, fields| Some(Personal { subject, fields });
    match event_type {
        "AppointmentRequested" => personal(
            SubjectAt::Field("/customer/phone"),
            &[("/customer", Customer)],
        ),
        "CustomerWaitlisted" => personal(
            SubjectAt::Field("/phone"),
            &[("/phone", Phone), ("/name", Nothing)],
        ),
        "CustomerLeftWaitlist" => personal(SubjectAt::Field("/phone"), &[("/phone", Phone)]),
        "MessageReceived" => personal(
            SubjectAt::Field("/from"),
            &[
                ("/from", Phone),
                ("/profile_name", Nothing),
                ("/content", Message),
            ],
        ),
        "BotReplied" | "StaffReplied" => personal(
            SubjectAt::Field("/to"),
            &[("/to", Phone), ("/reply", Message)],
        ),
        "BotStateChanged" => personal(SubjectAt::Stream, &[("/state", BotState)]),
        _ => None,
    }
}

/// The text an erased message reads as.
pub const ERASED_TEXT: &str = "[erased]";

/// The stand-in phone of an erased subject.
pub fn erased_phone(subject: Uuid) -> PhoneNumber {
    let digits = subject.as_u128() % 1_000_000_000_000;
    PhoneNumber::parse(&format!("+999{digits:012}")).expect("+999 and 12 digits is a number")
}

/// Whether a phone is an erased customer's stand-in: nothing is ever sent to it.
pub fn is_erased(phone: &PhoneNumber) -> bool {
    phone.as_str().starts_with("+999")
}

/// What a value of kind `stand_in` of `subject` reads as once they are erased.
pub fn stand_in(stand_in: StandIn, subject: Uuid) -> Value {
    match stand_in {
        StandIn::Phone => json!(erased_phone(subject)),
        StandIn::Nothing => Value::Null,
        StandIn::Customer => json!({ "phone": erased_phone(subject) }),
        StandIn::Message => json!({ "kind": "text", "body": ERASED_TEXT }),
        StandIn::BotState => json!(crate::bot::BotState::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{DomainEvent, decode};

    const SAMPLE_PHONE: &str = "34600000001";
    const SAMPLE_NAME: &str = "\"Ana\"";

    fn decodes(stream_type: &str, event_type: &str, payload: Value) -> Result<(), String> {
        fn check<E: DomainEvent>(event_type: &str, payload: Value) -> Result<(), String> {
            decode::<E>(event_type, &payload)
                .map(drop)
                .map_err(|e| e.to_string())
        }
        match stream_type {
            "booking" => check::<crate::booking::BookingEvent>(event_type, payload),
            "waitlist" => check::<crate::waitlist::WaitlistEvent>(event_type, payload),
            "conversation" => check::<crate::conversation::ConversationEvent>(event_type, payload),
            other => Err(format!("personal data in a {other} event is not expected")),
        }
    }

    #[test]
    fn no_event_outside_the_table_names_a_customer_and_every_stand_in_decodes() {
        let mut listed = 0;
        for (stream_type, _, rows) in crate::catalog::samples() {
            for (event_type, _, payload) in rows {
                let Some(personal) = of(&event_type) else {
                    let text = payload.to_string();
                    assert!(
                        !text.contains(SAMPLE_PHONE) && !text.contains(SAMPLE_NAME),
                        "{event_type} holds a customer's data but is not in personal::of: {text}"
                    );
                    continue;
                };
                listed += 1;
                let subject = match personal.subject {
                    SubjectAt::Field(pointer) => payload.pointer(pointer).cloned(),
                    SubjectAt::Stream => Some(json!("stream")),
                };
                assert!(
                    subject.is_some(),
                    "{event_type}: no subject at {personal:?}"
                );
                let mut erased = payload.clone();
                for (pointer, kind) in personal.fields {
                    if let Some(value) = erased.pointer_mut(pointer) {
                        *value = stand_in(*kind, Uuid::from_u128(42));
                    }
                }
                let text = erased.to_string();
                assert!(
                    !text.contains(SAMPLE_PHONE) && !text.contains(SAMPLE_NAME),
                    "{event_type} keeps personal data outside its listed fields: {text}"
                );
                decodes(stream_type, &event_type, erased)
                    .unwrap_or_else(|e| panic!("{event_type}'s stand-ins do not decode: {e}"));
            }
        }
        assert_eq!(listed, 7, "every event type of the table is in the catalog");
    }

    #[test]
    fn an_erased_phone_is_a_number_nobody_has_and_stable_per_subject() {
        let subject = Uuid::new_v4();
        assert_eq!(erased_phone(subject), erased_phone(subject));
        assert!(is_erased(&erased_phone(subject)));
        assert_ne!(erased_phone(subject), erased_phone(Uuid::new_v4()));
        assert!(!is_erased(&PhoneNumber::parse("+34600000001").unwrap()));
    }
}
