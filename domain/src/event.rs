//! How domain events meet the event store: a stable type name, a schema version and a JSON
//! payload per event, without the store knowing any of these types.
//!
//! Each aggregate's event enum is `#[serde(tag = "type")]`: the tag is the stored
//! `event_type`, the remaining fields are the payload. Renaming a variant or a field is a
//! schema change: bump the version and register an upcaster (see [`crate::upcast`]).

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde::de::value::MapDeserializer;
use serde_json::Value;

/// An aggregate's event enum.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + std::fmt::Debug {
    /// The stream type its aggregate's streams have in the store (a NATS subject token).
    const STREAM_TYPE: &'static str;

    /// The stable name of this event's type.
    fn event_type(&self) -> &'static str;

    /// The current schema version of an event type (1 unless it has evolved).
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }
}

/// An event ready for the store: type, schema version and payload (the fields, without the tag).
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub event_type: &'static str,
    pub schema_version: u32,
    pub payload: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("a stored payload of {event_type} is not a JSON object")]
    NotAnObject { event_type: String },
    #[error("cannot read a stored {event_type}: {source}")]
    Shape {
        event_type: String,
        source: serde_json::Error,
    },
}

pub fn encode<E: DomainEvent>(event: &E) -> Encoded {
    let mut value = serde_json::to_value(event).expect("domain events serialize");
    if let Some(object) = value.as_object_mut() {
        object.remove("type");
    }
    Encoded {
        event_type: event.event_type(),
        schema_version: E::schema_version(event.event_type()),
        payload: value,
    }
}

/// Reads a stored event back (after upcasting to the current schema), borrowing the payload:
/// the deserializer is handed the tag and then the payload's fields as they are, so nothing
/// of the payload is copied to make the tagged object serde reads.
pub fn decode<E: DomainEvent>(event_type: &str, payload: &Value) -> Result<E, DecodeError> {
    let fields = match payload {
        Value::Object(o) => Some(o),
        Value::Null => None,
        _ => {
            return Err(DecodeError::NotAnObject {
                event_type: event_type.to_owned(),
            });
        }
    };
    let tag = Value::String(event_type.to_owned());
    let entries = std::iter::once(("type", &tag)).chain(
        fields
            .into_iter()
            .flatten()
            .filter(|(name, _)| name.as_str() != "type")
            .map(|(name, value)| (name.as_str(), value)),
    );
    E::deserialize(MapDeserializer::<_, serde_json::Error>::new(entries)).map_err(|source| {
        DecodeError::Shape {
            event_type: event_type.to_owned(),
            source,
        }
    })
}

/// Test support: every sample encodes with its serde tag as its type and decodes back equal.
#[cfg(test)]
pub(crate) fn assert_round_trips<E: DomainEvent + PartialEq>(samples: &[E]) {
    for event in samples {
        let tag = serde_json::to_value(event).unwrap()["type"].clone();
        assert_eq!(tag, Value::String(event.event_type().into()), "{event:?}");
        let encoded = encode(event);
        assert!(encoded.payload.get("type").is_none());
        let decoded: E = decode(encoded.event_type, &encoded.payload).unwrap();
        assert_eq!(&decoded, event);
    }
}
