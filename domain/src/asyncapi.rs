//! `domain/asyncapi/events.json`, the AsyncAPI 3.0 document of the internal events stream, is
//! generated here from the event catalogue (one sample of every event, [`crate::catalog`]) like
//! `EVENTS.md`; the test fails while the committed copy is stale (`UPDATE_ASYNCAPI=1` rewrites
//! it) or when it does not validate against AsyncAPI 3.0.0's own JSON Schema (vendored from the
//! npm package `@asyncapi/specs`, `asyncapi/spec/`).
//!
//! A payload's schema is read off its sample: every field the sample has, with its JSON type
//! (and `uuid` or `date-time` where the value is one) and the sample as the example. Optional
//! fields a sample leaves out are therefore not listed; `EVENTS.md` and the event types say
//! which they are.

use serde_json::{Map, Value, json};

use crate::catalog::{meaning, samples};

/// The relay's NATS headers (`nats::headers`, which the analytics tests hold this list to).
const HEADERS: [(&str, &str); 8] = [
    (
        "Nats-Msg-Id",
        "The event id: JetStream's de-duplication key.",
    ),
    ("Booking-Tenant", "The tenant id."),
    ("Booking-Stream-Type", "The stream's type."),
    ("Booking-Stream-Id", "The stream's id within its type."),
    (
        "Booking-Version",
        "The event's version within its stream (1, 2, ...).",
    ),
    ("Booking-Event-Type", "The event type."),
    ("Booking-Schema-Version", "The payload's schema version."),
    (
        "Booking-Position",
        "The event's place in the log's commit order: `<transaction_id>.<global_position>`.",
    ),
];

/// Headers the relay sets on some messages only.
const OPTIONAL_HEADERS: [(&str, &str); 1] = [(
    "traceparent",
    "The W3C trace context of the relay's publish span, on the events of an operation that is traced (when the platform exports traces): a consumer's span can join the trace.",
)];

pub(crate) fn events_document() -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    for (stream, about, events) in samples() {
        for (event_type, version, payload) in events {
            let id = format!("{stream}.{event_type}");
            messages.insert(
                id.clone(),
                json!({
                    "name": event_type,
                    "title": format!("{event_type} ({stream})"),
                    "summary": meaning(&event_type),
                    "description": format!("Stream `{stream}`: {about}. Schema version {version}."),
                    "headers": {"$ref": "#/components/schemas/Headers"},
                    "payload": envelope(&payload, &event_type, version),
                    "examples": [{"name": "sample", "payload": example(stream, &event_type, version, &payload)}],
                }),
            );
            channels.insert(
                id.clone(),
                json!({
                    "address": format!("evt.{{tenant_id}}.{stream}.{event_type}"),
                    "title": format!("{stream} / {event_type}"),
                    "parameters": {"tenant_id": {"$ref": "#/components/parameters/tenant_id"}},
                    "messages": {event_type.clone(): {"$ref": format!("#/components/messages/{id}")}},
                }),
            );
            operations.insert(
                format!("receive.{id}"),
                json!({
                    "action": "receive",
                    "channel": {"$ref": format!("#/channels/{id}")},
                    "messages": [{"$ref": format!("#/channels/{id}/messages/{event_type}")}],
                }),
            );
        }
    }
    let headers: Map<String, Value> = HEADERS
        .iter()
        .chain(&OPTIONAL_HEADERS)
        .map(|(name, about)| {
            (
                (*name).to_owned(),
                json!({"type": "string", "description": about}),
            )
        })
        .collect();
    let mut schemas = shared_schemas();
    schemas["Headers"] =
        json!({"type": "object", "properties": headers, "required": HEADERS.map(|h| h.0)});
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Booking platform: the events stream",
            "version": "1.0.0",
            "description": "Every event the platform records, published once by the relay (the \
                outbox) on JetStream's `EVENTS` stream, one subject per tenant, stream type and \
                event type. Consumers (projections, reactors, analytics) read it with durable pull \
                consumers and explicit acks; `evt.>` is everything, `evt.<tenant_id>.>` one \
                tenant. The message is the event as stored (the envelope), the event's own \
                fields in `payload`. Internal to the platform: businesses get the public events \
                (webhooks, server-sent events) instead.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:4223",
                "protocol": "nats",
                "description": "The project's nats-server (`nats/single.conf`); each service \
                    connects as its own user (`nats/auth.conf`).",
                "security": [{"$ref": "#/components/securitySchemes/user"}],
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "parameters": {
                "tenant_id": {"description": "The tenant's id (a UUID)."},
            },
            "schemas": schemas,
            "securitySchemes": {
                "user": {"type": "userPassword", "description": "A NATS user and password."},
            },
        },
    })
}

/// The public events (`crate::integration`) as a business's systems receive them: the
/// server-sent-events stream of the query API.
pub(crate) fn integrations_document() -> Value {
    use crate::integration::{Topic, envelope, envelope_schema, from_stored};
    // One example of each topic, made from the catalogue's samples as the feed makes them.
    let mut examples = Map::new();
    for (stream, _, events) in samples() {
        let stream_id = match stream {
            "conversation" => "+34600000001".to_owned(),
            _ => "3f1e9a52-7c4d-4b8e-a1f0-6d2c5b9e8a17".to_owned(),
        };
        for (event_type, _, payload) in events {
            if let Some(event) = from_stored(stream, &stream_id, &event_type, &payload).unwrap() {
                let topic = event.topic.name();
                let body = envelope(
                    uuid::Uuid::from_u128(0x5d2c8e71_94b0_4f3a_8c16_7e0a9b3d2f45),
                    uuid::Uuid::from_u128(0x0b9f4c1e_3d5a_4e27_9a61_2f8d7c5b4a30),
                    "2026-12-01T08:30:00Z".parse().unwrap(),
                    event,
                );
                examples.entry(topic).or_insert(body);
            }
        }
    }
    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut message_refs = Vec::new();
    let mut webhook_refs = Vec::new();
    for topic in Topic::ALL {
        let name = topic.name();
        messages.insert(
            name.to_owned(),
            json!({
                "name": name,
                "title": name,
                "summary": topic.summary(),
                "description": format!("Version {}. The SSE event's `event` is `{name}`, its `id` the event's number in the business's feed, its `data` this body.", topic.version()),
                "payload": envelope_schema(topic),
                "examples": [{"name": "example", "payload": examples[name]}],
            }),
        );
        channel_messages.insert(
            name.to_owned(),
            json!({"$ref": format!("#/components/messages/{name}")}),
        );
        message_refs.push(json!({"$ref": format!("#/channels/events/messages/{name}")}));
        webhook_refs.push(json!({"$ref": format!("#/channels/webhooks/messages/{name}")}));
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "Booking platform: public events",
            "version": "1.0.0",
            "description": "What a business's own systems may be told about its bookings and                 conversations, as server-sent events from `GET /v1/events/stream` of the query                 API (an API key with the `read_events` scope, or an owner's or admin's token).                 Events come in the order they happened, numbered 1, 2, ... per business: the SSE                 `id`. Reconnect with `Last-Event-ID` to resume after the last one seen, without                 gaps; `0` replays from the first. Each type is versioned on its own; a field may                 be added to a version, never removed or retyped. Nothing of another business, no                 secret. The same events are posted to each webhook endpoint the business                 registered (`POST /v1/webhook-endpoints` of the command API), in the same order,                 signed.",
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8081",
                "protocol": "http",
                "description": "The query API of `just up`.",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            },
            "receiver": {
                "host": "{receiver}",
                "protocol": "https",
                "description": "The business's own server: the host of a URL it registered as a webhook endpoint.",
                "variables": {"receiver": {"description": "The endpoint URL's host (and port)."}},
            },
        },
        "channels": {
            "events": {
                "address": "/v1/events/stream",
                "title": "The business's events",
                "description": "`text/event-stream`; a comment every 15 s while idle.",
                "servers": [{"$ref": "#/servers/local"}],
                "messages": channel_messages.clone(),
            },
            "webhooks": {
                "address": null,
                "title": "A webhook endpoint of the business",
                "description": "Each event is POSTed as `application/json` to the endpoint's URL with the headers `Booking-Signature: t=<unix seconds>,v1=<hex>` (HMAC-SHA256 keyed with the endpoint's whole secret, `whsec_...`, over `<t>.<raw body>`; refuse a `t` more than 5 minutes from your clock), `Booking-Event-Id` (the body's `id`: a repeat of a delivery has the same), `Booking-Event-Seq` (the event's number in the business's feed) and `Booking-Topic`. Answer 2xx within 10 s once the event is safely kept; anything else is retried with exponential backoff (30 s doubling, at most 6 h apart) for up to 3 days, after which the endpoint is disabled and the business's owners and admins are emailed. Events are posted one at a time, in order: a later event waits while an earlier one is retried.",
                "servers": [{"$ref": "#/servers/receiver"}],
                "messages": channel_messages,
            },
        },
        "operations": {
            "sendEvents": {
                "action": "send",
                "title": "The platform streams each public event to the business",
                "channel": {"$ref": "#/channels/events"},
                "messages": message_refs,
            },
            "postWebhooks": {
                "action": "send",
                "title": "The platform posts each public event to the business's webhook endpoints",
                "channel": {"$ref": "#/channels/webhooks"},
                "messages": webhook_refs,
            },
        },
        "components": {
            "messages": messages,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An API key (`bk_live_...`) with the `read_events` scope, or an access token."},
            },
        },
    })
}

/// The envelope's schema around one event's payload schema (what every event shares is in
/// `components/schemas`).
fn envelope(payload: &Value, event_type: &str, version: u32) -> Value {
    let shared = |name: &str| json!({"$ref": format!("#/components/schemas/{name}")});
    json!({
        "type": "object",
        "required": ["position", "tenant_id", "stream", "version", "event_id", "event_type",
            "schema_version", "payload", "metadata", "recorded_at"],
        "properties": {
            "position": shared("Position"),
            "tenant_id": shared("Uuid"),
            "stream": shared("Stream"),
            "version": {"type": "integer", "minimum": 1, "description": "The event's version within its stream."},
            "event_id": shared("Uuid"),
            "event_type": {"type": "string", "const": event_type},
            "schema_version": {"type": "integer", "const": version},
            "payload": infer(payload),
            "metadata": shared("Metadata"),
            "recorded_at": {"type": "string", "format": "date-time"},
        },
    })
}

/// The schemas every envelope shares.
fn shared_schemas() -> Value {
    let uuid = json!({"type": "string", "format": "uuid"});
    json!({
        "Uuid": uuid,
        "Position": {
            "type": "object",
            "description": "The event's place in the log's commit order (ordered by transaction, then position).",
            "required": ["transaction_id", "global_position"],
            "properties": {
                "transaction_id": {"type": "integer", "minimum": 0},
                "global_position": {"type": "integer", "minimum": 1},
            },
        },
        "Stream": {
            "type": "object",
            "required": ["stream_type", "stream_id"],
            "properties": {"stream_type": {"type": "string"}, "stream_id": {"type": "string"}},
        },
        "Metadata": {
            "type": "object",
            "properties": {
                "actor": {"type": "string", "description": "`user:<id>`, `api_key:<id>`, `whatsapp:<wa_id>`, `operator:<id>` or `system:<component>`."},
                "correlation_id": uuid,
                "causation_id": uuid,
                "request_id": {"type": "string"},
                "traceparent": {"type": "string", "description": "The W3C trace context of the span that appended the event, when traces are exported."},
            },
        },
    })
}

/// A whole message around a sample payload (the ids and positions are made up).
fn example(stream: &str, event_type: &str, version: u32, payload: &Value) -> Value {
    json!({
        "position": {"transaction_id": 7_412_u64, "global_position": 1_024_u64},
        "tenant_id": "0b9f4c1e-3d5a-4e27-9a61-2f8d7c5b4a30",
        "stream": {"stream_type": stream, "stream_id": "example"},
        "version": 1,
        "event_id": "5d2c8e71-94b0-4f3a-8c16-7e0a9b3d2f45",
        "event_type": event_type,
        "schema_version": version,
        "payload": payload,
        "metadata": {"actor": "system:example"},
        "recorded_at": "2026-12-01T08:30:00Z",
    })
}

/// A schema read off a sample value.
fn infer(sample: &Value) -> Value {
    match sample {
        Value::Null => json!({}),
        Value::Bool(_) => json!({"type": "boolean"}),
        Value::Number(n) if n.is_i64() || n.is_u64() => json!({"type": "integer"}),
        Value::Number(_) => json!({"type": "number"}),
        Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => {
            json!({"type": "string", "format": "uuid"})
        }
        Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok() => {
            json!({"type": "string", "format": "date-time"})
        }
        Value::String(_) => json!({"type": "string"}),
        Value::Array(items) => match items.first() {
            Some(first) => json!({"type": "array", "items": infer(first)}),
            None => json!({"type": "array"}),
        },
        Value::Object(fields) => {
            let properties: Map<String, Value> =
                fields.iter().map(|(k, v)| (k.clone(), infer(v))).collect();
            json!({"type": "object", "properties": properties})
        }
    }
}

/// Every `$ref` in `doc` that does not point inside it.
pub(crate) fn dangling_refs(doc: &Value) -> Vec<String> {
    fn walk(node: &Value, root: &Value, out: &mut Vec<String>) {
        match node {
            Value::Object(fields) => {
                if let Some(Value::String(target)) = fields.get("$ref") {
                    let found = target
                        .strip_prefix('#')
                        .and_then(|pointer| root.pointer(pointer));
                    if found.is_none() {
                        out.push(target.clone());
                    }
                }
                for value in fields.values() {
                    walk(value, root, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, root, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(doc, doc, &mut out);
    out
}

/// The errors of `doc` against AsyncAPI 3.0.0's JSON Schema, and its dangling references.
pub(crate) fn validate(doc: &Value) -> Vec<String> {
    let schema: Value =
        serde_json::from_str(include_str!("../asyncapi/spec/asyncapi-3.0.0.schema.json"))
            .expect("the vendored AsyncAPI schema is JSON");
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .expect("the AsyncAPI schema compiles");
    let mut errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    errors.extend(
        dangling_refs(doc)
            .into_iter()
            .map(|r| format!("$ref {r} points nowhere")),
    );
    errors
}

/// Compares `generated` with the committed file at `domain/<path>`, rewriting it first when
/// `UPDATE_ASYNCAPI` is set.
pub(crate) fn assert_committed(path: &str, generated: &Value) {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = serde_json::to_string_pretty(generated).unwrap() + "\n";
    if std::env::var_os("UPDATE_ASYNCAPI").is_some() {
        std::fs::write(&file, &text).unwrap();
    }
    let current = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        current == text,
        "domain/{path} is stale: run UPDATE_ASYNCAPI=1 cargo test -p domain asyncapi"
    );
}

#[test]
fn the_events_stream_asyncapi_document_is_up_to_date_and_valid() {
    let doc = events_document();
    let errors = validate(&doc);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_committed("asyncapi/events.json", &doc);
}

#[test]
fn the_public_events_asyncapi_document_is_up_to_date_and_valid() {
    let doc = integrations_document();
    let errors = validate(&doc);
    assert!(errors.is_empty(), "{errors:#?}");
    assert_committed("asyncapi/integrations.json", &doc);
}

#[test]
fn the_validation_catches_what_is_wrong() {
    let mut doc = events_document();
    doc["asyncapi"] = json!("2.6.0");
    doc["channels"]["booking.AppointmentRequested"]["messages"]["AppointmentRequested"]["$ref"] =
        json!("#/components/messages/nothing");
    let errors = validate(&doc);
    assert!(errors.iter().any(|e| e.contains("3.0.0")), "{errors:#?}");
    assert!(
        errors.iter().any(|e| e.contains("points nowhere")),
        "{errors:#?}"
    );
}
