//! Loading an aggregate from its stream and turning decided events into appendable ones.

use domain::{Decider, DomainEvent};
use eventstore::{EventMetadata, EventStore, ExpectedVersion, StreamRef};
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
    fold::<D>(stream, store.read_stream(tenant_id, stream, 1).await?)
}

/// An aggregate's state from its stream's events (already read).
pub fn fold<D: Decider>(
    stream: &StreamRef,
    recorded: Vec<eventstore::RecordedEvent>,
) -> Result<(D::State, u32), Problem> {
    platform::events::fold::<D>(stream, recorded).map_err(Problem::internal)
}

pub use platform::events::expect;
pub use platform::events::new_events;

/// Who issued a command and under which idempotency key.
#[derive(Debug, Clone)]
pub struct CommandContext {
    pub tenant_id: Uuid,
    pub actor: String,
    pub request_id: Option<String>,
    /// The client's `Idempotency-Key`, or a fresh one per request.
    pub idempotency_key: String,
}

impl CommandContext {
    pub fn metadata(&self) -> EventMetadata {
        EventMetadata {
            actor: Some(self.actor.clone()),
            correlation_id: Some(eventstore::event_id_from_key(
                self.tenant_id,
                &self.idempotency_key,
                u32::MAX,
            )),
            causation_id: None,
            request_id: self.request_id.clone(),
        }
    }
}

/// The result of a command: the stream's new version, the consistency token and the new state.
#[derive(Debug, Clone)]
pub struct Executed<S> {
    pub version: u32,
    pub consistency_token: String,
    /// The aggregate after the command.
    pub state: S,
}

/// How often a command is decided again when its stream moved between read and append.
pub const ATTEMPTS: usize = 5;

/// Runs a command on one stream: load, decide, append with the version read; when another
/// writer got there first, decide again on the fresh state.
pub async fn execute<D: Decider>(
    store: &EventStore,
    ctx: &CommandContext,
    stream: &StreamRef,
    decide: impl Fn(&D::State, u32) -> Result<Vec<D::Event>, Problem>,
) -> Result<Executed<D::State>, Problem> {
    for _ in 0..ATTEMPTS {
        let (state, version) = load::<D>(store, ctx.tenant_id, stream).await?;
        let events = decide(&state, version)?;
        if events.is_empty() {
            return Ok(Executed {
                version,
                consistency_token: String::new(),
                state,
            });
        }
        let append = eventstore::StreamAppend {
            stream: stream.clone(),
            expected: expect(version),
            events: new_events(
                ctx.tenant_id,
                &ctx.idempotency_key,
                stream,
                &events,
                &ctx.metadata(),
            ),
        };
        match store.append(ctx.tenant_id, vec![append]).await {
            Ok(outcome) => {
                let version = outcome.streams[0].last_version;
                return Ok(Executed {
                    version,
                    consistency_token: outcome.last_position.to_string(),
                    state: events.iter().fold(state, D::evolve),
                });
            }
            Err(eventstore::AppendError::Conflict { .. }) => continue,
            Err(eventstore::AppendError::IdempotencyMismatch { .. }) => {
                return Err(Problem::invalid(
                    "Idempotency-Key",
                    "this key was already used for a different request",
                ));
            }
            Err(err) => return Err(Problem::internal(err)),
        }
    }
    Err(Problem::conflict("too many concurrent changes; try again").retry_after(1))
}

/// Appends one stream's events inside a unit of work that also writes other tables (secrets,
/// reservations); the caller commits. A stream that moved meanwhile is a 409 to retry.
pub async fn append_in<E: DomainEvent>(
    store: &EventStore,
    tx: &mut eventstore::TenantTx,
    ctx: &CommandContext,
    stream: &StreamRef,
    expected: ExpectedVersion,
    events: &[E],
) -> Result<eventstore::AppendOutcome, Problem> {
    let append = eventstore::StreamAppend {
        stream: stream.clone(),
        expected,
        events: new_events(
            ctx.tenant_id,
            &ctx.idempotency_key,
            stream,
            events,
            &ctx.metadata(),
        ),
    };
    store
        .append_in(tx, vec![append])
        .await
        .map_err(|err| match err {
            eventstore::AppendError::Conflict { .. } => {
                Problem::conflict("the account changed meanwhile; try again").retry_after(1)
            }
            other => Problem::internal(other),
        })
}
