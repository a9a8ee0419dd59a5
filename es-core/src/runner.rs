//! Running projections: catch up from the checkpoint in batches, then follow the log live.
//!
//! One batch is: read up to `batch_size` events of the projection's types after its checkpoint,
//! open the store's unit of work, dispatch each event to its handler, then commit the unit of
//! work together with the new checkpoint. On a store whose unit of work is a database
//! transaction, a crash anywhere leaves the batch applied entirely or not at all.
//!
//! A failing batch is rolled back, recorded in the projection's [`ProjectionStatus`] and retried
//! with exponential back-off; other projections go on. A poison event is never skipped.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::RunnerError;
use crate::projection::Dispatch;
use crate::store::{CheckpointStore, EventFilter};
use crate::stream::LogPosition;

/// How projections are run.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RunnerSettings {
    /// Events per batch (one unit of work each).
    pub batch_size: usize,
    /// How long a caught-up projection waits for a wake-up before it reads anyway, in case a
    /// notification was lost.
    pub poll_interval: Duration,
    /// The first delay after a failed batch; doubled after each further failure.
    pub retry_backoff: Duration,
    /// The longest delay between retries.
    pub max_retry_backoff: Duration,
}

impl Default for RunnerSettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            max_retry_backoff: Duration::from_secs(30),
        }
    }
}

impl RunnerSettings {
    /// Sets the batch size (at least 1).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// Sets the fallback poll interval.
    #[must_use]
    pub const fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the first and the longest retry delay.
    #[must_use]
    pub const fn retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_backoff = first;
        self.max_retry_backoff = longest;
        self
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

/// A projection with its store's types erased, so the registry can hold several.
///
/// A trait object is needed here (projections are a heterogeneous list), hence `async_trait`.
#[async_trait]
pub(crate) trait ErasedProjection<S>: Send {
    /// The projection's name.
    fn name(&self) -> &'static str;

    /// Runs one batch.
    async fn run_batch(
        &mut self,
        store: &S,
        batch_size: usize,
    ) -> Result<BatchOutcome, RunnerError>;

    /// Forgets the cached checkpoint (after a reset, or when another worker may have moved it).
    fn forget_checkpoint(&mut self);
}

/// Wraps a projection with its cached checkpoint.
pub(crate) struct Erased<P> {
    projection: P,
    checkpoint: Option<LogPosition>,
}

impl<P> Erased<P> {
    pub(crate) const fn new(projection: P) -> Self {
        Self {
            projection,
            checkpoint: None,
        }
    }
}

#[async_trait]
impl<S, P> ErasedProjection<S> for Erased<P>
where
    S: CheckpointStore,
    P: Dispatch<S::Transaction>,
{
    fn name(&self) -> &'static str {
        P::NAME
    }

    async fn run_batch(
        &mut self,
        store: &S,
        batch_size: usize,
    ) -> Result<BatchOutcome, RunnerError> {
        let checkpoint = match self.checkpoint {
            Some(checkpoint) => checkpoint,
            None => store
                .checkpoint(P::NAME)
                .await
                .map_err(RunnerError::Store)?,
        };
        self.checkpoint = Some(checkpoint);
        let head = store.head().await.map_err(RunnerError::Read)?;
        let events = store
            .read_all(checkpoint, batch_size, EventFilter::Types(P::EVENT_TYPES))
            .await
            .map_err(RunnerError::Read)?;
        let caught_up_to = (events.len() < batch_size).then(|| head.unwrap_or(LogPosition::START));
        let Some(last) = events.last().map(crate::RecordedEvent::log_position) else {
            return Ok(BatchOutcome {
                applied: 0,
                checkpoint,
                caught_up_to,
            });
        };
        let span = tracing::info_span!(
            "projection_batch",
            projection = P::NAME,
            from = %checkpoint,
            to = %last,
            events = events.len(),
        );
        let _entered = span.enter();
        let mut transaction = store.begin(P::NAME).await.map_err(RunnerError::Store)?;
        for event in &events {
            // On error the transaction is dropped, which rolls it back.
            self.projection
                .dispatch(event, &mut transaction)
                .await
                .map_err(RunnerError::Projection)?;
        }
        store
            .commit(transaction, P::NAME, last)
            .await
            .map_err(RunnerError::Store)?;
        self.checkpoint = Some(last);
        Ok(BatchOutcome {
            applied: events.len(),
            checkpoint: last,
            caught_up_to,
        })
    }

    fn forget_checkpoint(&mut self) {
        self.checkpoint = None;
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
}
