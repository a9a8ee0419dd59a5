//! One batch of a projection or process manager: read after the checkpoint, dispatch in one
//! unit of work, commit with the new checkpoint under the lease.

use std::future::Future;

use async_trait::async_trait;
use tracing::Instrument as _;

use crate::event::RecordedEvent;
use crate::projection::Dispatch;
use crate::projection::error::ProjectionError;
use crate::runner::error::RunnerError;
use crate::store::checkpoint::CheckpointStore;
use crate::store::error::BackendError;
use crate::store::event_store::EventStore;
use crate::store::lease::Lease;
use crate::store::log::EventFilter;
use crate::stream::LogPosition;

/// Where a worker runs: the application, handed to each batch (so a process manager's
/// handlers can send commands through it) instead of being kept by the projection.
pub(crate) trait RunContext: Clone + Send + Sync + 'static {
    /// The store the batches read and commit to.
    type Store: CheckpointStore;

    /// The store.
    fn store(&self) -> &Self::Store;
}

/// A step of a batch, with the event it is about.
#[derive(Clone, Copy, Debug)]
pub(crate) enum BatchStep<'e> {
    /// The `begin_batch` hook, on the batch that starts at this event.
    Begin(&'e RecordedEvent),
    /// The handler of this event.
    Event(&'e RecordedEvent),
    /// The `end_batch` hook, on the batch that ends at this event.
    End(&'e RecordedEvent),
}

/// What one batch did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchOutcome {
    /// Events applied and committed.
    pub(crate) applied: usize,
    /// The checkpoint after the batch.
    pub(crate) checkpoint: LogPosition,
    /// Set when the batch reached the end of the log: the head as read before the batch.
    pub(crate) caught_up_to: Option<LogPosition>,
}

/// One batch of a projection's events after its checkpoint, with the head of the log read just
/// before them.
pub(crate) struct ReadBatch {
    /// The events, in log order.
    pub(crate) events: Vec<RecordedEvent>,
    head: Option<LogPosition>,
    reached_end: bool,
}

impl ReadBatch {
    /// Reads up to `batch_size` events of `types` after `after`.
    pub(crate) async fn read<S: EventStore>(
        store: &S,
        projection: &'static str,
        types: &[&str],
        after: LogPosition,
        batch_size: usize,
    ) -> Result<Self, RunnerError> {
        let batch_size = batch_size.max(1);
        let (head, events) = store
            .read_with_head(after, batch_size, EventFilter::Types(types))
            .await
            .map_err(|source| RunnerError::Read { projection, source })?;
        Ok(Self {
            reached_end: events.len() < batch_size,
            events,
            head,
        })
    }

    /// The checkpoint once the events up to `done` are applied. When the whole batch was
    /// applied (`completed`) and it reached the end of the log, the checkpoint moves on to the
    /// head, past events of other types, so later batches do not scan them again.
    pub(crate) fn target(&self, done: LogPosition, completed: bool) -> LogPosition {
        match self.head {
            Some(head) if completed && self.reached_end => head.max(done),
            _ => done,
        }
    }

    /// The head the batch caught up to, when it reached the end of the log.
    pub(crate) fn caught_up_to(&self) -> Option<LogPosition> {
        self.reached_end
            .then(|| self.head.unwrap_or(LogPosition::START))
    }
}

/// A projection or process manager with its types erased, so the app can hold several; its
/// one implementation is [`Erased`], over the projection and where its checkpoint is kept.
///
/// A trait object is needed here (projections are a heterogeneous list), hence `async_trait`.
#[async_trait]
pub(crate) trait ErasedProjection<Cx>: Send {
    /// The projection's name.
    fn name(&self) -> &'static str;

    /// The names of the events it consumes.
    fn event_types(&self) -> &'static [&'static str];

    /// Whether it runs under a lease kept in the store (one worker at a time). A projection
    /// whose state and checkpoint live in this process runs in every process, unleased.
    fn leased(&self) -> bool;

    /// Whether it can be rebuilt: it has a reset hook, or nothing to clear.
    fn resets(&self) -> bool;

    /// Whether handling events makes it append events (a process manager's commands).
    fn issues_commands(&self) -> bool;

    /// Runs one batch, committing it only while `lease` is held.
    async fn run_batch(
        &mut self,
        cx: &Cx,
        batch_size: usize,
        lease: &Lease,
    ) -> Result<BatchOutcome, RunnerError>;

    /// Clears the read model (its reset hook) and moves the checkpoint back to the start, in
    /// one unit of work committed only while `lease` is held: for a rebuild.
    async fn reset(&mut self, cx: &Cx, lease: &Lease) -> Result<(), RunnerError>;

    /// Forgets the cached checkpoint (after a reset, or when another worker may have moved it).
    fn forget_checkpoint(&mut self);
}

/// Where a projection's unit of work and checkpoint live: in the store ([`InStore`]), or, for
/// a projection whose state lives in the process, beside that state ([`InProcess`]).
pub(crate) trait CheckpointKeeper<Cx>: Send + 'static {
    /// The unit of work handed to the handlers.
    type Transaction: Send;
    /// Whether dropping an uncommitted unit of work undoes the handlers' writes.
    const ROLLS_BACK: bool;
    /// Whether the projection runs under a lease in the store: one worker at a time, shared
    /// between processes. A projection whose checkpoint lives in the process runs in each.
    const LEASED: bool;
    /// Whether a rebuild may replay it without a reset hook (a process manager: its commands
    /// answer from their records, so nothing runs twice).
    const REPLAYS: bool = false;
    /// Whether handling events makes it append events (a process manager's commands).
    const ISSUES_COMMANDS: bool = false;

    /// The committed checkpoint.
    fn checkpoint(
        &self,
        cx: &Cx,
        projection: &'static str,
    ) -> impl Future<Output = Result<LogPosition, BackendError>> + Send;

    /// Opens a unit of work.
    fn begin(
        &self,
        cx: &Cx,
        projection: &'static str,
    ) -> impl Future<Output = Result<Self::Transaction, BackendError>> + Send;

    /// Commits `transaction` with checkpoint `at`, while `lease` is held where there is one.
    fn commit(
        &mut self,
        cx: &Cx,
        transaction: Self::Transaction,
        projection: &'static str,
        at: LogPosition,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// Called before each step of a batch runs in `transaction`: a process manager's commands
    /// take their ids from the event of the step.
    fn before(transaction: &mut Self::Transaction, step: BatchStep<'_>) {
        let _ = (transaction, step);
    }
}

/// The store keeps the checkpoint, committed with the handlers' writes under the lease.
#[derive(Debug, Default)]
pub(crate) struct InStore;

impl<Cx: RunContext> CheckpointKeeper<Cx> for InStore {
    type Transaction = <Cx::Store as CheckpointStore>::Transaction;
    const ROLLS_BACK: bool = <Cx::Store as CheckpointStore>::ROLLS_BACK;
    const LEASED: bool = true;

    async fn checkpoint(
        &self,
        cx: &Cx,
        projection: &'static str,
    ) -> Result<LogPosition, BackendError> {
        cx.store().checkpoint(projection).await
    }

    async fn begin(
        &self,
        cx: &Cx,
        projection: &'static str,
    ) -> Result<Self::Transaction, BackendError> {
        cx.store().begin(projection).await
    }

    async fn commit(
        &mut self,
        cx: &Cx,
        transaction: Self::Transaction,
        projection: &'static str,
        at: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        cx.store()
            .commit_fenced(transaction, projection, at, lease)
            .await
    }
}

/// The checkpoint lives in this process beside the projection's state, and goes with it: each
/// process run starts from the start of the log. The unit of work is `()`.
#[derive(Debug, Default)]
pub(crate) struct InProcess {
    checkpoint: LogPosition,
}

impl<Cx: Send + Sync> CheckpointKeeper<Cx> for InProcess {
    type Transaction = ();
    const ROLLS_BACK: bool = false;
    const LEASED: bool = false;

    async fn checkpoint(&self, _: &Cx, _: &'static str) -> Result<LogPosition, BackendError> {
        Ok(self.checkpoint)
    }

    async fn begin(&self, _: &Cx, _: &'static str) -> Result<(), BackendError> {
        Ok(())
    }

    async fn commit(
        &mut self,
        _: &Cx,
        (): (),
        _: &'static str,
        at: LogPosition,
        _: &Lease,
    ) -> Result<(), BackendError> {
        self.checkpoint = at;
        Ok(())
    }
}

/// Wraps a projection with its cached checkpoint and where the checkpoint is kept.
pub(crate) struct Erased<P, K = InStore> {
    projection: P,
    keeper: K,
    checkpoint: Option<LogPosition>,
    /// The next batch, read while the previous one was written, with the checkpoint it follows.
    prefetched: Option<(LogPosition, ReadBatch)>,
}

impl<P, K: Default> Erased<P, K> {
    pub(crate) fn new(projection: P) -> Self {
        Self {
            projection,
            keeper: K::default(),
            checkpoint: None,
            prefetched: None,
        }
    }
}

impl<P, K> Erased<P, K> {
    async fn run_batch_in_span<Cx>(
        &mut self,
        cx: &Cx,
        batch_size: usize,
        lease: &Lease,
    ) -> Result<BatchOutcome, RunnerError>
    where
        Cx: RunContext,
        K: CheckpointKeeper<Cx>,
        P: Dispatch<K::Transaction>,
    {
        let store = cx.store();
        let store_error = |source| RunnerError::Store {
            projection: P::NAME,
            source,
        };
        let checkpoint = match self.checkpoint {
            Some(checkpoint) => checkpoint,
            None => self
                .keeper
                .checkpoint(cx, P::NAME)
                .await
                .map_err(store_error)?,
        };
        self.checkpoint = Some(checkpoint);
        let batch = match self.prefetched.take() {
            Some((after, batch)) if after == checkpoint => batch,
            _ => ReadBatch::read(store, P::NAME, P::EVENT_TYPES, checkpoint, batch_size).await?,
        };
        let events = &batch.events;
        let target = batch.target(
            events
                .last()
                .map_or(checkpoint, RecordedEvent::log_position),
            true,
        );
        let caught_up_to = batch.caught_up_to();
        if target <= checkpoint {
            return Ok(BatchOutcome {
                applied: 0,
                checkpoint,
                caught_up_to,
            });
        }
        tracing::debug!(from = %checkpoint, to = %target, events = events.len(), "projecting");
        // A full batch is not the end of the log: the next one is read while this one is
        // written and committed, so catching up keeps the database busy on both sides. It is
        // only a read; if this batch fails, it is dropped with the cached checkpoint.
        let read_ahead = (!batch.reached_end).then(|| {
            let store = store.clone();
            tokio::spawn(async move {
                ReadBatch::read(&store, P::NAME, P::EVENT_TYPES, target, batch_size).await
            })
        });
        let prefetch = async move { read_ahead?.await.ok()?.ok() };
        let (written, next) = tokio::join!(self.write_batch(cx, events, target, lease), prefetch);
        written?;
        self.checkpoint = Some(target);
        self.prefetched = next.map(|next| (target, next));
        Ok(BatchOutcome {
            applied: events.len(),
            checkpoint: target,
            caught_up_to,
        })
    }

    /// Applies `events` in one unit of work and commits it with checkpoint `target`.
    async fn write_batch<Cx>(
        &mut self,
        cx: &Cx,
        events: &[RecordedEvent],
        target: LogPosition,
        lease: &Lease,
    ) -> Result<(), RunnerError>
    where
        K: CheckpointKeeper<Cx>,
        P: Dispatch<K::Transaction>,
    {
        let store_error = |source| RunnerError::Store {
            projection: P::NAME,
            source,
        };
        let mut transaction = self.keeper.begin(cx, P::NAME).await.map_err(store_error)?;
        if let Some(first) = events.first()
            && let Err(error) = {
                K::before(&mut transaction, BatchStep::Begin(first));
                self.projection
                    .run_begin_batch(events, &mut transaction)
                    .await
            }
        {
            // The batch is retried whole: nothing of it is dispatched or committed.
            drop(transaction);
            return Err(RunnerError::Projection(ProjectionError::begin_batch(
                P::NAME,
                first,
                error,
            )));
        }
        for (index, event) in events.iter().enumerate() {
            K::before(&mut transaction, BatchStep::Event(event));
            if let Err(error) = self.projection.dispatch(event, &mut transaction).await {
                let applied = events.get(..index).unwrap_or_default();
                self.keep_progress(cx, transaction, applied, lease).await;
                return Err(RunnerError::Projection(error));
            }
        }
        if let Some(last) = events.last()
            && let Err(error) = {
                K::before(&mut transaction, BatchStep::End(last));
                self.projection.run_end_batch(&mut transaction).await
            }
        {
            // The batch is retried whole: nothing of it is committed.
            drop(transaction);
            return Err(RunnerError::Projection(ProjectionError::end_batch(
                P::NAME,
                last,
                error,
            )));
        }
        self.keeper
            .commit(cx, transaction, P::NAME, target, lease)
            .await
            .map_err(store_error)
    }

    /// After a failed event: a unit of work that rolls back drops the whole batch (it is
    /// retried from the old checkpoint). One that cannot roll back has already applied the
    /// events before the failure, so their checkpoint must be committed, or a retry would apply
    /// them twice.
    async fn keep_progress<Cx>(
        &mut self,
        cx: &Cx,
        transaction: K::Transaction,
        applied: &[RecordedEvent],
        lease: &Lease,
    ) where
        K: CheckpointKeeper<Cx>,
        P: Dispatch<K::Transaction>,
    {
        if K::ROLLS_BACK {
            drop(transaction);
            return;
        }
        let Some(last_event) = applied.last() else {
            return;
        };
        let last = last_event.log_position();
        let mut transaction = transaction;
        K::before(&mut transaction, BatchStep::End(last_event));
        if let Err(error) = self.projection.run_end_batch(&mut transaction).await {
            tracing::error!(%error, "the end-of-batch hook failed before a failed event; the batch is retried whole");
            return;
        }
        match self
            .keeper
            .commit(cx, transaction, P::NAME, last, lease)
            .await
        {
            Ok(()) => self.checkpoint = Some(last),
            Err(error) => {
                tracing::error!(%error, "committing the progress before a failed event failed");
            }
        }
    }
}

#[async_trait]
impl<Cx, P, K> ErasedProjection<Cx> for Erased<P, K>
where
    Cx: RunContext,
    K: CheckpointKeeper<Cx>,
    P: Dispatch<K::Transaction>,
{
    fn name(&self) -> &'static str {
        P::NAME
    }

    fn event_types(&self) -> &'static [&'static str] {
        P::EVENT_TYPES
    }

    fn leased(&self) -> bool {
        K::LEASED
    }

    fn resets(&self) -> bool {
        P::RESETS || K::REPLAYS
    }

    fn issues_commands(&self) -> bool {
        K::ISSUES_COMMANDS
    }

    async fn run_batch(
        &mut self,
        cx: &Cx,
        batch_size: usize,
        lease: &Lease,
    ) -> Result<BatchOutcome, RunnerError> {
        let span = tracing::info_span!("projection_batch", projection = P::NAME);
        self.run_batch_in_span(cx, batch_size.max(1), lease)
            .instrument(span)
            .await
    }

    async fn reset(&mut self, cx: &Cx, lease: &Lease) -> Result<(), RunnerError> {
        let store_error = |source| RunnerError::Store {
            projection: P::NAME,
            source,
        };
        self.forget_checkpoint();
        let mut transaction = self.keeper.begin(cx, P::NAME).await.map_err(store_error)?;
        if let Err(error) = self.projection.run_reset(&mut transaction).await {
            drop(transaction);
            return Err(RunnerError::Reset {
                projection: P::NAME,
                source: error.into_inner(),
            });
        }
        self.keeper
            .commit(cx, transaction, P::NAME, LogPosition::START, lease)
            .await
            .map_err(store_error)
    }

    fn forget_checkpoint(&mut self) {
        self.checkpoint = None;
        self.prefetched = None;
    }
}
