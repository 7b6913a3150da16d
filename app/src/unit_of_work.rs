//! One command's unit of work: the aggregates it read, at which versions, and what it will
//! append to each.
//!
//! `load` remembers the version of every stream read; `stage` queues events for a stream;
//! the executor's commit appends every staged stream in one transaction, each expected at the
//! version it was read (a stream staged without being read is expected not to exist: a new
//! aggregate). Writes to the vault's tables go through [`UnitOfWork::conn`], on the same
//! transaction, so secrets, reservations and events commit together or not at all.
//!
//! A unit is used once: when its commit meets a moved stream, the executor starts a fresh
//! one and the use case decides again.

use std::any::Any;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use domain::decider::Decider;
use domain::event::{DomainEvent, Encoded};
use eventstore::{
    AppendError, AppendOutcome, EventStore, RecordedEvent, StreamAppend, StreamRef, TenantTx,
};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::context::CommandContext;
use crate::error::AppError;
use crate::events::{PersonalSealer, event_id, expect, fold_onto, new_events, seal_personal};
use crate::states::{Folded, StateCache};

pub struct UnitOfWork<'a> {
    store: &'a EventStore,
    /// The states this process keeps folded: a stream kept there is read from its version.
    states: &'a StateCache,
    /// Whether this unit starts from kept states (not when reading before its own events, or
    /// deciding again after a refusal on one).
    from_kept: bool,
    /// A stream was folded onto a kept state.
    used_kept: bool,
    /// The kept kinds of streams this unit folded, with what it staged to them folded on: what
    /// the cache keeps once the commit appended it.
    evolving: HashMap<StreamRef, Box<dyn Evolving>>,
    ctx: &'a CommandContext,
    /// The version each stream was read at.
    read: HashMap<StreamRef, u32>,
    /// Events to append, per stream, in the order first staged.
    staged: Vec<(StreamRef, Vec<Encoded>)>,
    /// Open once a vault table was written.
    tx: Option<TenantTx>,
    /// The customer whose key the commit deletes, once what is staged is sealed.
    erasing: Option<String>,
    /// The customers' keys this unit has used (a turn names its stream and seals its events
    /// with one look-up).
    sealer: PersonalSealer,
    /// A stream read holds an event this command's key made: it ran before.
    found_own: bool,
    /// Streams are folded as they were before this command's own events (see
    /// [`UnitOfWork::reading_before_own_events`]).
    before_own: bool,
}

/// Streams read together, to be folded one by one with [`UnitOfWork::fold`]: each one's
/// events, after the kept state it was read from, if any.
#[derive(Default)]
pub struct Reads {
    events: HashMap<StreamRef, Vec<RecordedEvent>>,
    kept: HashMap<StreamRef, Folded>,
}

impl<'a> UnitOfWork<'a> {
    pub(crate) fn new(
        store: &'a EventStore,
        states: &'a StateCache,
        ctx: &'a CommandContext,
    ) -> Self {
        Self {
            store,
            states,
            from_kept: true,
            used_kept: false,
            evolving: HashMap::new(),
            ctx,
            read: HashMap::new(),
            staged: Vec::new(),
            tx: None,
            erasing: None,
            sealer: PersonalSealer::new(ctx.tenant_id),
            found_own: false,
            before_own: false,
        }
    }

    /// A unit that reads every stream as it stood before the events this command's key
    /// appended (and what followed them): the decision a retry makes on it is the first run's
    /// again, and stages the same event ids, which the store answers as a replay.
    pub(crate) fn reading_before_own_events(mut self) -> Self {
        self.before_own = true;
        self.from_kept = false;
        self
    }

    /// A unit that reads every stream whole, ignoring the states this process keeps.
    pub(crate) fn reading_whole_streams(mut self) -> Self {
        self.from_kept = false;
        self
    }

    /// Whether a stream was folded onto a state this process kept (whose events this unit
    /// did not see).
    pub(crate) fn used_kept_states(&self) -> bool {
        self.used_kept
    }

    /// Whether a stream this unit read holds an event of this command's key: the command was
    /// applied before (its answer lost on the way, say).
    pub(crate) fn found_own_events(&self) -> bool {
        self.found_own
    }

    pub fn context(&self) -> &'a CommandContext {
        self.ctx
    }

    pub fn tenant_id(&self) -> Uuid {
        self.ctx.tenant_id
    }

    /// The store this unit reads and appends to (for a read on the unit's own transaction).
    pub(crate) fn store(&self) -> &'a EventStore {
        self.store
    }

    /// An aggregate's state; staging to its stream will expect the version read.
    pub async fn load<D: Decider + 'static>(
        &mut self,
        stream: &StreamRef,
    ) -> Result<D::State, AppError>
    where
        D::State: Send + Sync + 'static,
        D::Event: 'static,
    {
        let kept = self.kept(stream);
        let from = kept.as_ref().map_or(1, |k| k.version + 1);
        let recorded = self
            .store
            .read_stream(self.ctx.tenant_id, stream, from)
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("failed to read {stream}")))?;
        let mut reads = Reads::default();
        reads.events.insert(stream.clone(), recorded);
        if let Some(kept) = kept {
            reads.kept.insert(stream.clone(), kept);
        }
        self.fold::<D>(stream, reads)
    }

    /// The state this process kept of `stream`, when this unit may start from it.
    fn kept(&self, stream: &StreamRef) -> Option<Folded> {
        self.from_kept
            .then(|| self.states.get(self.ctx.tenant_id, stream))
            .flatten()
    }

    /// Several streams in one query (a conversation turn reads three aggregates at once); no
    /// query at all for none.
    pub async fn read_many(&mut self, streams: &[StreamRef]) -> Result<Reads, AppError> {
        if streams.is_empty() {
            return Ok(Reads::default());
        }
        let mut kept = HashMap::new();
        let from: Vec<(StreamRef, u32)> = streams
            .iter()
            .map(|stream| {
                let from = self.kept(stream).map_or(1, |k| {
                    let version = k.version;
                    kept.insert(stream.clone(), k);
                    version + 1
                });
                (stream.clone(), from)
            })
            .collect();
        let events = self
            .store
            .read_streams_from(self.ctx.tenant_id, &from)
            .await
            .map_err(|e| anyhow::Error::new(e).context("failed to read streams"))?;
        Ok(Reads { events, kept })
    }

    /// Takes one stream out of `reads` as an aggregate (empty when it has no events), and
    /// remembers its version.
    pub fn fold<D: Decider + 'static>(
        &mut self,
        stream: &StreamRef,
        mut reads: Reads,
    ) -> Result<D::State, AppError>
    where
        D::State: Send + Sync + 'static,
        D::Event: 'static,
    {
        self.fold_in::<D>(stream, &mut reads)
    }

    /// Like [`UnitOfWork::fold`], leaving the other streams in `reads`.
    pub fn fold_in<D: Decider + 'static>(
        &mut self,
        stream: &StreamRef,
        reads: &mut Reads,
    ) -> Result<D::State, AppError>
    where
        D::State: Send + Sync + 'static,
        D::Event: 'static,
    {
        let mut recorded = reads.events.remove(stream).unwrap_or_default();
        let own = || event_id(self.ctx.tenant_id, &self.ctx.idempotency_key, stream, 0);
        if let Some(at) = (!recorded.is_empty())
            .then(own)
            .and_then(|own| recorded.iter().position(|e| e.event_id == own))
        {
            self.found_own = true;
            if self.before_own {
                recorded.truncate(at);
            }
        }
        let gained = !recorded.is_empty();
        let (start, at) = match reads.kept.remove(stream) {
            Some(kept) => {
                let state = kept
                    .state
                    .downcast_ref::<D::State>()
                    .cloned()
                    .ok_or_else(|| {
                        anyhow::anyhow!("the state kept of {stream} is not the aggregate's")
                    })?;
                self.used_kept = true;
                (state, kept.version)
            }
            None => (D::State::default(), 0),
        };
        let (state, version) = fold_onto::<D>(stream, start, at, recorded)?;
        if self.from_kept && self.states.keeps(stream) {
            if gained {
                self.states
                    .put(self.ctx.tenant_id, stream, version, state.clone());
            }
            // Read again after events were staged to it, the state lacks those: what the
            // commit makes of this stream is then not kept (the next load reads it).
            if self.staged.iter().any(|(s, _)| s == stream) {
                self.evolving.remove(stream);
            } else {
                self.evolving.insert(
                    stream.clone(),
                    Box::new(Folding::<D> {
                        state: state.clone(),
                        aggregate: PhantomData,
                    }),
                );
            }
        }
        self.read.insert(stream.clone(), version);
        Ok(state)
    }

    /// Every stream of `D`'s kind whose id lies in `[from_id, to_id]`, in one query (the
    /// agenda days a conversation may offer), with their versions remembered. Streams with no
    /// events are absent.
    pub async fn load_between<D: Decider + 'static>(
        &mut self,
        from_id: &str,
        to_id: &str,
    ) -> Result<Vec<D::State>, AppError>
    where
        D::State: Send + Sync + 'static,
        D::Event: 'static,
    {
        let stream_type = <D::Event as DomainEvent>::STREAM_TYPE;
        let events = self
            .store
            .read_streams_between(self.ctx.tenant_id, stream_type, from_id, to_id)
            .await
            .map_err(|e| {
                anyhow::Error::new(e).context(format!("failed to read {stream_type} streams"))
            })?;
        let mut reads = Reads::default();
        let mut order = Vec::new();
        for event in events {
            if !reads.events.contains_key(&event.stream) {
                order.push(event.stream.clone());
            }
            reads
                .events
                .entry(event.stream.clone())
                .or_default()
                .push(event);
        }
        order
            .iter()
            .map(|stream| self.fold_in::<D>(stream, &mut reads))
            .collect()
    }

    /// The version `stream` was read at (0: not read, or empty).
    pub fn version(&self, stream: &StreamRef) -> u32 {
        self.read.get(stream).copied().unwrap_or(0)
    }

    /// Queues `events` for `stream`, after whatever was staged for it already.
    pub fn stage<E: DomainEvent + 'static>(&mut self, stream: &StreamRef, events: &[E]) {
        debug_assert_eq!(
            stream.stream_type,
            E::STREAM_TYPE,
            "events staged on another kind of stream"
        );
        if events.is_empty() {
            return;
        }
        if let Some(folding) = self.evolving.get_mut(stream)
            && !folding.evolve(&events.to_vec())
        {
            self.evolving.remove(stream);
        }
        let encoded = events.iter().map(domain::event::encode);
        match self.staged.iter_mut().find(|(s, _)| s == stream) {
            Some((_, queued)) => queued.extend(encoded),
            None => self.staged.push((stream.clone(), encoded.collect())),
        }
    }

    /// The conversation stream of `customer`, named by their subject id (made with their key
    /// on first contact, which commits with this unit's events).
    pub async fn conversation_of(
        &mut self,
        customer: &domain::values::PhoneNumber,
    ) -> Result<StreamRef, AppError> {
        let phone = customer.as_str().to_owned();
        let key = match self.tx.as_mut() {
            Some(tx) => self.sealer.by_phone(tx.conn(), phone).await,
            None => {
                let mut conn = self.store.pool().acquire().await?;
                self.sealer.by_phone(&mut conn, phone).await
            }
        }?;
        Ok(crate::events::stream::<
            domain::conversation::ConversationEvent,
        >(key.subject))
    }

    /// Erases `customer` with this unit's commit: their key is deleted (and the erasure
    /// recorded) in the transaction the staged events are appended in, after those are sealed.
    pub async fn erase_customer(
        &mut self,
        customer: &domain::values::PhoneNumber,
    ) -> Result<(), AppError> {
        self.conn().await?;
        self.erasing = Some(customer.as_str().to_owned());
        Ok(())
    }

    /// Whether anything is staged.
    pub fn has_staged(&self) -> bool {
        !self.staged.is_empty()
    }

    /// The connection of this unit's transaction (begun on first use), for the vault's
    /// tables: what is written there commits with the staged events.
    pub async fn conn(&mut self) -> Result<&mut PgConnection, AppError> {
        if self.tx.is_none() {
            self.tx = Some(self.store.begin(self.ctx.tenant_id).await?);
        }
        Ok(self.tx.as_mut().expect("just begun").conn())
    }

    /// Appends every staged stream at the version it was read, atomically, and commits the
    /// vault's writes with them. `None` when nothing was staged.
    pub(crate) async fn commit(mut self) -> Result<Option<AppendOutcome>, AppendError> {
        self.seal_personal().await?;
        // A customer met for the first time: their key commits with the events it sealed, or
        // not at all. Another command that met them first wins, and this one decides again.
        if self.sealer.has_fresh() && !self.staged.is_empty() {
            if self.tx.is_none() {
                self.tx = Some(self.store.begin(self.ctx.tenant_id).await?);
            }
            let tx = self.tx.as_mut().expect("just begun");
            if let Err(subject) = self.sealer.save_fresh(tx.conn()).await? {
                return Err(AppendError::Conflict {
                    stream: crate::events::stream::<domain::conversation::ConversationEvent>(
                        subject,
                    ),
                    expected: expect(0),
                    actual: 0,
                });
            }
        }
        if let (Some(phone), Some(tx)) = (&self.erasing, self.tx.as_mut()) {
            eventstore::personal::erase(tx.conn(), self.ctx.tenant_id, phone).await?;
        }
        let metadata = self.ctx.metadata();
        let appends: Vec<StreamAppend> = self
            .staged
            .into_iter()
            .map(|(stream, events)| StreamAppend {
                expected: expect(self.read.get(&stream).copied().unwrap_or(0)),
                events: new_events(
                    self.ctx.tenant_id,
                    &self.ctx.idempotency_key,
                    &stream,
                    events,
                    &metadata,
                ),
                stream,
            })
            .collect();
        // What an erasure read holds the customer's revealed values: it leaves this
        // process's kept states with the commit (or its failure).
        let read_by_erasure: Vec<StreamRef> = match self.erasing {
            Some(_) => self.read.keys().cloned().collect(),
            None => Vec::new(),
        };
        let (states, tenant_id) = (self.states, self.ctx.tenant_id);
        let mut evolving = std::mem::take(&mut self.evolving);
        let read = std::mem::take(&mut self.read);
        let outcome = match (self.tx, appends.is_empty()) {
            (None, true) => Ok(None),
            // No vault writes: the store's own transaction (one statement for one stream).
            (None, false) => self
                .store
                .append(self.ctx.tenant_id, appends)
                .await
                .map(Some),
            (Some(tx), true) => tx.commit().await.map(|()| None).map_err(Into::into),
            (Some(mut tx), false) => {
                let appended = self.store.append_in(&mut tx, appends).await;
                match appended {
                    Ok(outcome) => tx
                        .commit()
                        .await
                        .map(|()| Some(outcome))
                        .map_err(Into::into),
                    Err(err) => Err(err),
                }
            }
        };
        // What this unit appended to a stream it folded: the cache keeps the state it made,
        // at the version it made, so the next load reads nothing of it (nor opens its keys).
        if let Ok(Some(appended)) = &outcome
            && !appended.replayed
            && read_by_erasure.is_empty()
        {
            for done in &appended.streams {
                let from_read = read.get(&done.stream).copied().unwrap_or(0);
                if let Some(folded) = evolving.remove(&done.stream)
                    && done.first_version == from_read + 1
                {
                    states.put_kept(tenant_id, &done.stream, done.last_version, folded.kept());
                }
            }
        }
        for stream in &read_by_erasure {
            states.forget(tenant_id, stream);
        }
        outcome
    }

    /// Seals the staged events' personal values (looking keys up on the unit's transaction
    /// when it has one; a customer's first key is saved by `commit`, with their first events).
    async fn seal_personal(&mut self) -> Result<(), AppendError> {
        let personal = self.staged.iter().any(|(_, events)| {
            events
                .iter()
                .any(|e| domain::personal::of(e.event_type).is_some())
        });
        if !personal {
            return Ok(());
        }
        let sealed = match self.tx.as_mut() {
            Some(tx) => seal_personal(tx.conn(), &mut self.sealer, &mut self.staged).await,
            None => {
                let mut conn = self.store.pool().acquire().await?;
                seal_personal(&mut conn, &mut self.sealer, &mut self.staged).await
            }
        };
        sealed.map_err(|e| match e.downcast::<sqlx::Error>() {
            Ok(db) => AppendError::from(db),
            Err(other) => AppendError::Invalid(format!("{other:#}")),
        })
    }
}

/// A folded state with the events staged to its stream folded on, its aggregate's type erased.
trait Evolving: Send + Sync {
    /// Folds `events` (a `Vec` of the aggregate's events) on; false when they are not its.
    fn evolve(&mut self, events: &dyn Any) -> bool;
    fn kept(self: Box<Self>) -> Arc<dyn Any + Send + Sync>;
}

struct Folding<D: Decider> {
    state: D::State,
    aggregate: PhantomData<fn() -> D>,
}

impl<D: Decider + 'static> Evolving for Folding<D>
where
    D::State: Send + Sync + 'static,
    D::Event: 'static,
{
    fn evolve(&mut self, events: &dyn Any) -> bool {
        let Some(events) = events.downcast_ref::<Vec<D::Event>>() else {
            return false;
        };
        self.state = events
            .iter()
            .fold(std::mem::take(&mut self.state), D::evolve);
        true
    }

    fn kept(self: Box<Self>) -> Arc<dyn Any + Send + Sync> {
        Arc::new(self.state)
    }
}

impl std::fmt::Debug for Reads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reads")
            .field("events", &self.events)
            .field(
                "kept",
                &self
                    .kept
                    .iter()
                    .map(|(s, k)| (s, k.version))
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}
