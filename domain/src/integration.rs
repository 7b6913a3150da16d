//! The public event catalogue: what a business's own systems may receive about its bookings
//! and conversations (signed webhooks, the server-sent-events stream).
//!
//! Public events are derived from the internal ones, named and versioned on their own
//! (`booking.cancelled`, version 1), so the internal events can change without breaking a
//! business's integration. They carry the business's own records only: no secret, no internal
//! bookkeeping (holds, reminders' schedules, the bot's state), nothing of another tenant.
//! `domain/asyncapi/integrations.json` describes them, generated from [`Topic::data_schema`]
//! and checked against what [`from_stored`] makes of every internal event.

use serde_json::{Value, json};

use crate::booking::{BookingEvent, Channel, Party};
use crate::conversation::ConversationEvent;
use crate::event::{DecodeError, DomainEvent, decode};

/// What a public event is about. Its name is what receivers switch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    BookingCreated,
    BookingConfirmed,
    BookingCancelled,
    BookingRescheduled,
    BookingCompleted,
    BookingNoShow,
    BookingAttendanceConfirmed,
    ConversationHandedOff,
}

/// A public event's body, before the delivery envelope ([`envelope`]) wraps it.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicEvent {
    pub topic: Topic,
    pub data: Value,
}

impl Topic {
    pub const ALL: [Topic; 8] = [
        Topic::BookingCreated,
        Topic::BookingConfirmed,
        Topic::BookingCancelled,
        Topic::BookingRescheduled,
        Topic::BookingCompleted,
        Topic::BookingNoShow,
        Topic::BookingAttendanceConfirmed,
        Topic::ConversationHandedOff,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Topic::BookingCreated => "booking.created",
            Topic::BookingConfirmed => "booking.confirmed",
            Topic::BookingCancelled => "booking.cancelled",
            Topic::BookingRescheduled => "booking.rescheduled",
            Topic::BookingCompleted => "booking.completed",
            Topic::BookingNoShow => "booking.no_show",
            Topic::BookingAttendanceConfirmed => "booking.attendance_confirmed",
            Topic::ConversationHandedOff => "conversation.handed_off",
        }
    }

    pub fn parse(name: &str) -> Option<Topic> {
        Topic::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The version of `data`'s shape. A change a receiver could trip on (a field removed or
    /// retyped) is a new version; a field added is not.
    pub fn version(self) -> u32 {
        1
    }

    pub fn summary(self) -> &'static str {
        match self {
            Topic::BookingCreated => "A booking was made (by the bot, the staff or the API).",
            Topic::BookingConfirmed => "The booking is confirmed.",
            Topic::BookingCancelled => "The customer or the business cancelled the booking.",
            Topic::BookingRescheduled => "The booking moved to another time or resource.",
            Topic::BookingCompleted => "The appointment took place.",
            Topic::BookingNoShow => "The customer did not come.",
            Topic::BookingAttendanceConfirmed => {
                "The customer answered a reminder: they will come."
            }
            Topic::ConversationHandedOff => {
                "A customer asked the WhatsApp bot for a person: someone should answer them."
            }
        }
    }

    /// The JSON Schema (draft 07) of `data`.
    pub fn data_schema(self) -> Value {
        let booking_only = || object(&[("booking_id", uuid())], &["booking_id"]);
        match self {
            Topic::BookingCreated => object(
                &[
                    ("booking_id", uuid()),
                    (
                        "reference",
                        described(string(), "The short code the customer was given."),
                    ),
                    (
                        "service",
                        object(&[("id", uuid()), ("name", string())], &["id", "name"]),
                    ),
                    ("resource", described(string(), "Who or what is booked.")),
                    ("starts_at", timestamp()),
                    ("ends_at", timestamp()),
                    ("customer", customer()),
                    (
                        "channel",
                        json!({"type": "string", "enum": Channel::labels()}),
                    ),
                    ("price", money()),
                ],
                &[
                    "booking_id",
                    "reference",
                    "service",
                    "resource",
                    "starts_at",
                    "ends_at",
                    "customer",
                    "channel",
                    "price",
                ],
            ),
            Topic::BookingCancelled => object(
                &[
                    ("booking_id", uuid()),
                    ("cancelled_by", party()),
                    ("reason", string()),
                ],
                &["booking_id", "cancelled_by"],
            ),
            Topic::BookingRescheduled => {
                let slot = || {
                    object(
                        &[
                            ("starts_at", timestamp()),
                            ("ends_at", timestamp()),
                            ("resource", string()),
                        ],
                        &["starts_at", "ends_at", "resource"],
                    )
                };
                object(
                    &[
                        ("booking_id", uuid()),
                        ("rescheduled_by", party()),
                        ("from", slot()),
                        ("to", slot()),
                    ],
                    &["booking_id", "rescheduled_by", "from", "to"],
                )
            }
            Topic::BookingConfirmed
            | Topic::BookingCompleted
            | Topic::BookingNoShow
            | Topic::BookingAttendanceConfirmed => booking_only(),
            Topic::ConversationHandedOff => object(
                &[(
                    "customer_phone",
                    described(e164(), "The customer waiting for a person."),
                )],
                &["customer_phone"],
            ),
        }
    }
}

/// What a business's systems are told of a stored internal event, if anything.
pub fn from_stored(
    stream_type: &str,
    stream_id: &str,
    event_type: &str,
    payload: &Value,
) -> Result<Option<PublicEvent>, DecodeError> {
    Ok(match stream_type {
        BookingEvent::STREAM_TYPE => from_booking(stream_id, &decode(event_type, payload)?),
        ConversationEvent::STREAM_TYPE => {
            from_conversation(stream_id, &decode(event_type, payload)?)
        }
        _ => None,
    })
}

fn from_booking(booking_id: &str, event: &BookingEvent) -> Option<PublicEvent> {
    let only_id = |topic| {
        Some(PublicEvent {
            topic,
            data: json!({"booking_id": booking_id}),
        })
    };
    match event {
        BookingEvent::AppointmentRequested {
            booking_id,
            reference,
            service_id,
            service_name,
            price,
            resource,
            appointment,
            customer,
            channel,
        } => {
            let mut who = json!({"phone": customer.phone.as_str()});
            if let Some(name) = &customer.name {
                who["name"] = json!(name);
            }
            Some(PublicEvent {
                topic: Topic::BookingCreated,
                data: json!({
                    "booking_id": booking_id,
                    "reference": reference,
                    "service": {"id": service_id, "name": service_name},
                    "resource": resource.as_str(),
                    "starts_at": appointment.start,
                    "ends_at": appointment.end,
                    "customer": who,
                    "channel": channel.as_str(),
                    "price": {"minor": price.minor(), "currency": price.currency().as_str()},
                }),
            })
        }
        BookingEvent::AppointmentConfirmed => only_id(Topic::BookingConfirmed),
        BookingEvent::AppointmentCancelled { by, reason } => {
            let mut data = json!({"booking_id": booking_id, "cancelled_by": by.as_str()});
            if let Some(reason) = reason {
                data["reason"] = json!(reason.as_str());
            }
            Some(PublicEvent {
                topic: Topic::BookingCancelled,
                data,
            })
        }
        BookingEvent::AppointmentRescheduled {
            from,
            to,
            from_resource,
            to_resource,
            by,
        } => Some(PublicEvent {
            topic: Topic::BookingRescheduled,
            data: json!({
                "booking_id": booking_id,
                "rescheduled_by": by.as_str(),
                "from": {"starts_at": from.start, "ends_at": from.end, "resource": from_resource.as_str()},
                "to": {"starts_at": to.start, "ends_at": to.end, "resource": to_resource.as_str()},
            }),
        }),
        BookingEvent::AppointmentCompleted => only_id(Topic::BookingCompleted),
        BookingEvent::AppointmentMarkedNoShow => only_id(Topic::BookingNoShow),
        BookingEvent::AttendanceConfirmed => only_id(Topic::BookingAttendanceConfirmed),
        // The front desk's own note: not (yet) in the public catalogue.
        BookingEvent::RemindersScheduled { .. }
        | BookingEvent::ReminderSent { .. }
        | BookingEvent::ReminderSkipped { .. }
        | BookingEvent::CustomerArrived { .. } => None,
    }
}

fn from_conversation(phone: &str, event: &ConversationEvent) -> Option<PublicEvent> {
    match event {
        ConversationEvent::HandedOffToHuman => Some(PublicEvent {
            topic: Topic::ConversationHandedOff,
            data: json!({"customer_phone": phone}),
        }),
        _ => None,
    }
}

/// The delivered body: the same for a webhook and an SSE `data:` line. Takes the event, so its
/// `data` moves into the body rather than being copied (`json!` would copy it through a
/// serializer: every event of the log passes here, in a rebuild too).
pub fn envelope(
    event_id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    created_at: chrono::DateTime<chrono::Utc>,
    event: PublicEvent,
) -> Value {
    let mut body = json!({
        "id": event_id,
        "type": event.topic.name(),
        "version": event.topic.version(),
        "created_at": created_at,
        "tenant_id": tenant_id,
    });
    body["data"] = event.data;
    body
}

/// The JSON Schema of [`envelope`] for one topic.
pub fn envelope_schema(topic: Topic) -> Value {
    object(
        &[
            (
                "id",
                described(
                    uuid(),
                    "The event's id: the same on every delivery of it (de-duplicate on it).",
                ),
            ),
            ("type", json!({"type": "string", "const": topic.name()})),
            (
                "version",
                json!({"type": "integer", "const": topic.version()}),
            ),
            ("created_at", described(timestamp(), "When it happened.")),
            ("tenant_id", described(uuid(), "The business.")),
            ("data", topic.data_schema()),
        ],
        &["id", "type", "version", "created_at", "tenant_id", "data"],
    )
}

fn object(properties: &[(&str, Value)], required: &[&str]) -> Value {
    let properties: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    json!({"type": "object", "properties": properties, "required": required})
}

fn described(mut schema: Value, description: &str) -> Value {
    schema["description"] = json!(description);
    schema
}

fn string() -> Value {
    json!({"type": "string"})
}

fn uuid() -> Value {
    json!({"type": "string", "format": "uuid"})
}

fn timestamp() -> Value {
    json!({"type": "string", "format": "date-time"})
}

fn e164() -> Value {
    json!({"type": "string", "pattern": "^\\+[1-9][0-9]{7,14}$"})
}

fn party() -> Value {
    json!({"type": "string", "enum": Party::labels()})
}

fn customer() -> Value {
    object(&[("phone", e164()), ("name", string())], &["phone"])
}

fn money() -> Value {
    described(
        object(
            &[
                (
                    "minor",
                    json!({"type": "integer", "minimum": 0, "description": "Minor units (cents)."}),
                ),
                (
                    "currency",
                    json!({"type": "string", "pattern": "^[A-Z]{3}$"}),
                ),
            ],
            &["minor", "currency"],
        ),
        "An amount in integer minor units and an ISO 4217 currency.",
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Every sample of the event catalogue through [`from_stored`]: which topics they make.
    fn public_samples() -> Vec<(String, PublicEvent)> {
        let mut out = Vec::new();
        for (stream, _, events) in crate::catalog::samples() {
            let stream_id = match stream {
                "conversation" => "+34600000001".to_owned(),
                _ => uuid::Uuid::from_u128(7).to_string(),
            };
            for (event_type, _, payload) in events {
                if let Some(event) = from_stored(stream, &stream_id, &event_type, &payload).unwrap()
                {
                    out.push((event_type, event));
                }
            }
        }
        out
    }

    #[test]
    fn every_topic_comes_from_an_internal_event_and_matches_its_schema() {
        let samples = public_samples();
        let made: HashSet<Topic> = samples.iter().map(|(_, e)| e.topic).collect();
        for topic in Topic::ALL {
            assert!(
                made.contains(&topic),
                "no internal event makes {}",
                topic.name()
            );
            assert_eq!(Topic::parse(topic.name()), Some(topic));
        }
        for (event_type, event) in &samples {
            let body = envelope(
                uuid::Uuid::from_u128(1),
                uuid::Uuid::from_u128(2),
                "2026-12-01T08:30:00Z".parse().unwrap(),
                event.clone(),
            );
            let schema = envelope_schema(event.topic);
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&schema)
                .unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&body)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{event_type} as {}: {errors:?}",
                event.topic.name()
            );
        }
    }

    #[test]
    fn internal_bookkeeping_and_other_streams_stay_inside() {
        let samples = public_samples();
        let sources: HashSet<&str> = samples.iter().map(|(t, _)| t.as_str()).collect();
        for internal in [
            "RemindersScheduled",
            "ReminderSent",
            "BotReplied",
            "BotStateChanged",
            "MessageReceived",
            "SlotHeld",
            "ApiKeyIssued",
            "WhatsAppNumberConnected",
            "StripeCustomerCreated",
        ] {
            assert!(!sources.contains(internal), "{internal} is not public");
        }
        // Nothing public mentions a secret or the stored token.
        for (_, event) in &samples {
            let text = event.data.to_string();
            for word in ["secret", "token", "password", "key_hash"] {
                assert!(
                    !text.contains(word),
                    "{} carries {word}",
                    event.topic.name()
                );
            }
        }
    }
}
