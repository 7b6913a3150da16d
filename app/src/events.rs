//! Domain events as the event store takes and gives them.

use domain::decider::Decider;
use domain::event::DomainEvent;
use eventstore::{EventMetadata, NewEvent, RecordedEvent, StreamRef};
use uuid::Uuid;

/// The domain's upcasting steps registered with the store's reader, so that every service
/// reads old payloads in their current shape.
pub fn upcasters() -> eventstore::Upcasters {
    domain::upcast::steps()
        .into_iter()
        .fold(eventstore::Upcasters::new(), |u, step| {
            u.register(step.event_type, step.from_version, step.step)
        })
}

/// The stream of the aggregate instance `id` whose events are `E`.
pub fn stream<E: DomainEvent>(id: impl ToString) -> StreamRef {
    StreamRef::new(E::STREAM_TYPE, id.to_string())
}

/// An aggregate's state and its stream's version from its recorded events (in version order).
pub fn fold<D: Decider>(
    stream: &StreamRef,
    recorded: Vec<RecordedEvent>,
) -> anyhow::Result<(D::State, u32)> {
    let version = recorded.last().map_or(0, |e| e.version);
    let mut state = D::State::default();
    for event in recorded {
        let decoded: D::Event = decode(&event).map_err(|err| {
            anyhow::anyhow!(
                "stored event {} of {stream} is unreadable: {err}",
                event.event_id
            )
        })?;
        state = D::evolve(state, &decoded);
    }
    Ok((state, version))
}

/// A recorded event as its aggregate's event type.
pub fn decode<E: DomainEvent>(event: &RecordedEvent) -> Result<E, domain::event::DecodeError> {
    domain::event::decode(&event.event_type, event.payload.clone())
}

/// What the store is told to expect of a stream read at `version`.
pub fn expect(version: u32) -> eventstore::ExpectedVersion {
    if version == 0 {
        eventstore::ExpectedVersion::NoStream
    } else {
        eventstore::ExpectedVersion::Exact(version)
    }
}

/// Encoded events ready to append, numbered within their stream. Their ids
/// derive from the command's idempotency key and the stream, so a retried command produces
/// the same ids and the store recognises it.
pub(crate) fn new_events(
    tenant_id: Uuid,
    idempotency_key: &str,
    stream: &StreamRef,
    events: Vec<domain::event::Encoded>,
    metadata: &EventMetadata,
) -> Vec<NewEvent> {
    events
        .into_iter()
        .enumerate()
        .map(|(i, encoded)| NewEvent {
            event_id: eventstore::event_id_from_key(
                tenant_id,
                &format!("{idempotency_key}|{stream}"),
                i as u32,
            ),
            event_type: encoded.event_type.to_owned(),
            schema_version: encoded.schema_version,
            payload: encoded.payload,
            metadata: metadata.clone(),
        })
        .collect()
}
