//! Loading an aggregate from its stream and turning decided events into appendable ones.

use domain::{Decider, DomainEvent};
use eventstore::{EventMetadata, EventStore, ExpectedVersion, NewEvent, StreamRef};
use platform::problem::Problem;
use uuid::Uuid;

/// The stream of an aggregate instance.
pub fn stream<E: DomainEvent>(id: impl ToString) -> StreamRef {
    StreamRef::new(E::STREAM_TYPE, id.to_string())
}

/// An aggregate's state and the version it was read at.
pub async fn load<D: Decider>(
    store: &EventStore,
    tenant_id: Uuid,
    stream: &StreamRef,
) -> Result<(D::State, u32), Problem> {
    let recorded = store.read_stream(tenant_id, stream, 1).await?;
    let version = recorded.last().map_or(0, |e| e.version);
    let mut state = D::State::default();
    for event in recorded {
        let decoded: D::Event =
            domain::decode(&event.event_type, event.payload).map_err(|err| {
                Problem::internal(anyhow::anyhow!(
                    "stored event {} of {stream} is unreadable: {err}",
                    event.event_id
                ))
            })?;
        state = D::evolve(state, &decoded);
    }
    Ok((state, version))
}

/// What the store is told to expect of a stream read at `version`.
pub fn expect(version: u32) -> ExpectedVersion {
    if version == 0 {
        ExpectedVersion::NoStream
    } else {
        ExpectedVersion::Exact(version)
    }
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
            let encoded = domain::encode(event);
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

/// Registers the domain's upcasting steps with the store.
pub fn upcasters() -> eventstore::Upcasters {
    domain::upcast::steps()
        .into_iter()
        .fold(eventstore::Upcasters::new(), |u, step| {
            u.register(step.event_type, step.from_version, step.step)
        })
}
