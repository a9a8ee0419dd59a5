//! Live subscriptions to the global log: catch up from a position, then follow new events.
//!
//! A [`Subscription`] reads the log in batches after its position. When it reaches the end it
//! waits for the store's [`LogWatch`] (on PostgreSQL, `LISTEN/NOTIFY`
//! after each commit; in memory and SQLite, a wake-up from the appending process) and, in case a
//! notification is lost, re-reads anyway after a slow fallback poll.
//!
//! A wake-up whose read finds nothing new is followed by re-reads after 5 ms, 10 ms, 20 ms ... up
//! to the fallback poll: on PostgreSQL a committed event stays invisible to the gap-free read
//! while an older transaction anywhere on the server is still open, and that transaction's end
//! sends no notification. (A filtered subscription also reads once or twice more than needed
//! after events of other types.) There is no separate
//! "catch-up" and "live" mode to switch between: both are the same read after the last event
//! handed out, so nothing is skipped or repeated at the seam.
//!
//! ```
//! use es_core::{subscription::Subscription, AppendRequest, EventLog, ExpectedVersion};
//! use es_core::{LogPosition, MemoryStore, Metadata, NewEvent, StreamId};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let mut subscription = Subscription::new(store.clone(), LogPosition::START);
//! let stream = StreamId::new("greeting-1")?;
//! let payload = serde_json::value::to_raw_value(&serde_json::json!({ "to": "you" }))?;
//! let event = NewEvent::new("Greeted", 1, payload, Metadata::default());
//! store.append(AppendRequest::new(stream, ExpectedVersion::Any, vec![event])).await?;
//! let received = subscription.next().await?;
//! assert_eq!(received.event_type, "Greeted");
//! assert_eq!(subscription.position(), received.log_position());
//! # Ok(()) }
//! ```

use std::collections::VecDeque;
use std::time::Duration;

use futures_core::Stream;

use crate::event::RecordedEvent;
use crate::store::error::LoadError;
use crate::store::event_store::EventStore;
use crate::store::log::{EventFilter, LogWatch};
use crate::stream::LogPosition;

const DEFAULT_BATCH: usize = 500;
const DEFAULT_FALLBACK_POLL: Duration = Duration::from_secs(5);
const FIRST_RECHECK: Duration = Duration::from_millis(5);

/// Reads the global log after a position, then waits for new events; see the
/// [module docs](self).
#[derive(Debug)]
pub struct Subscription<S> {
    store: S,
    position: LogPosition,
    event_types: Option<Vec<String>>,
    pending: VecDeque<RecordedEvent>,
    watch: LogWatch,
    batch_size: usize,
    fallback_poll: Duration,
    /// How long the next wait at the end of the log lasts at most.
    next_recheck: Duration,
    /// Whether the last read came back short: only then is the next one likely to find
    /// nothing, which is when a filtered subscription needs the head.
    near_end: bool,
}

impl<S: EventStore> Subscription<S> {
    /// A subscription to every event after `after` ([`LogPosition::START`] for the whole log).
    #[must_use]
    pub fn new(store: S, after: LogPosition) -> Self {
        // The watch is taken before the first read, so a commit that lands between a read that
        // came back empty and the wait still wakes us.
        let watch = store.watch();
        Self {
            store,
            position: after,
            event_types: None,
            pending: VecDeque::new(),
            watch,
            batch_size: DEFAULT_BATCH,
            fallback_poll: DEFAULT_FALLBACK_POLL,
            next_recheck: DEFAULT_FALLBACK_POLL,
            near_end: true,
        }
    }

    /// Only events with these type names (the store filters them, so others are never read).
    #[must_use]
    pub fn event_types<T: Into<String>>(mut self, types: impl IntoIterator<Item = T>) -> Self {
        self.event_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Events read per round trip (at least 1; default 500).
    #[must_use]
    pub fn batch_size(mut self, events: usize) -> Self {
        self.batch_size = events.max(1);
        self
    }

    /// How long to wait for a wake-up at the end of the log before reading anyway, in case a
    /// notification was lost (at least 1 ms; default 5 s).
    #[must_use]
    pub fn fallback_poll(mut self, interval: Duration) -> Self {
        self.fallback_poll = interval.max(Duration::from_millis(1));
        self.next_recheck = self.fallback_poll;
        self
    }

    /// Where the subscription stands: the position of the last event handed out, the starting
    /// position, or (for a filtered subscription at the end of the log) the head it has checked.
    /// Resume a subscription from here to continue without a gap or a repeat.
    #[must_use]
    pub const fn position(&self) -> LogPosition {
        self.position
    }

    /// The next event after [`position`](Self::position), waiting for one to be committed if the
    /// subscription is at the end of the log.
    ///
    /// Cancel-safe: dropping the future before it resolves loses nothing, and the next call
    /// returns the same event.
    ///
    /// # Errors
    /// A failed read of the log. The subscription stays where it was, so calling `next` again
    /// retries the read.
    pub async fn next(&mut self) -> Result<RecordedEvent, LoadError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                self.position = event.log_position();
                return Ok(event);
            }
            let batch = self.read_batch().await?;
            if batch.is_empty() {
                tokio::select! {
                    () = self.watch.changed() => self.next_recheck = FIRST_RECHECK,
                    () = tokio::time::sleep(self.next_recheck) => {
                        self.next_recheck = (self.next_recheck * 2).min(self.fallback_poll);
                    }
                }
            } else {
                self.next_recheck = self.fallback_poll;
                self.pending.extend(batch);
            }
        }
    }

    /// The events that are committed now, without waiting: up to `limit` events after
    /// [`position`](Self::position), which moves past them.
    ///
    /// # Errors
    /// A failed read of the log; the position does not move.
    pub async fn next_available(&mut self, limit: usize) -> Result<Vec<RecordedEvent>, LoadError> {
        let mut events: Vec<RecordedEvent> = Vec::new();
        while events.len() < limit {
            if self.pending.is_empty() {
                let batch = self.read_batch().await?;
                if batch.is_empty() {
                    break;
                }
                self.pending.extend(batch);
            }
            while events.len() < limit {
                let Some(event) = self.pending.pop_front() else {
                    break;
                };
                self.position = event.log_position();
                events.push(event);
            }
        }
        Ok(events)
    }

    /// The subscription as a never-ending [`Stream`] of events (each item a [`next`](Self::next)).
    pub fn into_stream(self) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send {
        futures_util::stream::unfold(self, |mut subscription| async move {
            let item = subscription.next().await;
            Some((item, subscription))
        })
    }

    /// One read after the last event read (buffered or handed out).
    async fn read_batch(&mut self) -> Result<Vec<RecordedEvent>, LoadError> {
        let after = self
            .pending
            .back()
            .map_or(self.position, RecordedEvent::log_position);
        let Some(types) = &self.event_types else {
            return self
                .store
                .read_all(after, self.batch_size, EventFilter::All)
                .await;
        };
        // Near the end the head is read first: if no event of our types lies beyond `after`, none
        // lies before the head either, so a filtered subscription at the end moves up to the head
        // and does not scan the other types' events again on every wake-up. While catching up in
        // full batches that extra query is skipped.
        let head = if self.near_end {
            self.store.head().await?
        } else {
            None
        };
        let types: Vec<&str> = types.iter().map(String::as_str).collect();
        let batch = self
            .store
            .read_all(after, self.batch_size, EventFilter::Types(&types))
            .await?;
        self.near_end = batch.len() < self.batch_size;
        if let Some(head) = head
            && batch.is_empty()
            && self.pending.is_empty()
        {
            self.position = self.position.max(head);
        }
        Ok(batch)
    }
}
