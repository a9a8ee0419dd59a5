//! Running projections: catch up from the checkpoint in batches, then follow the log live.
//!
//! One batch is: read up to `batch_size` events of the projection's types after its checkpoint,
//! open the store's unit of work, run the projection's [`BeginBatch`](crate::BeginBatch) hook
//! on all of them (the `begin_batch` flag), dispatch each event to its handler, run its
//! [`EndBatch`](crate::EndBatch) hook (the `end_batch` flag), then commit the unit of work
//! together with the new checkpoint. On a store whose unit of work is a database transaction, a
//! crash anywhere leaves the batch applied entirely or not at all.
//!
//! A failing batch is rolled back, recorded in the projection's [`ProjectionStatus`] and retried
//! with exponential back-off; other projections go on. A poison event is never skipped. (On a
//! store whose unit of work cannot roll back, such as the in-memory store, the events before
//! the failing one stay applied and their checkpoint is committed, so none is applied twice; a
//! handler there must leave the read model unchanged when it fails.)
//!
//! Once a projection reaches the end of the log its checkpoint moves to the head, past events of
//! types it does not consume, so they are not scanned again.

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use tracing::Instrument as _;

use crate::projection::Dispatch;
use crate::projection::error::ProjectionError;
use crate::store::error::BackendError;
use crate::store::{CheckpointStore, EventFilter, Lease};
use crate::stream::LogPosition;

pub mod error;

pub use error::{LeaseLoss, RunnerError};

const MIN_DELAY: Duration = Duration::from_millis(1);

/// How projections are run. Build it with the setters; zero values are raised to the minimum
/// (one event per batch, one millisecond between polls and retries).
#[derive(Clone, Debug)]
pub struct RunnerSettings {
    batch_size: usize,
    poll_interval: Duration,
    retry_backoff: Duration,
    max_retry_backoff: Duration,
    lease_ttl: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(6),
        }
    }
}

impl RunnerSettings {
    /// Events per batch, one unit of work each (at least 1; default 500).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How long a caught-up projection waits for a wake-up before it reads anyway, in case a
    /// notification was lost (default 1 s).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.max(MIN_DELAY);
        self
    }

    /// The first delay after a failed batch, doubled after each further failure up to
    /// `longest` (defaults 100 ms and 30 s).
    #[must_use]
    pub fn retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_backoff = first.max(MIN_DELAY);
        self.max_retry_backoff = longest.max(self.retry_backoff);
        self
    }

    /// How long a worker's lease on a projection lasts without renewal (at least 100 ms;
    /// default 6 s). Workers renew every third of it, and a standby worker tries to take it as
    /// often, so after the owner dies another worker takes over within about 4/3 of this
    /// (8 s by default). A batch must finish within it, or its commit is refused and retried.
    #[must_use]
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl.max(Duration::from_millis(100));
        self
    }

    pub(crate) const fn lease(&self) -> Duration {
        self.lease_ttl
    }

    pub(crate) const fn batch(&self) -> usize {
        self.batch_size
    }

    pub(crate) const fn poll(&self) -> Duration {
        self.poll_interval
    }

    pub(crate) const fn first_backoff(&self) -> Duration {
        self.retry_backoff
    }

    pub(crate) const fn longest_backoff(&self) -> Duration {
        self.max_retry_backoff
    }
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
    pub(crate) events: Vec<crate::RecordedEvent>,
    head: Option<LogPosition>,
    reached_end: bool,
}

impl ReadBatch {
    /// Reads up to `batch_size` events of `types` after `after`.
    pub(crate) async fn read<S: crate::EventStore>(
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

/// A projection with its store's types erased, so the registry can hold several.
///
/// A trait object is needed here (projections are a heterogeneous list), hence `async_trait`.
#[async_trait]
pub(crate) trait ErasedProjection<S>: Send {
    /// The projection's name.
    fn name(&self) -> &'static str;

    /// The names of the events it consumes.
    fn event_types(&self) -> &'static [&'static str];

    /// Whether it runs under a lease kept in the store (one worker at a time). A projection
    /// whose state and checkpoint live in this process runs in every process, unleased.
    fn leased(&self) -> bool {
        true
    }

    /// Whether it can be rebuilt: it has a reset hook, or nothing to clear.
    fn resets(&self) -> bool;

    /// Whether handling events makes it append events (a process manager's commands).
    fn issues_commands(&self) -> bool {
        false
    }

    /// Runs one batch, committing it only while `lease` is held.
    async fn run_batch(
        &mut self,
        store: &S,
        batch_size: usize,
        lease: &Lease,
    ) -> Result<BatchOutcome, RunnerError>;

    /// Clears the read model (its reset hook) and moves the checkpoint back to the start, in
    /// one unit of work committed only while `lease` is held: for a rebuild.
    async fn reset(&mut self, store: &S, lease: &Lease) -> Result<(), RunnerError>;

    /// Forgets the cached checkpoint (after a reset, or when another worker may have moved it).
    fn forget_checkpoint(&mut self);
}

/// Where a projection's unit of work and checkpoint live: in the store ([`InStore`]), or, for
/// a projection whose state lives in the process, beside that state ([`InProcess`]).
pub(crate) trait CheckpointKeeper<S>: Send + 'static {
    /// The unit of work handed to the handlers.
    type Transaction: Send;
    /// Whether dropping an uncommitted unit of work undoes the handlers' writes.
    const ROLLS_BACK: bool;
    /// Whether the projection runs under a lease in the store: one worker at a time, shared
    /// between processes. A projection whose checkpoint lives in the process runs in each.
    const LEASED: bool;

    /// The committed checkpoint.
    fn checkpoint(
        &self,
        store: &S,
        projection: &'static str,
    ) -> impl Future<Output = Result<LogPosition, BackendError>> + Send;

    /// Opens a unit of work.
    fn begin(
        &self,
        store: &S,
        projection: &'static str,
    ) -> impl Future<Output = Result<Self::Transaction, BackendError>> + Send;

    /// Commits `transaction` with checkpoint `at`, while `lease` is held where there is one.
    fn commit(
        &mut self,
        store: &S,
        transaction: Self::Transaction,
        projection: &'static str,
        at: LogPosition,
        lease: &Lease,
    ) -> impl Future<Output = Result<(), BackendError>> + Send;
}

/// The store keeps the checkpoint, committed with the handlers' writes under the lease.
#[derive(Debug, Default)]
pub(crate) struct InStore;

impl<S: CheckpointStore> CheckpointKeeper<S> for InStore {
    type Transaction = S::Transaction;
    const ROLLS_BACK: bool = S::ROLLS_BACK;
    const LEASED: bool = true;

    async fn checkpoint(
        &self,
        store: &S,
        projection: &'static str,
    ) -> Result<LogPosition, BackendError> {
        store.checkpoint(projection).await
    }

    async fn begin(
        &self,
        store: &S,
        projection: &'static str,
    ) -> Result<S::Transaction, BackendError> {
        store.begin(projection).await
    }

    async fn commit(
        &mut self,
        store: &S,
        transaction: S::Transaction,
        projection: &'static str,
        at: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        store
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

impl<S: Send + Sync> CheckpointKeeper<S> for InProcess {
    type Transaction = ();
    const ROLLS_BACK: bool = false;
    const LEASED: bool = false;

    async fn checkpoint(&self, _: &S, _: &'static str) -> Result<LogPosition, BackendError> {
        Ok(self.checkpoint)
    }

    async fn begin(&self, _: &S, _: &'static str) -> Result<(), BackendError> {
        Ok(())
    }

    async fn commit(
        &mut self,
        _: &S,
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
    async fn run_batch_in_span<S>(
        &mut self,
        store: &S,
        batch_size: usize,
        lease: &Lease,
    ) -> Result<BatchOutcome, RunnerError>
    where
        S: crate::EventStore,
        K: CheckpointKeeper<S>,
        P: Dispatch<K::Transaction>,
    {
        let store_error = |source| RunnerError::Store {
            projection: P::NAME,
            source,
        };
        let checkpoint = match self.checkpoint {
            Some(checkpoint) => checkpoint,
            None => self
                .keeper
                .checkpoint(store, P::NAME)
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
                .map_or(checkpoint, crate::RecordedEvent::log_position),
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
        let (written, next) =
            tokio::join!(self.write_batch(store, events, target, lease), prefetch);
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
    async fn write_batch<S>(
        &mut self,
        store: &S,
        events: &[crate::RecordedEvent],
        target: LogPosition,
        lease: &Lease,
    ) -> Result<(), RunnerError>
    where
        K: CheckpointKeeper<S>,
        P: Dispatch<K::Transaction>,
    {
        let store_error = |source| RunnerError::Store {
            projection: P::NAME,
            source,
        };
        let mut transaction = self
            .keeper
            .begin(store, P::NAME)
            .await
            .map_err(store_error)?;
        if let Some(first) = events.first()
            && let Err(error) = self
                .projection
                .run_begin_batch(events, &mut transaction)
                .await
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
            if let Err(error) = self.projection.dispatch(event, &mut transaction).await {
                let applied = events.get(..index).unwrap_or_default();
                self.keep_progress(store, transaction, applied, lease).await;
                return Err(RunnerError::Projection(error));
            }
        }
        if let Some(last) = events.last()
            && let Err(error) = self.projection.run_end_batch(&mut transaction).await
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
            .commit(store, transaction, P::NAME, target, lease)
            .await
            .map_err(store_error)
    }

    /// After a failed event: a unit of work that rolls back drops the whole batch (it is
    /// retried from the old checkpoint). One that cannot roll back has already applied the
    /// events before the failure, so their checkpoint must be committed, or a retry would apply
    /// them twice.
    async fn keep_progress<S>(
        &mut self,
        store: &S,
        transaction: K::Transaction,
        applied: &[crate::RecordedEvent],
        lease: &Lease,
    ) where
        K: CheckpointKeeper<S>,
        P: Dispatch<K::Transaction>,
    {
        if K::ROLLS_BACK {
            drop(transaction);
            return;
        }
        let Some(last) = applied.last().map(crate::RecordedEvent::log_position) else {
            return;
        };
        let mut transaction = transaction;
        if let Err(error) = self.projection.run_end_batch(&mut transaction).await {
            tracing::error!(%error, "the end-of-batch hook failed before a failed event; the batch is retried whole");
            return;
        }
        match self
            .keeper
            .commit(store, transaction, P::NAME, last, lease)
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
impl<S, P, K> ErasedProjection<S> for Erased<P, K>
where
    S: CheckpointStore,
    K: CheckpointKeeper<S>,
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
        P::RESETS
    }

    async fn run_batch(
        &mut self,
        store: &S,
        batch_size: usize,
        lease: &Lease,
    ) -> Result<BatchOutcome, RunnerError> {
        let span = tracing::info_span!("projection_batch", projection = P::NAME);
        self.run_batch_in_span(store, batch_size.max(1), lease)
            .instrument(span)
            .await
    }

    async fn reset(&mut self, store: &S, lease: &Lease) -> Result<(), RunnerError> {
        let store_error = |source| RunnerError::Store {
            projection: P::NAME,
            source,
        };
        self.forget_checkpoint();
        let mut transaction = self
            .keeper
            .begin(store, P::NAME)
            .await
            .map_err(store_error)?;
        if let Err(error) = self.projection.run_reset(&mut transaction).await {
            drop(transaction);
            return Err(RunnerError::Reset {
                projection: P::NAME,
                source: error.into_inner(),
            });
        }
        self.keeper
            .commit(store, transaction, P::NAME, LogPosition::START, lease)
            .await
            .map_err(store_error)
    }

    fn forget_checkpoint(&mut self) {
        self.checkpoint = None;
        self.prefetched = None;
    }
}

/// A projection's progress and health, for status pages and `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: &'static str,
    /// Its committed checkpoint, as far as this process knows.
    pub checkpoint: LogPosition,
    /// The head of the log it last caught up to, if it ever did.
    pub caught_up_to: Option<LogPosition>,
    /// Events applied by this process.
    pub events_applied: u64,
    /// The last error, while the projection is failing.
    pub last_error: Option<String>,
    /// Consecutive failed batches.
    pub consecutive_failures: u32,
    /// Whether this process holds the projection's lease (runs it).
    pub lease_held: bool,
}

/// How a rebuild takes its projection's lease from a worker that holds it (see
/// [`App::rebuild_with`](crate::App::rebuild_with)).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RebuildOptions {
    /// Take the lease at once, whoever holds it, instead of asking for it and waiting.
    pub take_over: bool,
    /// How long to wait for the lease to be handed over before giving up (default 60 s).
    pub wait_at_most: Duration,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        Self {
            take_over: false,
            wait_at_most: Duration::from_secs(60),
        }
    }
}

impl RebuildOptions {
    /// Takes the lease at once, with a new epoch, instead of waiting for its holder to hand it
    /// over: the holder's batch in flight fails its fence and commits nothing. For a holder
    /// that will not hand over (a worker of an older release) or when waiting is not wanted.
    #[must_use]
    pub const fn take_over(mut self) -> Self {
        self.take_over = true;
        self
    }

    /// Waits at most `wait` for the lease's holder to hand it over.
    #[must_use]
    pub const fn wait_at_most(mut self, wait: Duration) -> Self {
        self.wait_at_most = wait;
        self
    }
}

/// What a rebuild is doing, as [`App::rebuild_with`](crate::App::rebuild_with) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RebuildStep {
    /// Waiting for `holder` to hand the lease over (a live worker does at its next renewal; a
    /// dead one's lease runs out). Reported again while the wait goes on.
    Waiting {
        /// Who holds the lease, and how long it has left.
        holder: crate::store::LeaseHolder,
    },
    /// The lease was taken over from `from`, which commits nothing more under it.
    TookOver {
        /// The worker that held it.
        from: String,
    },
    /// The rebuild holds the lease, with this fencing epoch.
    LeaseTaken {
        /// The epoch its batches commit under.
        epoch: u64,
    },
    /// The read model was cleared and the checkpoint moved back to the start.
    Cleared,
    /// Events applied so far.
    Progress(RebuildProgress),
}

/// How far a rebuild has come, reported after each batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RebuildProgress {
    /// Events of the projection's types applied so far.
    pub done: u64,
    /// Events of its types in the log when the rebuild started (more may arrive meanwhile, so
    /// `done` can end above it).
    pub total: u64,
}

/// A projection's state as the store and this process see it: for status pages and `stats`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ProjectionReport {
    /// What this process knows: errors, failures, events applied, whether it holds the lease.
    pub status: ProjectionStatus,
    /// The committed checkpoint, read from the store.
    pub checkpoint: LogPosition,
    /// The head of the log.
    pub head: Option<LogPosition>,
    /// Events of the projection's types after its checkpoint.
    pub events_behind: u64,
    /// How long the oldest of those events has been waiting (zero when none is).
    pub seconds_behind: f64,
    /// The worker holding (or last holding) the projection's lease, and whether that lease is
    /// still unexpired; `None` on stores without leases or before any worker ran.
    pub owner: Option<(String, bool)>,
}
