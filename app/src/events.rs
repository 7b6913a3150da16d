//! Domain events as the event store takes and gives them.

use domain::decider::Decider;
use domain::event::DomainEvent;
use eventstore::{EventMetadata, NewEvent, RecordedEvent, StreamRef};
use std::collections::HashMap;

use eventstore::personal::SubjectKey;
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
    fold_onto::<D>(stream, D::State::default(), 0, recorded)
}

/// `state`, the stream folded up to `version`, with the events `recorded` after it folded on;
/// with the version of the last.
pub fn fold_onto<D: Decider>(
    stream: &StreamRef,
    mut state: D::State,
    version: u32,
    recorded: Vec<RecordedEvent>,
) -> anyhow::Result<(D::State, u32)> {
    let version = recorded.last().map_or(version, |e| e.version);
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
    domain::event::decode(&event.event_type, &event.payload)
}

/// What the store is told to expect of a stream read at `version`.
pub fn expect(version: u32) -> eventstore::ExpectedVersion {
    if version == 0 {
        eventstore::ExpectedVersion::NoStream
    } else {
        eventstore::ExpectedVersion::Exact(version)
    }
}

/// The id of the `index`-th event the command with `idempotency_key` appends to `stream`.
pub(crate) fn event_id(
    tenant_id: Uuid,
    idempotency_key: &str,
    stream: &StreamRef,
    index: u32,
) -> Uuid {
    eventstore::event_id_from_key(tenant_id, &format!("{idempotency_key}|{stream}"), index)
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
            event_id: event_id(tenant_id, idempotency_key, stream, i as u32),
            event_type: encoded.event_type.to_owned(),
            schema_version: encoded.schema_version,
            payload: encoded.payload,
            metadata: metadata.clone(),
        })
        .collect()
}

/// Seals the personal values of staged events (`domain::personal`) with their customers'
/// keys, made on first use on `conn`: what a business holds of a customer is appended
/// unreadable to anyone once the customer is erased.
pub(crate) async fn seal_personal(
    conn: &mut sqlx::PgConnection,
    sealer: &mut PersonalSealer,
    staged: &mut [(StreamRef, Vec<domain::event::Encoded>)],
) -> anyhow::Result<()> {
    for (stream, events) in staged.iter_mut() {
        for event in events.iter_mut() {
            sealer
                .seal(conn, stream, event.event_type, &mut event.payload)
                .await?;
        }
    }
    Ok(())
}

/// Seals events' personal values, remembering the keys it used (a turn seals several events of
/// one customer with one key look-up).
pub struct PersonalSealer {
    tenant_id: Uuid,
    by_phone: HashMap<String, SubjectKey>,
    by_subject: HashMap<Uuid, Option<SubjectKey>>,
    /// Keys made for customers met for the first time, to save with the events they seal.
    fresh: Vec<(String, SubjectKey)>,
}

impl PersonalSealer {
    pub fn new(tenant_id: Uuid) -> Self {
        Self {
            tenant_id,
            by_phone: HashMap::new(),
            by_subject: HashMap::new(),
            fresh: Vec::new(),
        }
    }

    /// Seals the personal values of one event of `stream` in place (nothing for an event type
    /// that holds none). A value whose customer cannot be named is an error, never appended in
    /// the clear; one of a conversation whose customer was erased meanwhile is written as its
    /// stand-in.
    pub async fn seal(
        &mut self,
        conn: &mut sqlx::PgConnection,
        stream: &StreamRef,
        event_type: &str,
        payload: &mut serde_json::Value,
    ) -> anyhow::Result<()> {
        let Some(personal) = domain::personal::of(event_type) else {
            return Ok(());
        };
        let key = match personal.subject {
            domain::personal::SubjectAt::Field(pointer) => {
                let phone = payload
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| anyhow::anyhow!("a {event_type} of {stream} names no customer"))?
                    .to_owned();
                Ok(self.by_phone(conn, phone).await?)
            }
            domain::personal::SubjectAt::Stream => {
                let subject: Uuid = stream.stream_id.parse().map_err(|_| {
                    anyhow::anyhow!("{stream} is not named by a customer's subject id")
                })?;
                self.by_subject(conn, subject).await?.ok_or(subject)
            }
        };
        for (pointer, stand_in) in personal.fields {
            if let Some(value) = payload.pointer_mut(pointer) {
                *value = match &key {
                    Ok(key) => {
                        let erased = domain::personal::stand_in(*stand_in, key.subject);
                        key.seal(self.tenant_id, value, erased)
                    }
                    Err(erased) => domain::personal::stand_in(*stand_in, *erased),
                };
            }
        }
        Ok(())
    }

    /// The key of `phone`, remembered: the business's, or a fresh one for a customer met for
    /// the first time, which [`PersonalSealer::save_fresh`] saves.
    pub(crate) async fn by_phone(
        &mut self,
        conn: &mut sqlx::PgConnection,
        phone: String,
    ) -> Result<SubjectKey, sqlx::Error> {
        if let Some(key) = self.by_phone.get(&phone) {
            return Ok(key.clone());
        }
        let key = match eventstore::personal::key_of_phone(conn, self.tenant_id, &phone).await? {
            Some(key) => key,
            None => {
                let key = SubjectKey::fresh();
                self.fresh.push((phone.clone(), key.clone()));
                key
            }
        };
        self.by_subject.insert(key.subject, Some(key.clone()));
        self.by_phone.insert(phone, key.clone());
        Ok(key)
    }

    /// Saves the keys made for customers met for the first time, on `conn` (the transaction the
    /// events they sealed are appended in). `Err` names the subject of a key another
    /// transaction saved first for the same customer: what was sealed with this one must not
    /// be appended.
    pub async fn save_fresh(
        &mut self,
        conn: &mut sqlx::PgConnection,
    ) -> Result<Result<(), Uuid>, sqlx::Error> {
        for (phone, key) in std::mem::take(&mut self.fresh) {
            if !eventstore::personal::save_key(conn, self.tenant_id, &phone, &key).await? {
                return Ok(Err(key.subject));
            }
        }
        Ok(Ok(()))
    }

    /// Whether keys wait to be saved.
    pub fn has_fresh(&self) -> bool {
        !self.fresh.is_empty()
    }

    async fn by_subject(
        &mut self,
        conn: &mut sqlx::PgConnection,
        subject: Uuid,
    ) -> Result<Option<SubjectKey>, sqlx::Error> {
        if let Some(key) = self.by_subject.get(&subject) {
            return Ok(key.clone());
        }
        let key = eventstore::personal::key_of(conn, self.tenant_id, subject).await?;
        self.by_subject.insert(subject, key.clone());
        Ok(key)
    }
}
