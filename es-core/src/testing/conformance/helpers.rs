//! What every case shares: deterministic ids, events, reads and assertions.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use futures_util::TryStreamExt as _;
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::event::{EventId, NewEvent, RecordedEvent};
use crate::metadata::Metadata;
use crate::snapshot::Snapshot;
use crate::store::checkpoint::CheckpointStore;
use crate::store::command_record::CommandRecord;
use crate::store::error::AppendError;
use crate::store::event_store::EventStore;
use crate::store::log::{AppendRequest, Committed, EventFilter};
use crate::stream::{ExpectedVersion, LogPosition, StreamId, StreamVersion};

/// How long a case waits for something that should happen promptly (a watch wake-up).
pub(super) const WAIT: Duration = Duration::from_secs(10);

/// The event type of the suite's plain numbered events.
pub(super) const NUMBERED: &str = "conformance.numbered";

/// Deterministic ids for one case: a namespace derived from the case's name.
#[derive(Clone, Copy)]
pub(super) struct Ids(pub(super) u64);

impl Ids {
    /// FNV-1a of the name: stable across runs and platforms.
    pub(super) const fn new(case: &str) -> Self {
        let bytes = case.as_bytes();
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0100_0000_01b3);
            i += 1;
        }
        Self(hash)
    }

    pub(super) fn event(self, n: u64) -> EventId {
        EventId(Uuid::from_u64_pair(self.0, n))
    }

    pub(super) fn command(self, n: u64) -> Uuid {
        Uuid::from_u64_pair(!self.0, n)
    }
}

/// Panics with the failed step and the error, for results a case expects to be `Ok`.
pub(super) trait OrFail<T> {
    fn or_fail(self, step: impl fmt::Display) -> T;
}

impl<T, E: fmt::Display + fmt::Debug> OrFail<T> for Result<T, E> {
    fn or_fail(self, step: impl fmt::Display) -> T {
        match self {
            Ok(value) => value,
            Err(error) => panic!("{step} failed: {error}\n  ({error:?})"),
        }
    }
}

pub(super) fn stream(id: &str) -> StreamId {
    StreamId::new(id).or_fail(format_args!("making stream id {id:?}"))
}

pub(super) fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).or_fail("encoding a payload")
}

pub(super) fn new_event(id: EventId, event_type: &str, payload: &Value) -> NewEvent {
    NewEvent {
        id,
        event_type: Cow::Owned(event_type.to_owned()),
        schema_version: 1,
        payload: raw(payload),
        metadata: Metadata::new(),
    }
}

/// Events `{"n": n}` for every `n` in `numbers`, with ids `ids.event(n)`.
pub(super) fn numbered(ids: Ids, numbers: impl IntoIterator<Item = u64>) -> Vec<NewEvent> {
    numbers
        .into_iter()
        .map(|n| new_event(ids.event(n), NUMBERED, &json!({ "n": n })))
        .collect()
}

pub(super) fn payload(event: &RecordedEvent) -> Value {
    serde_json::from_str(event.payload.get()).or_fail(format_args!(
        "parsing the stored payload of event {} as JSON",
        event.id
    ))
}

pub(super) fn id_list(events: &[RecordedEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

pub(super) fn version_list(events: &[RecordedEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|event| event.stream_version.get())
        .collect()
}

pub(super) fn versions(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

pub(super) async fn append_ok<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> Committed {
    let count = events.len();
    let committed = store
        .append(AppendRequest::new(stream_id.clone(), expected, events))
        .await
        .or_fail(format_args!(
            "appending {count} event(s) to `{stream_id}` expecting {expected}"
        ));
    settle(store, committed.last_position).await;
    committed
}

/// Appends `events` to `stream_id` whatever its version ([`ExpectedVersion::Any`]).
pub(super) async fn append_any<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
    events: Vec<NewEvent>,
) -> Committed {
    append_ok(store, stream_id, ExpectedVersion::Any, events).await
}

/// Starts `stream_id` with `events` ([`ExpectedVersion::NoStream`]), as most cases do first.
pub(super) async fn start_stream<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
    events: Vec<NewEvent>,
) -> Committed {
    append_ok(store, stream_id, ExpectedVersion::NoStream, events).await
}

/// Waits until the global log shows `position`. A gap-free read may hold a committed event back
/// while an older transaction elsewhere on the server is still open (PostgreSQL's global read
/// waits for the oldest one); the cases check contents, not that wait.
pub(super) async fn settle<S: EventStore>(store: &S, position: Option<LogPosition>) {
    let Some(position) = position else {
        return;
    };
    for _ in 0..2000 {
        match store.head().await {
            Ok(Some(head)) if head >= position => return,
            Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
            Err(error) => panic!("reading the head failed: {error}"),
        }
    }
    panic!("the appended event at {position} never became visible in the global log");
}

pub(super) async fn append_err<S: EventStore>(store: &S, request: AppendRequest) -> AppendError {
    let what = format!(
        "appending {} event(s) to `{}` expecting {} (command id {:?})",
        request.events.len(),
        request.stream_id,
        request.expected,
        request.command_id
    );
    match store.append(request).await {
        Ok(committed) => panic!("{what} should have failed, but it committed {committed:?}"),
        Err(error) => error,
    }
}

pub(super) async fn load<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
    after: StreamVersion,
) -> Vec<RecordedEvent> {
    store
        .load(stream_id, after)
        .try_collect()
        .await
        .or_fail(format_args!("loading `{stream_id}` after version {after}"))
}

pub(super) async fn load_all<S: EventStore>(store: &S, stream_id: &StreamId) -> Vec<RecordedEvent> {
    load(store, stream_id, StreamVersion::INITIAL).await
}

pub(super) async fn read_all<S: EventStore>(
    store: &S,
    after: LogPosition,
    limit: usize,
    filter: EventFilter<'_>,
) -> Vec<RecordedEvent> {
    let events = store
        .read_all(after, limit, filter)
        .await
        .or_fail(format_args!(
            "reading the log after {after} (limit {limit}, filter {filter:?})"
        ));
    assert!(
        events.len() <= limit,
        "read_all with limit {limit} returned {} events",
        events.len()
    );
    if let Some(event) = events.iter().find(|event| event.log_position() <= after) {
        panic!(
            "read_all after {after} returned event {} at {}, which is not after it",
            event.id,
            event.log_position()
        );
    }
    events
}

/// The whole log (restricted by `filter`), read in pages of 100.
pub(super) async fn read_log<S: EventStore>(
    store: &S,
    filter: EventFilter<'_>,
) -> Vec<RecordedEvent> {
    let mut log = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let page = read_all(store, after, 100, filter).await;
        let Some(last) = page.last() else {
            return log;
        };
        after = last.log_position();
        log.extend(page);
    }
}

pub(super) async fn head<S: EventStore>(store: &S) -> Option<LogPosition> {
    store.head().await.or_fail("reading the head of the log")
}

pub(super) async fn version_of<S: EventStore>(store: &S, stream_id: &StreamId) -> StreamVersion {
    store
        .stream_version(stream_id)
        .await
        .or_fail(format_args!("reading the version of `{stream_id}`"))
}

pub(super) async fn find_command<S: EventStore>(
    store: &S,
    command_id: Uuid,
) -> Option<CommandRecord> {
    store
        .find_command(command_id)
        .await
        .or_fail(format_args!("finding command {command_id}"))
}

pub(super) async fn load_snapshot<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
) -> Option<Snapshot> {
    store
        .load_snapshot(stream_id)
        .await
        .or_fail(format_args!("loading the snapshot of `{stream_id}`"))
}

pub(super) async fn checkpoint<S: CheckpointStore>(store: &S, projection: &str) -> LogPosition {
    store
        .checkpoint(projection)
        .await
        .or_fail(format_args!("reading the checkpoint of {projection:?}"))
}

pub(super) async fn move_checkpoint<S: CheckpointStore>(
    store: &S,
    projection: &str,
    to: LogPosition,
) {
    let transaction = store
        .begin(projection)
        .await
        .or_fail(format_args!("beginning a batch of {projection:?}"));
    store
        .commit(transaction, projection, to)
        .await
        .or_fail(format_args!("committing {projection:?} at {to}"));
}

/// Awaits a task of a case, passing its panic on.
pub(super) async fn join<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("a task of the case did not finish: {error}"),
    }
}

/// Asserts `error` is a conflict on `stream_id` expecting `expected` with `actual` found.
pub(super) fn assert_conflict(
    error: &AppendError,
    stream_id: &StreamId,
    expected: ExpectedVersion,
    actual: StreamVersion,
) {
    match error {
        AppendError::Conflict {
            stream_id: found_stream,
            expected: found_expected,
            actual: found_actual,
        } => {
            assert_eq!(
                found_stream, stream_id,
                "the conflict names the wrong stream"
            );
            assert_eq!(
                *found_expected, expected,
                "the conflict reports the wrong expected version"
            );
            assert_eq!(
                *found_actual, actual,
                "the conflict on `{stream_id}` expecting {expected} reports the wrong actual version"
            );
        }
        other => panic!(
            "expected a version conflict on `{stream_id}` (expected {expected}, actual {actual}), got: {other} ({other:?})"
        ),
    }
}

pub(super) fn assert_duplicate_event_id(
    error: &AppendError,
    stream_id: &StreamId,
    event_id: EventId,
) {
    match error {
        AppendError::DuplicateEventId {
            stream_id: found_stream,
            event_id: found_id,
        } => {
            assert_eq!(found_stream, stream_id, "the error names the wrong stream");
            assert_eq!(*found_id, event_id, "the error names the wrong event id");
        }
        other => panic!(
            "expected a duplicate event id {event_id} appending to `{stream_id}`, got: {other} ({other:?})"
        ),
    }
}

pub(super) fn assert_strictly_increasing(events: &[RecordedEvent], what: &str) {
    for pair in events.windows(2) {
        assert!(
            pair[0].log_position() < pair[1].log_position(),
            "{what}: log position {} (event {}) is followed by {} (event {})",
            pair[0].log_position(),
            pair[0].id,
            pair[1].log_position(),
            pair[1].id
        );
        // Bare global positions may run backwards across transactions (PostgreSQL takes them
        // from a sequence before commit); only the log position is ordered.
    }
}
