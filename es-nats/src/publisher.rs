//! The publisher: follows the event log from its checkpoint and publishes every event to
//! JetStream, at least once.
//!
//! # One batch
//!
//! 1. Read up to `batch_size` events after the checkpoint (the checkpoint is kept by the store,
//!    like a projection's, under the publisher's [checkpoint name](PublisherBuilder::checkpoint)).
//! 2. Send them, each with its event id as `Nats-Msg-Id`, without waiting for one
//!    acknowledgement before the next send (up to [`max_in_flight`](PublisherBuilder::max_in_flight)
//!    unacknowledged); JetStream's acknowledgements are awaited in log order.
//! 3. Commit the checkpoint at the last event of the acknowledged prefix: an event whose
//!    acknowledgement has not arrived is never passed.
//!
//! A crash (or a failed checkpoint commit) after step 2 makes the next run publish those events
//! again; JetStream drops the repeats by message id as long as they fall inside the stream's
//! duplicate window (see [`crate::stream`]). A repeat is counted in
//! [`Published::duplicates`].
//!
//! # Failures and NATS restarts
//!
//! [`run_until`](JetStreamPublisher::run_until) never gives up: a failed read, send or
//! acknowledgement (NATS down, restarting, JetStream not ready yet, a time-out) is logged with
//! `tracing` and retried after a back-off that doubles from 100 ms up to 5 s by default. The
//! `async-nats` client reconnects by itself, so once the server is back the retry goes through.
//! Events behind a failing one wait for it: none is skipped.
//!
//! Order: JetStream receives events in log order, except after a failure, when an event whose
//! publication failed may land after later events of the same batch that went through. Consumers
//! that need the log order sort by [`Es-Position`](crate::message::header::POSITION) or by
//! stream version.
//!
//! Run one publisher per checkpoint name: two would both publish every event (JetStream would
//! still de-duplicate them within the window, but the work is wasted).

use std::collections::VecDeque;
use std::future::Future;
use std::time::Duration;

use async_nats::jetstream::context::PublishAckFuture;
use async_nats::jetstream::{self, stream::Info};
use es_core::subscription::Subscription;
use es_core::{CheckpointStore, EventFilter, LogPosition, RecordedEvent};
use tracing::Instrument as _;

use crate::error::{ConfigError, PublisherError, StreamSetupError};
use crate::{message, subject};

/// The checkpoint name used when none is configured.
pub const DEFAULT_CHECKPOINT: &str = "nats_publisher";

const DEFAULT_BATCH: usize = 500;
const DEFAULT_MAX_IN_FLIGHT: usize = 256;
const DEFAULT_FIRST_BACKOFF: Duration = Duration::from_millis(100);
const DEFAULT_LONGEST_BACKOFF: Duration = Duration::from_secs(5);
const DEFAULT_POLL: Duration = Duration::from_secs(1);
const MIN_DELAY: Duration = Duration::from_millis(1);

/// Publishes the event log of store `S` to a JetStream stream, at least once and de-duplicated
/// by event id; see the [module docs](self).
///
/// Built with [`JetStreamPublisher::builder`]. Cheap to clone (the store and the NATS context
/// are handles).
#[derive(Clone)]
pub struct JetStreamPublisher<S> {
    store: S,
    jetstream: jetstream::Context,
    settings: Settings,
}

/// Everything but the handles, shared by the builder and the publisher.
#[derive(Clone, Debug)]
struct Settings {
    stream: String,
    subject_prefix: String,
    checkpoint: String,
    batch_size: usize,
    max_in_flight: usize,
    first_backoff: Duration,
    longest_backoff: Duration,
    poll_interval: Duration,
}

impl<S> std::fmt::Debug for JetStreamPublisher<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamPublisher")
            .field("stream", &self.settings.stream)
            .field("subject_prefix", &self.settings.subject_prefix)
            .field("checkpoint", &self.settings.checkpoint)
            .field("batch_size", &self.settings.batch_size)
            .finish_non_exhaustive()
    }
}

/// Configures a [`JetStreamPublisher`]; every setting has a default.
#[must_use = "a builder does nothing until `build` is called"]
pub struct PublisherBuilder<S> {
    store: S,
    jetstream: jetstream::Context,
    settings: Settings,
}

impl<S> std::fmt::Debug for PublisherBuilder<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublisherBuilder")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl<S: CheckpointStore> PublisherBuilder<S> {
    /// The subject prefix: events go to `{prefix}.{aggregate}.{event type}`
    /// (default [`DEFAULT_PREFIX`](subject::DEFAULT_PREFIX), `es.events`). Dot-separated tokens,
    /// no wildcards or whitespace; checked by [`build`](Self::build).
    pub fn subject_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.subject_prefix = prefix.into();
        self
    }

    /// The name the publisher's checkpoint is stored under (default
    /// [`DEFAULT_CHECKPOINT`], `nats_publisher`). It shares the store's table of projection
    /// checkpoints, so it must differ from every projection's name; give each publisher its own.
    pub fn checkpoint(mut self, name: impl Into<String>) -> Self {
        self.settings.checkpoint = name.into();
        self
    }

    /// Events read and checkpointed together (at least 1; default 500).
    pub fn batch_size(mut self, events: usize) -> Self {
        self.settings.batch_size = events.max(1);
        self
    }

    /// How many messages may be sent and not yet acknowledged (at least 1; default 256).
    /// Keep it below the JetStream context's own limit
    /// ([`max_ack_inflight`](async_nats::jetstream::ContextBuilder::max_ack_inflight), 5 000 by
    /// default): past that limit a send waits for an acknowledgement the publisher only awaits
    /// later.
    pub fn max_in_flight(mut self, messages: usize) -> Self {
        self.settings.max_in_flight = messages.max(1);
        self
    }

    /// The first delay after a failure, doubled after each further failure up to `longest`
    /// (defaults 100 ms and 5 s; at least 1 ms).
    pub fn retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.settings.first_backoff = first.max(MIN_DELAY);
        self.settings.longest_backoff = longest.max(self.settings.first_backoff);
        self
    }

    /// How long a caught-up [`run_until`](JetStreamPublisher::run_until) waits for the store's
    /// wake-up before it reads anyway, in case a notification was lost (default 1 s).
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.settings.poll_interval = interval.max(MIN_DELAY);
        self
    }

    /// The publisher.
    ///
    /// # Errors
    /// [`ConfigError`] for an invalid subject prefix or stream name, or an empty checkpoint
    /// name.
    pub fn build(self) -> Result<JetStreamPublisher<S>, ConfigError> {
        subject::check_prefix(&self.settings.subject_prefix)?;
        let stream = &self.settings.stream;
        if stream.is_empty()
            || stream.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
            })
        {
            return Err(ConfigError::InvalidStreamName {
                name: stream.clone(),
            });
        }
        if self.settings.checkpoint.is_empty() {
            return Err(ConfigError::EmptyCheckpointName);
        }
        Ok(JetStreamPublisher {
            store: self.store,
            jetstream: self.jetstream,
            settings: self.settings,
        })
    }
}

/// What a call to [`publish_available`](JetStreamPublisher::publish_available) did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Events JetStream acknowledged (duplicates included).
    pub events: usize,
    /// Of those, the ones JetStream reported as duplicates of a message already on the stream:
    /// events published before a crash or a lost checkpoint commit.
    pub duplicates: usize,
    /// The checkpoint after the call.
    pub checkpoint: LogPosition,
}

/// An event sent, with its subject, and the acknowledgement to come.
type InFlight<'a> = (&'a RecordedEvent, String, PublishAckFuture);

/// What publishing one batch achieved.
struct BatchOutcome {
    /// How many events at the front of the batch JetStream acknowledged.
    acked: usize,
    /// How many of those were duplicates.
    duplicates: usize,
    /// Why the rest was not acknowledged, when `acked` falls short of the batch.
    failure: Option<PublisherError>,
}

impl<S: CheckpointStore> JetStreamPublisher<S> {
    /// A builder for a publisher of `store`'s log to the JetStream stream named `stream`, over
    /// the `jetstream` context (whose time-out, 5 s by default, bounds each send and
    /// acknowledgement).
    pub fn builder(
        store: S,
        jetstream: jetstream::Context,
        stream: impl Into<String>,
    ) -> PublisherBuilder<S> {
        PublisherBuilder {
            store,
            jetstream,
            settings: Settings {
                stream: stream.into(),
                subject_prefix: subject::DEFAULT_PREFIX.to_owned(),
                checkpoint: DEFAULT_CHECKPOINT.to_owned(),
                batch_size: DEFAULT_BATCH,
                max_in_flight: DEFAULT_MAX_IN_FLIGHT,
                first_backoff: DEFAULT_FIRST_BACKOFF,
                longest_backoff: DEFAULT_LONGEST_BACKOFF,
                poll_interval: DEFAULT_POLL,
            },
        }
    }

    /// The JetStream stream published to.
    #[must_use]
    pub fn stream(&self) -> &str {
        &self.settings.stream
    }

    /// The subject prefix.
    #[must_use]
    pub fn subject_prefix(&self) -> &str {
        &self.settings.subject_prefix
    }

    /// The name the checkpoint is stored under.
    #[must_use]
    pub fn checkpoint_name(&self) -> &str {
        &self.settings.checkpoint
    }

    /// The subject `event` is published on; see [`crate::subject`].
    #[must_use]
    pub fn subject(&self, event: &RecordedEvent) -> String {
        subject::for_event(&self.settings.subject_prefix, event)
    }

    /// The store's checkpoint for this publisher: the last event it knows JetStream has.
    ///
    /// # Errors
    /// [`PublisherError::Checkpoint`] when the store fails.
    pub async fn checkpoint(&self) -> Result<LogPosition, PublisherError> {
        self.store
            .checkpoint(&self.settings.checkpoint)
            .await
            .map_err(|source| PublisherError::Checkpoint {
                publisher: self.settings.checkpoint.clone(),
                source,
            })
    }

    /// Creates the publisher's stream, capturing `{prefix}.>`, or updates it, with the given
    /// duplicate window; see [`crate::stream::ensure_stream`].
    ///
    /// # Errors
    /// As [`ensure_stream`](crate::stream::ensure_stream).
    pub async fn ensure_stream(
        &self,
        duplicate_window: Duration,
    ) -> Result<Info, StreamSetupError> {
        crate::stream::ensure_stream(
            &self.jetstream,
            &self.settings.stream,
            [format!("{}.>", self.settings.subject_prefix)],
            duplicate_window,
        )
        .await
    }

    /// Publishes every event the store shows now after the checkpoint, batch by batch, each
    /// batch checkpointed once acknowledged; returns what it did. (On PostgreSQL an event
    /// committed while an older transaction is still open shows a moment later, with that
    /// transaction's end.) Makes one attempt: retrying is the
    /// caller's choice (or use [`run_until`](Self::run_until)).
    ///
    /// # Errors
    /// The first failure. The checkpoint stands after the last acknowledged event, so calling
    /// again continues without a gap.
    pub async fn publish_available(&self) -> Result<Published, PublisherError> {
        let mut after = self.checkpoint().await?;
        let mut published = Published {
            events: 0,
            duplicates: 0,
            checkpoint: after,
        };
        loop {
            let batch = self
                .store
                .read_all(after, self.settings.batch_size, EventFilter::All)
                .await
                .map_err(|source| PublisherError::Read {
                    publisher: self.settings.checkpoint.clone(),
                    after,
                    source,
                })?;
            if batch.is_empty() {
                return Ok(published);
            }
            let outcome = self.publish_batch(&batch).await;
            published.events += outcome.acked;
            published.duplicates += outcome.duplicates;
            if let Some(last) = last_acked(&batch, outcome.acked) {
                let committed = self.commit(last).await;
                if let Some(failure) = outcome.failure {
                    if let Err(error) = committed {
                        self.log_commit_failure(&error);
                    }
                    return Err(failure);
                }
                committed?;
                published.checkpoint = last;
                after = last;
            } else if let Some(failure) = outcome.failure {
                return Err(failure);
            }
        }
    }

    /// Publishes the log from the checkpoint on, then every new event as it is committed,
    /// until `shutdown` resolves; failures are retried forever with back-off (see the
    /// [module docs](self)).
    ///
    /// Stops as soon as `shutdown` resolves, even in the middle of a batch: events sent but not
    /// yet checkpointed are sent again on the next start, and de-duplicated by JetStream.
    pub async fn run_until(&self, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            biased;
            () = shutdown => {}
            () = self.run() => {}
        }
    }

    /// Runs the publisher on a new tokio task until [`PublisherTask::shutdown`].
    pub fn spawn(self) -> PublisherTask
    where
        S: 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            self.run_until(async {
                // A dropped sender stops the publisher too.
                let _ = stopped.await;
            })
            .await;
        });
        PublisherTask { stop, task }
    }

    /// Never returns: reads, publishes and checkpoints, retrying every failure.
    async fn run(&self) {
        let mut backoff = Backoff::new(&self.settings);
        let start = loop {
            match self.checkpoint().await {
                Ok(position) => break position,
                Err(error) => self.retry_after(&error, &mut backoff).await,
            }
        };
        let mut subscription = Subscription::new(self.store.clone(), start)
            .batch_size(self.settings.batch_size)
            .fallback_poll(self.settings.poll_interval);
        loop {
            let batch = match self.next_batch(&mut subscription).await {
                Ok(batch) => batch,
                Err(error) => {
                    self.retry_after(&error, &mut backoff).await;
                    continue;
                }
            };
            backoff.reset();
            let mut pending: &[RecordedEvent] = &batch;
            while !pending.is_empty() {
                let outcome = self.publish_batch(pending).await;
                if let Some(last) = last_acked(pending, outcome.acked)
                    && let Err(error) = self.commit(last).await
                {
                    self.log_commit_failure(&error);
                }
                pending = pending.get(outcome.acked..).unwrap_or_default();
                match outcome.failure {
                    Some(error) => self.retry_after(&error, &mut backoff).await,
                    None => backoff.reset(),
                }
            }
        }
    }

    /// The next events after the subscription's position, waiting for at least one.
    async fn next_batch(
        &self,
        subscription: &mut Subscription<S>,
    ) -> Result<Vec<RecordedEvent>, PublisherError> {
        let after = subscription.position();
        let first = subscription
            .next()
            .await
            .map_err(|source| PublisherError::Read {
                publisher: self.settings.checkpoint.clone(),
                after,
                source,
            })?;
        let mut batch = vec![first];
        match subscription
            .next_available(self.settings.batch_size - 1)
            .await
        {
            Ok(rest) => batch.extend(rest),
            // The first event is in hand; publish it alone and read on later.
            Err(error) => tracing::debug!(
                publisher = %self.settings.checkpoint,
                error = &error as &(dyn std::error::Error + 'static),
                "reading the rest of a batch failed"
            ),
        }
        Ok(batch)
    }

    /// Sends every event of `events`, then awaits their acknowledgements in order.
    async fn publish_batch(&self, events: &[RecordedEvent]) -> BatchOutcome {
        let span = tracing::info_span!(
            "nats_publish_batch",
            publisher = %self.settings.checkpoint,
            events = events.len(),
            first_position = events.first().map(|event| event.position.get()),
        );
        self.publish_batch_inner(events).instrument(span).await
    }

    async fn publish_batch_inner(&self, events: &[RecordedEvent]) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            acked: 0,
            duplicates: 0,
            failure: None,
        };
        // Sent but not yet acknowledged, oldest first; acknowledgements are awaited in log order.
        let mut in_flight = VecDeque::with_capacity(self.settings.max_in_flight);
        for event in events {
            if in_flight.len() >= self.settings.max_in_flight
                && let Some(sent) = in_flight.pop_front()
                && let Err(failure) = self.await_ack(sent, &mut outcome).await
            {
                // The rest are sent again; their acknowledgements (if any) no longer matter.
                outcome.failure = Some(failure);
                return outcome;
            }
            let subject = self.subject(event);
            let message = message::for_event(event, &self.settings.stream);
            match self.jetstream.send_publish(subject.clone(), message).await {
                Ok(ack) => in_flight.push_back((event, subject, ack)),
                Err(source) => {
                    outcome.failure = Some(PublisherError::Send {
                        publisher: self.settings.checkpoint.clone(),
                        event_id: event.id,
                        position: event.log_position(),
                        subject,
                        source,
                    });
                    break;
                }
            }
        }
        for sent in in_flight {
            if let Err(failure) = self.await_ack(sent, &mut outcome).await {
                outcome.failure = Some(failure);
                return outcome;
            }
        }
        outcome
    }

    /// Awaits one acknowledgement and counts it in `outcome`.
    async fn await_ack(
        &self,
        (event, subject, ack): InFlight<'_>,
        outcome: &mut BatchOutcome,
    ) -> Result<(), PublisherError> {
        match ack.await {
            Ok(ack) => {
                outcome.acked += 1;
                if ack.duplicate {
                    outcome.duplicates += 1;
                    tracing::debug!(
                        event_id = %event.id,
                        position = event.position.get(),
                        "JetStream already had the event"
                    );
                }
                Ok(())
            }
            Err(source) => Err(PublisherError::Ack {
                publisher: self.settings.checkpoint.clone(),
                event_id: event.id,
                position: event.log_position(),
                subject,
                source,
            }),
        }
    }

    /// Moves the checkpoint to `position`.
    async fn commit(&self, position: LogPosition) -> Result<(), PublisherError> {
        let name = &self.settings.checkpoint;
        let failed = |source| PublisherError::Commit {
            publisher: name.clone(),
            position,
            source,
        };
        let transaction = self.store.begin(name).await.map_err(failed)?;
        self.store
            .commit(transaction, name, position)
            .await
            .map_err(failed)
    }

    /// A failed commit costs nothing but repeats after a crash: the next commit covers its
    /// events too.
    fn log_commit_failure(&self, error: &PublisherError) {
        tracing::warn!(
            publisher = %self.settings.checkpoint,
            error = error as &(dyn std::error::Error + 'static),
            "checkpoint commit failed; the next one covers its events"
        );
    }

    async fn retry_after(&self, error: &PublisherError, backoff: &mut Backoff) {
        tracing::warn!(
            publisher = %self.settings.checkpoint,
            error = error as &(dyn std::error::Error + 'static),
            retry_in_ms = u64::try_from(backoff.next.as_millis()).unwrap_or(u64::MAX),
            "publishing to NATS failed; retrying"
        );
        backoff.wait().await;
    }
}

/// The log position of the last of the first `acked` events, if any.
fn last_acked(events: &[RecordedEvent], acked: usize) -> Option<LogPosition> {
    let last = acked.checked_sub(1)?;
    events.get(last).map(RecordedEvent::log_position)
}

/// A doubling delay between retries.
struct Backoff {
    first: Duration,
    longest: Duration,
    next: Duration,
}

impl Backoff {
    const fn new(settings: &Settings) -> Self {
        Self {
            first: settings.first_backoff,
            longest: settings.longest_backoff,
            next: settings.first_backoff,
        }
    }

    const fn reset(&mut self) {
        self.next = self.first;
    }

    async fn wait(&mut self) {
        tokio::time::sleep(self.next).await;
        self.next = self.next.saturating_mul(2).min(self.longest);
    }
}

/// A publisher running on its own task; see [`JetStreamPublisher::spawn`].
///
/// Dropping it stops the publisher too, without waiting for the task to end.
#[derive(Debug)]
pub struct PublisherTask {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl PublisherTask {
    /// Stops the publisher and waits for its task to end. Events sent but not yet checkpointed
    /// are sent again on the next start, and de-duplicated by JetStream.
    ///
    /// # Panics
    /// Resumes the task's panic, if it panicked (a bug).
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(error) = self.task.await
            && error.is_panic()
        {
            std::panic::resume_unwind(error.into_panic());
        }
    }
}
