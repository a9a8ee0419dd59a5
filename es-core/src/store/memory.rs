//! The in-memory store: the whole log in one process, for development and tests.
//!
//! [`MemoryStore`] implements [`EventStore`](crate::EventStore) and [`CheckpointStore`] and passes the
//! conformance suite (`es_core::testing::conformance`, behind the `testing` feature) like
//! every other back end. Nothing is
//! durable: the log lives as long as the last clone of the store.
//!
//! ```
//! use es_core::{
//!     AppendRequest, EventLog, ExpectedVersion, MemoryStore, Metadata, NewEvent, StreamId,
//!     StreamVersion,
//! };
//! use futures_util::TryStreamExt;
//! use serde_json::{json, value::to_raw_value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let order = StreamId::new("order-1")?;
//! let placed = NewEvent::new(
//!     "order.placed",
//!     1,
//!     to_raw_value(&json!({ "customer": "ada" }))?,
//!     Metadata::new(),
//! );
//!
//! let request = AppendRequest::new(order.clone(), ExpectedVersion::NoStream, vec![placed]);
//! let committed = store.append(request).await?;
//! assert_eq!(committed.version_after, StreamVersion(1));
//!
//! let events: Vec<_> = store.load(&order, StreamVersion::INITIAL).try_collect().await?;
//! assert_eq!(events.len(), 1);
//! assert_eq!(events[0].event_type, "order.placed");
//! assert_eq!(events[0].stream_version, StreamVersion(1));
//! # Ok(())
//! # }
//! ```
//!
//! # How it works
//!
//! One lock guards the state; every append takes it for writing, so appends are serialised
//! and the log's order is position order (each event's [`LogPosition::transaction`] is its
//! position, as [`LogPosition`] describes for stores with serialised writers). Positions run
//! 1, 2, 3 ... without holes: nothing is ever rolled back once the checks have passed.
//! The lock is never held across an `.await`, and a lock poisoned by a panicking thread is
//! recovered (every change to the state is made only after all checks have passed, so a
//! panic cannot leave half an append behind).

use crate::store::command_log::CommandLog;
use crate::store::lease::LeaseStore;
use crate::store::log::EventLog;
use crate::store::snapshot_store::SnapshotStore;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::watch;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::event::{EventId, RecordedEvent};
use crate::snapshot::Snapshot;
use crate::store::checkpoint::CheckpointStore;
use crate::store::command_record::CommandRecord;
use crate::store::error::{AppendError, BackendError, LoadError};
use crate::store::lease::{Lease, LeaseHolder, LeaseRenewal};
use crate::store::log::{AppendRequest, Committed, EventFilter, LogWatch};
use crate::stream::{GlobalPosition, LogPosition, StreamId, StreamVersion};

/// How many events [`MemoryStore::load`](crate::EventLog::load) clones out per lock acquisition.
///
/// Loading a long stream takes the lock once per chunk, so a reader never holds it for long
/// and never holds a copy of the whole stream.
const LOAD_CHUNK: usize = 256;

/// An in-memory [`EventStore`](crate::EventStore) and [`CheckpointStore`], for development and tests.
///
/// Cloning gives another handle to the same log (an [`Arc`] inside); handles are safe to use
/// from many tasks and threads at once. Appends are serialised under one lock, so positions
/// and commit order coincide. The projection unit of work is `()`: a checkpoint moves when
/// [`CheckpointStore::commit`] is called, and there is nothing to roll back, so the runner commits the progress made before a failing
/// event (`ROLLS_BACK` is `false`).
///
/// Behaviour where the trait leaves room:
/// - an append checks, in this order, the command id, the expected version, then the event
///   ids (against the log and within the batch);
/// - an append with no events and no command id checks the expected version and then
///   succeeds without writing anything (`version_before == version_after`,
///   `last_position == None`); with a command id it records the (no-op) command;
/// - [`load`](crate::EventLog::load) clones the stream out in chunks of 256 events, taking the lock
///   once per chunk; events appended while a load is under way may be included, and the
///   result is always a hole-free run of versions;
/// - [`save_snapshot`](SnapshotStore::save_snapshot) replaces the stream's snapshot, whatever
///   its version;
/// - all events of one append share one `recorded_at`.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    /// The head position, sent after every append that wrote events.
    head: watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// The global log; the event at index `i` has position `i + 1`.
    log: Vec<RecordedEvent>,
    /// Each stream's events as indices into `log`; index `i` holds version `i + 1`.
    streams: HashMap<StreamId, Vec<usize>>,
    event_ids: HashSet<EventId>,
    commands: HashMap<Uuid, CommandRecord>,
    snapshots: HashMap<StreamId, Snapshot>,
    checkpoints: HashMap<String, LogPosition>,
    leases: HashMap<String, LeaseRow>,
}

/// A projection's lease as the store keeps it.
struct LeaseRow {
    owner: String,
    epoch: u64,
    expires_at: Instant,
    /// Who asked for it, until when.
    request: Option<(String, Instant)>,
}

impl LeaseRow {
    fn unexpired(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    /// The requester, if a request is pending.
    fn requested_by(&self, now: Instant) -> Option<&str> {
        self.request
            .as_ref()
            .filter(|(_, until)| *until > now)
            .map(|(requester, _)| requester.as_str())
    }

    fn holds(&self, lease: &Lease) -> bool {
        self.owner == lease.owner && self.epoch == lease.epoch
    }
}

impl State {
    fn stream_version(&self, stream_id: &StreamId) -> StreamVersion {
        StreamVersion(
            self.streams
                .get(stream_id)
                .map_or(0, |events| events.len() as u64),
        )
    }

    /// Applies `request` if every check passes; changes nothing otherwise.
    fn append(&mut self, request: AppendRequest) -> Result<Committed, AppendError> {
        let AppendRequest {
            stream_id,
            expected,
            events,
            command_id,
            command_fingerprint,
            command_outcome,
            // Whether the version was read or the position is wanted changes nothing here:
            // the version is read under the lock anyway, and the position costs nothing.
            ..
        } = request;

        if let Some(record) = command_id.and_then(|id| self.commands.get(&id)) {
            return Err(AppendError::DuplicateCommand(record.clone()));
        }
        let actual = self.stream_version(&stream_id);
        if !expected.is_satisfied_by(actual) {
            return Err(AppendError::Conflict {
                stream_id,
                expected,
                actual,
            });
        }
        let mut batch_ids = HashSet::with_capacity(events.len());
        if let Some(event) = events
            .iter()
            .find(|event| self.event_ids.contains(&event.id) || !batch_ids.insert(event.id))
        {
            return Err(AppendError::DuplicateEventId {
                event_id: event.id,
                stream_id,
            });
        }

        // Every check has passed: from here on nothing fails, so the append is all or nothing.
        let version_after = actual.advanced_by(events.len() as u64);
        let recorded_at = OffsetDateTime::now_utc();
        let mut last_position = None;
        let first_index = self.log.len();
        self.log.reserve(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let position = (first_index + offset) as u64 + 1;
            let log_position = LogPosition::new(position, GlobalPosition(position));
            self.event_ids.insert(event.id);
            self.log.push(RecordedEvent::new(
                event.id,
                stream_id.clone(),
                actual.advanced_by(offset as u64 + 1),
                log_position,
                event.event_type.into_owned(),
                event.schema_version,
                event.payload,
                event.metadata,
                recorded_at,
            ));
            last_position = Some(log_position);
        }
        if first_index < self.log.len() {
            self.streams
                .entry(stream_id.clone())
                .or_default()
                .extend(first_index..self.log.len());
        }
        if let Some(command_id) = command_id {
            self.commands.insert(
                command_id,
                CommandRecord::new(command_id, stream_id, actual, version_after)
                    .with_fingerprint(command_fingerprint)
                    .with_outcome(command_outcome),
            );
        }
        Ok(Committed::new(actual, version_after, last_position))
    }

    /// Up to `max` events of `stream_id` with versions above `after`.
    fn stream_chunk(
        &self,
        stream_id: &StreamId,
        after: StreamVersion,
        max: usize,
    ) -> Vec<RecordedEvent> {
        let Some(indices) = self.streams.get(stream_id) else {
            return Vec::new();
        };
        // Index `i` holds version `i + 1`, so the versions above `after` start at index `after`.
        let start = usize::try_from(after.get()).unwrap_or(usize::MAX);
        indices
            .get(start..)
            .unwrap_or_default()
            .iter()
            .take(max)
            .filter_map(|&index| self.log.get(index).cloned())
            .collect()
    }

    fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Vec<RecordedEvent> {
        // The log is sorted by log position: find the start by binary search, not a scan.
        let start = self
            .log
            .partition_point(|event| event.log_position() <= after);
        self.log[start..]
            .iter()
            .filter(|event| filter.matches(&event.event_type))
            .take(limit)
            .cloned()
            .collect()
    }
}

impl MemoryStore {
    /// An empty store.
    #[must_use]
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                head: watch::Sender::new(0),
            }),
        }
    }

    // A poisoned lock is recovered: the state is consistent whenever the lock is released,
    // because appends change it only after every check has passed.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.read();
        f.debug_struct("MemoryStore")
            .field("events", &state.log.len())
            .field("streams", &state.streams.len())
            .finish_non_exhaustive()
    }
}

impl EventLog for MemoryStore {
    async fn append(&self, request: AppendRequest) -> Result<Committed, AppendError> {
        let span = tracing::debug_span!(
            "append",
            backend = "memory",
            stream_id = %request.stream_id,
            expected = %request.expected,
            events = request.events.len(),
        );
        async move {
            let committed = self.write().append(request)?;
            if let Some(last) = committed.last_position {
                let head = last.position.get();
                // Never move the watched head backwards when two appenders race to here.
                self.inner.head.send_if_modified(|current| {
                    let moved = head > *current;
                    if moved {
                        *current = head;
                    }
                    moved
                });
            }
            Ok(committed)
        }
        .instrument(span)
        .await
    }

    fn load<'a>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
    ) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send + 'a {
        futures_util::stream::unfold(after, move |after| async move {
            let chunk = self.read().stream_chunk(stream_id, after, LOAD_CHUNK);
            let last = chunk.last()?.stream_version;
            Some((chunk, last))
        })
        .flat_map(|chunk| futures_util::stream::iter(chunk.into_iter().map(Ok)))
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, LoadError> {
        Ok(self.read().stream_version(stream_id))
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> Result<Vec<RecordedEvent>, LoadError> {
        Ok(self.read().read_all(after, limit, filter))
    }

    async fn head(&self) -> Result<Option<LogPosition>, LoadError> {
        Ok(self.read().log.last().map(RecordedEvent::log_position))
    }

    fn watch(&self) -> LogWatch {
        LogWatch::new(self.inner.head.subscribe())
    }
}

impl SnapshotStore for MemoryStore {
    async fn save_snapshot(
        &self,
        stream_id: &StreamId,
        snapshot: Snapshot,
    ) -> Result<(), BackendError> {
        self.write().snapshots.insert(stream_id.clone(), snapshot);
        Ok(())
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, LoadError> {
        Ok(self.read().snapshots.get(stream_id).cloned())
    }
}

impl CommandLog for MemoryStore {
    async fn find_command(&self, command_id: Uuid) -> Result<Option<CommandRecord>, LoadError> {
        Ok(self.read().commands.get(&command_id).cloned())
    }
}

/// Leases follow the contract's rules (see [`LeaseStore::acquire_lease`]), under the
/// store's lock, with the process's monotonic clock: several applications sharing one
/// `MemoryStore` take turns on a projection as processes do on a database.
impl CheckpointStore for MemoryStore {
    type Transaction = ();

    const ROLLS_BACK: bool = false;

    const DURABLE_CHECKPOINTS: bool = false;

    async fn commit_fenced(
        &self,
        (): (),
        projection: &str,
        checkpoint: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        let now = Instant::now();
        let mut state = self.write();
        let held = state
            .leases
            .get(projection)
            .is_some_and(|row| row.holds(lease) && row.unexpired(now));
        if !held {
            return Err(lease.lost("memory", projection, checkpoint));
        }
        state.checkpoints.insert(projection.to_owned(), checkpoint);
        Ok(())
    }

    async fn checkpoint(&self, projection: &str) -> Result<LogPosition, BackendError> {
        Ok(self
            .read()
            .checkpoints
            .get(projection)
            .copied()
            .unwrap_or(LogPosition::START))
    }

    async fn begin(&self, _projection: &str) -> Result<(), BackendError> {
        Ok(())
    }

    async fn commit(
        &self,
        (): (),
        projection: &str,
        checkpoint: LogPosition,
    ) -> Result<(), BackendError> {
        self.write()
            .checkpoints
            .insert(projection.to_owned(), checkpoint);
        Ok(())
    }

    async fn reset_checkpoint(&self, projection: &str) -> Result<(), BackendError> {
        self.write().checkpoints.remove(projection);
        Ok(())
    }
}

impl LeaseStore for MemoryStore {
    async fn acquire_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Option<Lease>, BackendError> {
        let now = Instant::now();
        let mut state = self.write();
        let Some(row) = state.leases.get_mut(projection) else {
            state.leases.insert(
                projection.to_owned(),
                LeaseRow {
                    owner: owner.to_owned(),
                    epoch: 1,
                    expires_at: now + ttl,
                    request: None,
                },
            );
            return Ok(Some(Lease::new(projection, owner, 1)));
        };
        if row
            .requested_by(now)
            .is_some_and(|requester| requester != owner)
        {
            return Ok(None);
        }
        let renewal = row.owner == owner && row.unexpired(now);
        if !renewal {
            if row.unexpired(now) {
                return Ok(None);
            }
            row.owner = owner.to_owned();
            row.epoch += 1;
        }
        row.expires_at = now + ttl;
        if row.requested_by(now) == Some(owner) {
            row.request = None;
        }
        Ok(Some(Lease::new(projection, owner, row.epoch)))
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
    ) -> Result<LeaseRenewal, BackendError> {
        let now = Instant::now();
        let mut state = self.write();
        let Some(row) = state
            .leases
            .get_mut(&lease.projection)
            .filter(|row| row.holds(lease))
        else {
            return Ok(LeaseRenewal::Lost);
        };
        if let Some(requester) = row.requested_by(now).filter(|r| *r != lease.owner) {
            return Ok(LeaseRenewal::HandOver {
                requested_by: requester.to_owned(),
            });
        }
        row.expires_at = now + ttl;
        Ok(LeaseRenewal::Renewed)
    }

    async fn release_lease(&self, lease: &Lease) -> Result<(), BackendError> {
        let now = Instant::now();
        if let Some(row) = self
            .write()
            .leases
            .get_mut(&lease.projection)
            .filter(|row| row.holds(lease))
        {
            row.expires_at = now;
        }
        Ok(())
    }

    async fn request_lease(
        &self,
        projection: &str,
        requester: &str,
        ttl: Duration,
    ) -> Result<Option<LeaseHolder>, BackendError> {
        let now = Instant::now();
        let mut state = self.write();
        let Some(row) = state
            .leases
            .get_mut(projection)
            .filter(|row| row.owner != requester && row.unexpired(now))
        else {
            return Ok(None);
        };
        if row.requested_by(now).is_none_or(|other| other == requester) {
            row.request = Some((requester.to_owned(), now + ttl));
        }
        Ok(Some(LeaseHolder::new(
            row.owner.clone(),
            row.epoch,
            row.expires_at - now,
            row.requested_by(now).map(str::to_owned),
        )))
    }

    async fn take_over_lease(
        &self,
        projection: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<Lease, BackendError> {
        let now = Instant::now();
        let mut state = self.write();
        let row = state
            .leases
            .entry(projection.to_owned())
            .or_insert_with(|| LeaseRow {
                owner: owner.to_owned(),
                epoch: 0,
                expires_at: now,
                request: None,
            });
        row.owner = owner.to_owned();
        row.epoch += 1;
        row.expires_at = now + ttl;
        row.request = None;
        Ok(Lease::new(projection, owner, row.epoch))
    }

    async fn lease_owner(&self, projection: &str) -> Result<Option<(String, bool)>, BackendError> {
        let now = Instant::now();
        Ok(self
            .read()
            .leases
            .get(projection)
            .map(|row| (row.owner.clone(), row.unexpired(now))))
    }
}

#[cfg(test)]
mod tests;
