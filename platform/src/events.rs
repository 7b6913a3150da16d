//! Domain events as the event store takes and gives them.

use domain::event::DomainEvent;
use eventstore::{EventMetadata, NewEvent, StreamRef};
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

/// Events ready to append. Their ids derive from the command's idempotency key and the stream,
/// so a retried command produces the same ids and is recognised by the store.
pub fn new_events<E: DomainEvent>(
    tenant_id: Uuid,
    idempotency_key: &str,
    stream: &StreamRef,
    events: &[E],
    metadata: &EventMetadata,
) -> Vec<NewEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let encoded = domain::event::encode(event);
            NewEvent {
                event_id: eventstore::event_id_from_key(
                    tenant_id,
                    &format!("{idempotency_key}|{stream}"),
                    i as u32,
                ),
                event_type: encoded.event_type.to_owned(),
                schema_version: encoded.schema_version,
                payload: encoded.payload,
                metadata: metadata.clone(),
            }
        })
        .collect()
}

/// An aggregate's state and stream version from its recorded events (in version order).
pub fn fold<D: domain::decider::Decider>(
    stream: &StreamRef,
    recorded: Vec<eventstore::RecordedEvent>,
) -> anyhow::Result<(D::State, u32)> {
    let version = recorded.last().map_or(0, |e| e.version);
    let mut state = D::State::default();
    for event in recorded {
        let decoded: D::Event =
            domain::event::decode(&event.event_type, event.payload).map_err(|err| {
                anyhow::anyhow!(
                    "stored event {} of {stream} is unreadable: {err}",
                    event.event_id
                )
            })?;
        state = D::evolve(state, &decoded);
    }
    Ok((state, version))
}

/// What the store is told to expect of a stream read at `version`.
pub fn expect(version: u32) -> eventstore::ExpectedVersion {
    if version == 0 {
        eventstore::ExpectedVersion::NoStream
    } else {
        eventstore::ExpectedVersion::Exact(version)
    }
}
