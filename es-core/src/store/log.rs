//! The log: [`EventLog`] (append, read, load, head, watch) and what its calls take and give.

use std::future::Future;
use std::ops::ControlFlow;

use futures_core::Stream;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::{NewEvent, RecordedEvent};
use crate::fingerprint::CommandFingerprint;
use crate::store::command_record::CommandOutcome;
use crate::store::error::{AppendError, LoadError};
use crate::stream::{ExpectedVersion, LogPosition, StreamId, StreamVersion};

/// A stored event as [`EventLog::fold_stream`] hands it over: what folding it into an
/// aggregate needs, borrowed from the store's row.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct StoredEvent<'r> {
    /// Its version in the stream.
    pub stream_version: StreamVersion,
    /// Its event type name.
    pub event_type: &'r str,
    /// The schema version it was written with.
    pub schema_version: u32,
    /// Its JSON payload.
    pub payload: &'r RawValue,
}

impl<'r> StoredEvent<'r> {
    /// A stored event of `event_type` at `stream_version`.
    #[must_use]
    pub const fn new(
        stream_version: StreamVersion,
        event_type: &'r str,
        schema_version: u32,
        payload: &'r RawValue,
    ) -> Self {
        Self {
            stream_version,
            event_type,
            schema_version,
            payload,
        }
    }
}

/// One atomic append: events for one stream, the version they expect, and an optional command
/// id that makes the append idempotent.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AppendRequest {
    /// The stream to append to.
    pub stream_id: StreamId,
    /// The optimistic concurrency check.
    pub expected: ExpectedVersion,
    /// The events, in order. May be empty: with a command id the no-op command is recorded;
    /// without one nothing is written (the expected version is still checked).
    pub events: Vec<NewEvent>,
    /// Recorded with the append; a second append with the same id fails with
    /// [`AppendError::DuplicateCommand`].
    pub command_id: Option<Uuid>,
    /// Recorded with the command id: what the command was (see [`CommandFingerprint`]). `None`
    /// records none, and a later command with the same id is then told apart by its stream
    /// alone.
    pub command_fingerprint: Option<CommandFingerprint>,
    /// Recorded with the command id: whether the command took effect or was refused. A
    /// [`CommandOutcome::Refused`] append carries no events.
    pub command_outcome: CommandOutcome,
    /// The version the caller read from the stream, if the expected version is one (see
    /// [`after_read`](Self::after_read)).
    read: Option<ReadVersion>,
    /// The caller has no use for [`Committed::last_position`] (see
    /// [`without_position`](Self::without_position)).
    without_position: bool,
}

/// A stream's version as read from its own events in one store: the only expected version a
/// store may check by the unique key of the first new version alone (see
/// [`AppendRequest::after_read`]). Events are never removed, so a stream can only be at or
/// ahead of a version it was read at, never behind it; a version from anywhere else (a caller's
/// guess, a snapshot the stream never reached) could be ahead of the stream, and checking it by
/// the key alone would leave a hole in the stream's versions. So only a read makes one:
/// [`ReadVersion::read`], or the command path's load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadVersion(StreamVersion);

impl ReadVersion {
    /// Reads the current version of `stream_id` from `store`.
    ///
    /// # Errors
    /// What [`EventLog::stream_version`] reports.
    pub async fn read<S: EventLog>(store: &S, stream_id: &StreamId) -> Result<Self, LoadError> {
        store.stream_version(stream_id).await.map(Self)
    }

    /// The version read.
    #[must_use]
    pub const fn version(self) -> StreamVersion {
        self.0
    }

    /// A version a load folded from the stream's events (a snapshot's own event included), or
    /// one the conformance suite read before another writer moved the stream on.
    pub(crate) const fn loaded(version: StreamVersion) -> Self {
        Self(version)
    }
}

impl AppendRequest {
    /// An append of `events` to `stream_id`, checked against `expected`.
    #[must_use]
    pub const fn new(
        stream_id: StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Self {
        Self {
            stream_id,
            expected,
            events,
            command_id: None,
            command_fingerprint: None,
            command_outcome: CommandOutcome::Applied,
            read: None,
            without_position: false,
        }
    }

    /// The record of command `command_id` refused at version `expected` of `stream_id`: no
    /// events, checked against `expected` (the state the refusal was decided on), so that the
    /// same command id sent again answers the same refusal.
    #[must_use]
    pub const fn refusal(
        stream_id: StreamId,
        expected: ExpectedVersion,
        command_id: Uuid,
        fingerprint: Option<CommandFingerprint>,
    ) -> Self {
        let mut request = Self::new(stream_id, expected, Vec::new());
        request.command_id = Some(command_id);
        request.command_fingerprint = fingerprint;
        request.command_outcome = CommandOutcome::Refused;
        request
    }

    /// Expects the stream at the version `read` from it (an [`ExpectedVersion::Exact`]), and
    /// says it was read, so the stream cannot be behind it: a store may skip reading the
    /// stream's version and let the unique key of the first new version refuse a writer that
    /// came first. A conflict is still a conflict. The command path appends this way on a
    /// command's first attempt (a retry means contention, where a refused insert costs the
    /// server more than reading the version).
    #[must_use]
    pub const fn after_read(mut self, read: ReadVersion) -> Self {
        self.expected = ExpectedVersion::Exact(read.version());
        self.read = Some(read);
        self
    }

    /// Whether the expected version was read from the stream (see
    /// [`after_read`](Self::after_read)): only while it is still the version read.
    #[must_use]
    pub fn expected_was_read(&self) -> bool {
        matches!((self.read, self.expected), (Some(read), ExpectedVersion::Exact(expected)) if read.version() == expected)
    }

    /// Whether the caller needs [`Committed::last_position`] (see
    /// [`without_position`](Self::without_position)).
    #[must_use]
    pub const fn wants_position(&self) -> bool {
        !self.without_position
    }

    /// Declares that the caller does not need the position of the last appended event, as the
    /// command path does not ([`Executed`](crate::Executed) carries no log position): the
    /// store may return [`Committed::last_position`] as `None` although events were written
    /// (es-postgres then inserts without returning a row, which the command path gains by: see
    /// M1 in `es-bench/README.md`). Versions, conflicts and durability are as for any append.
    #[must_use]
    pub const fn without_position(mut self) -> Self {
        self.without_position = true;
        self
    }

    /// Records `command_id` with the append.
    #[must_use]
    pub const fn with_command_id(mut self, command_id: Uuid) -> Self {
        self.command_id = Some(command_id);
        self
    }

    /// Records `fingerprint` with the append's command id.
    #[must_use]
    pub const fn with_command_fingerprint(mut self, fingerprint: CommandFingerprint) -> Self {
        self.command_fingerprint = Some(fingerprint);
        self
    }
}

/// What a committed append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The stream's version before the append.
    pub version_before: StreamVersion,
    /// The stream's version after it: the version of its last event.
    pub version_after: StreamVersion,
    /// Where the last appended event stands in the log: `None` for an empty append, and may
    /// be `None` for an append made [`without_position`](AppendRequest::without_position).
    pub last_position: Option<LogPosition>,
}

impl Committed {
    /// A commit record from its parts; for store implementations.
    #[must_use]
    pub const fn new(
        version_before: StreamVersion,
        version_after: StreamVersion,
        last_position: Option<LogPosition>,
    ) -> Self {
        Self {
            version_before,
            version_after,
            last_position,
        }
    }
}

/// Which events a global read returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventFilter<'a> {
    /// Every event.
    All,
    /// Only events whose stable name is in the list (a projection's consumed events).
    Types(&'a [&'a str]),
}

impl EventFilter<'_> {
    /// Whether an event named `event_type` passes.
    #[must_use]
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::All => true,
            Self::Types(types) => types.contains(&event_type),
        }
    }
}

/// Wakes readers of the global log when new events may have committed.
///
/// A wake-up is a hint, not a promise of new events; readers re-read from their checkpoint.
#[derive(Clone, Debug)]
pub struct LogWatch(tokio::sync::watch::Receiver<u64>);

impl LogWatch {
    /// A watch fed by `receiver`; stores send on every commit (or notification).
    #[must_use]
    pub const fn new(receiver: tokio::sync::watch::Receiver<u64>) -> Self {
        Self(receiver)
    }

    /// Resolves when something was appended since the last call. Once the store is gone it
    /// never resolves again, so callers always race it against their poll interval.
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A durable, ordered log of events grouped in streams: appends checked against an expected
/// version, reads of a stream and of the global log, and a watch for new events.
///
/// Implementations are cheap to clone handles (a pool, an `Arc`) and safe to use from many
/// tasks at once.
pub trait EventLog: Clone + Send + Sync + 'static {
    /// Appends atomically, or writes nothing.
    ///
    /// # Errors
    /// [`AppendError::Conflict`] when the expected version does not hold,
    /// [`AppendError::DuplicateCommand`] for a recorded command id, and back-end failures.
    fn append(
        &self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<Committed, AppendError>> + Send;

    /// The events of one stream with versions above `after`, in version order, streamed so a
    /// long stream is never held in memory whole. An unknown stream yields nothing.
    fn load<'a>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
    ) -> impl Stream<Item = Result<RecordedEvent, LoadError>> + Send + 'a;

    /// Hands the events of one stream with versions above `after` to `visit`, in version
    /// order, as folding them into an aggregate needs them: version, type, schema version and
    /// payload, borrowed from the store's row. Stops early when `visit` breaks, or fails.
    ///
    /// The command path loads aggregates through this. The default goes through
    /// [`load`](Self::load); stores override it to read only those four columns and to skip
    /// building a [`RecordedEvent`] per row.
    ///
    /// # Errors
    /// Back-end failures, an undecodable row, and whatever `visit` returns.
    fn fold_stream<'a, F>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
        mut visit: F,
    ) -> impl Future<Output = Result<(), LoadError>> + Send + 'a
    where
        F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError> + Send + 'a,
    {
        async move {
            use futures_util::StreamExt as _;
            let mut events = std::pin::pin!(self.load(stream_id, after));
            while let Some(event) = events.next().await {
                let event = event?;
                let stored = StoredEvent {
                    stream_version: event.stream_version,
                    event_type: &event.event_type,
                    schema_version: event.schema_version,
                    payload: &event.payload,
                };
                if visit(stored)?.is_break() {
                    break;
                }
            }
            Ok(())
        }
    }

    /// The stream's current version ([`StreamVersion::INITIAL`] when it has no events).
    ///
    /// # Errors
    /// Back-end failures.
    fn stream_version(
        &self,
        stream_id: &StreamId,
    ) -> impl Future<Output = Result<StreamVersion, LoadError>> + Send;

    /// Up to `limit` events after `after` in log order, restricted by `filter`.
    ///
    /// # Errors
    /// Back-end failures.
    fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> impl Future<Output = Result<Vec<RecordedEvent>, LoadError>> + Send;

    /// The head of the log ([`head`](Self::head)) and up to `limit` events after `after`
    /// ([`read_all`](Self::read_all)), read so that every event at or before that head is
    /// either among the events or beyond the limit. Projection runners use the head to move
    /// their checkpoint past events of types they do not consume.
    ///
    /// The default reads the head first, then the events; stores override it to read both in
    /// one round trip.
    ///
    /// # Errors
    /// Back-end failures.
    fn read_with_head(
        &self,
        after: LogPosition,
        limit: usize,
        filter: EventFilter<'_>,
    ) -> impl Future<Output = Result<(Option<LogPosition>, Vec<RecordedEvent>), LoadError>> + Send
    {
        async move {
            let head = self.head().await?;
            let events = self.read_all(after, limit, filter).await?;
            Ok((head, events))
        }
    }

    /// How many events lie after `after` in log order, restricted by `filter` (for progress
    /// and lag reports). The default counts by reading; stores override it with a query.
    ///
    /// # Errors
    /// Back-end failures.
    fn count_events(
        &self,
        after: LogPosition,
        filter: EventFilter<'_>,
    ) -> impl Future<Output = Result<u64, LoadError>> + Send {
        async move {
            const CHUNK: usize = 1000;
            let mut count = 0u64;
            let mut position = after;
            loop {
                let events = self.read_all(position, CHUNK, filter).await?;
                count += events.len() as u64;
                match events.last() {
                    Some(last) if events.len() == CHUNK => position = last.log_position(),
                    _ => return Ok(count),
                }
            }
        }
    }

    /// The position of the last visible event of the log, if any.
    ///
    /// # Errors
    /// Back-end failures.
    fn head(&self) -> impl Future<Output = Result<Option<LogPosition>, LoadError>> + Send;

    /// A watch that wakes when events may have been appended.
    fn watch(&self) -> LogWatch;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The claim that a version was read holds only for that version: an expected version
    /// changed after `after_read` is checked in full again.
    #[test]
    fn only_the_version_read_counts_as_read() -> Result<(), crate::stream::InvalidStreamId> {
        let stream_id = StreamId::new("account-a")?;
        let request = AppendRequest::new(stream_id, ExpectedVersion::Any, Vec::new());
        assert!(!request.expected_was_read());
        let mut request = request.after_read(ReadVersion::loaded(StreamVersion(4)));
        assert_eq!(request.expected, ExpectedVersion::Exact(StreamVersion(4)));
        assert!(request.expected_was_read());
        request.expected = ExpectedVersion::Exact(StreamVersion(9));
        assert!(!request.expected_was_read());
        assert!(request.wants_position());
        assert!(!request.without_position().wants_position());
        Ok(())
    }
}
