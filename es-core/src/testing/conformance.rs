//! The store conformance suite: the contract of [`EventStore`] and [`CheckpointStore`] as
//! executable cases. Every back end passes it before anything else.
//!
//! Run it from a store's tests in one of two ways. One `#[tokio::test]` per case, so each case
//! shows up by name in the test runner (see [`conformance_tests!`](crate::conformance_tests)
//! for what the calling crate needs):
//!
//! ```no_run
//! use es_core::MemoryStore;
//!
//! es_core::conformance_tests!(|| async { MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! Or every case in one test with [`run_all`], which runs them all, then panics with a report
//! naming each failed case:
//!
//! ```
//! use es_core::MemoryStore;
//! use es_core::testing::conformance;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 4)]
//! # async fn main() {
//! conformance::run_all(|| async { MemoryStore::new() }).await;
//! # }
//! ```
//!
//! Each case is also a public `async fn` taking a store ([`CASES`] lists their names), to run
//! one on its own while chasing a bug.
//!
//! # What a case needs
//!
//! - A fresh, empty store per case: cases assert on the whole log (its head, its order), so the
//!   factory must hand out a store no other case writes to (on PostgreSQL, a schema or a
//!   database of its own).
//! - A Tokio runtime with timers enabled (`#[tokio::test]` has one). Some cases race tasks
//!   against each other with `tokio::spawn`; a multi-threaded runtime makes those races real.
//!
//! Test data is deterministic: ids are derived from the case's name, nothing is random. A
//! case fails by panicking with a message that says what step failed and what was expected.
//!
//! Upcasting and decoding belong to [`crate::codec`], not to a store, but a store that mangles
//! schema versions or payloads breaks them, so the suite also runs them end to end on rows read
//! back from the store.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::{FutureExt as _, TryStreamExt as _};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::codec::{self, DecodeError};
use crate::error::AppendError;
use crate::event::{Event, EventId, NewEvent, RecordedEvent};
use crate::fingerprint::CommandFingerprint;
use crate::metadata::Metadata;
use crate::snapshot::Snapshot;
use crate::store::{
    AppendRequest, CheckpointStore, CommandOutcome, CommandRecord, CommandSession, Committed,
    EventFilter, EventStore,
};
use crate::stream::{ExpectedVersion, LogPosition, MAX_STREAM_ID_LEN, StreamId, StreamVersion};
use crate::upcast::{UpcastError, Upcaster};

mod command_path;
mod leases;

pub use command_path::{
    command_id_answers_only_its_command, commands_of_one_app_on_one_stream_never_conflict,
    refusal_replays_as_the_same_refusal, snapshot_beyond_the_stream_is_ignored,
    unrepresentable_payload_is_refused_before_append,
};
pub use leases::{
    a_lease_has_one_holder_and_a_new_epoch_each_time_it_is_taken,
    a_requested_lease_is_handed_to_the_requester, a_taken_over_lease_fences_its_old_holder,
    an_expired_lease_goes_to_the_next_owner, an_expired_request_stands_in_no_ones_way,
};

/// The one list of case names; every other list (the [`CASES`] constant, [`run_all`], the
/// [`conformance_tests!`](crate::conformance_tests) macro) is generated from it, so they cannot
/// drift apart. Calls `$crate::$callback! { $args [case, case, ...] }`.
#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_cases {
    ($callback:ident ! $args:tt) => {
        $crate::$callback! { $args [
            append_then_load_round_trips,
            versions_run_from_one_without_holes,
            committed_reports_versions_and_position,
            stream_version_follows_appends,
            unknown_stream_loads_empty_at_version_zero,
            load_after_a_version_returns_the_rest,
            load_returns_only_the_streams_events,
            fold_stream_visits_what_load_returns,
            long_stream_loads_completely_in_order,
            no_stream_conflicts_on_existing_stream,
            exact_conflict_reports_actual_version,
            read_expected_version_conflicts_when_behind,
            stream_exists_conflicts_on_empty_stream,
            expected_versions_that_hold_append,
            appends_without_position_keep_versions_and_conflicts,
            any_always_appends,
            conflict_writes_nothing,
            concurrent_appends_to_one_stream_have_one_winner_per_version,
            failed_batch_writes_nothing,
            duplicate_event_id_is_refused,
            duplicate_event_id_within_a_batch_is_refused,
            empty_append_without_command_writes_nothing,
            find_command_returns_the_record,
            unknown_command_is_not_found,
            duplicate_command_is_refused_with_its_record,
            no_op_command_is_recorded,
            command_record_keeps_fingerprint_and_outcome,
            refusal_is_recorded_against_its_version,
            failed_append_does_not_record_its_command,
            a_session_folds_appends_and_finds_commands,
            a_session_appends_again_after_a_conflict,
            concurrent_sessions_on_one_stream_lose_no_append,
            empty_store_has_no_head_and_reads_nothing,
            read_all_follows_global_order_across_streams,
            read_all_after_is_exclusive,
            read_all_respects_the_limit,
            read_all_filters_by_event_type,
            log_positions_strictly_increase,
            head_is_the_last_event_position,
            read_with_head_reads_the_head_with_the_events,
            concurrent_appends_to_many_streams_keep_stream_order,
            snapshot_round_trips,
            latest_snapshot_wins,
            snapshot_of_unknown_stream_is_none,
            checkpoint_starts_at_start,
            checkpoint_commit_and_reset,
            watch_wakes_after_append,
            awkward_stream_ids_round_trip,
            awkward_payloads_round_trip,
            metadata_round_trips,
            awkward_event_types_round_trip,
            batches_keep_each_events_type_and_schema_version,
            old_schema_versions_upcast_on_load,
            corrupt_payload_fails_to_decode,
            future_schema_version_is_unsupported,
            unrepresentable_payload_is_refused_before_append,
            command_id_answers_only_its_command,
            refusal_replays_as_the_same_refusal,
            commands_of_one_app_on_one_stream_never_conflict,
            snapshot_beyond_the_stream_is_ignored,
            a_lease_has_one_holder_and_a_new_epoch_each_time_it_is_taken,
            an_expired_lease_goes_to_the_next_owner,
            a_taken_over_lease_fences_its_old_holder,
            a_requested_lease_is_handed_to_the_requester,
            an_expired_request_stands_in_no_ones_way,
        ] }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_names {
    (() [$($case:ident),* $(,)?]) => {
        /// The name of every case, in the order [`run_all`] runs them.
        pub const CASES: &[&str] = &[$(::core::stringify!($case)),*];
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_run_all {
    (($make_store:ident, $failures:ident) [$($case:ident),* $(,)?]) => {
        $(
            $crate::testing::conformance::__run_case(
                ::core::stringify!($case),
                &mut $failures,
                async { $crate::testing::conformance::$case($make_store().await).await },
            )
            .await;
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __es_core_conformance_tests {
    (($make_store:expr) [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let store = ($make_store)().await;
                $crate::testing::conformance::$case(store).await;
            }
        )*
    };
}

/// Expands to one `#[tokio::test]` per conformance case, each on a fresh store.
///
/// `$make_store` is what [`run_all`](crate::testing::conformance::run_all) takes: something
/// callable with no arguments that returns a future of a store (an `async fn` or a closure
/// `|| async { ... }`). It is called once per case.
///
/// The tests are generated in the calling module with the cases' names, so invoke the macro
/// once per module (put each store's suite in a `mod` of its own). The generated tests use the
/// `#[tokio::test]` attribute by the path `::tokio::test`, on the multi-threaded runtime: the
/// calling crate needs `tokio` among its (dev-)dependencies with the `macros` and
/// `rt-multi-thread` features.
///
/// ```no_run
/// mod memory {
///     use es_core::MemoryStore;
///
///     es_core::conformance_tests!(|| async { MemoryStore::new() });
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($make_store:expr $(,)?) => {
        $crate::__es_core_conformance_cases! { __es_core_conformance_tests! ($make_store) }
    };
}

crate::__es_core_conformance_cases! { __es_core_conformance_names! () }

/// Runs every case, each on a fresh store from `make_store`, one after another.
///
/// # Panics
/// After all cases have run, when any failed: the message names every failed case with its
/// own failure message.
pub async fn run_all<S, F, Fut>(make_store: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = S>,
    S: EventStore + CheckpointStore,
{
    let mut failures: Vec<(&'static str, String)> = Vec::new();
    crate::__es_core_conformance_cases! { __es_core_conformance_run_all! (make_store, failures) }
    if !failures.is_empty() {
        let mut report = format!(
            "{} of {} store conformance cases failed:",
            failures.len(),
            CASES.len()
        );
        for (case, message) in &failures {
            report.push_str(&format!("\n\n--- {case}\n{message}"));
        }
        panic!("{report}");
    }
}

/// Runs one case and records its panic, if any; for [`run_all`].
pub(crate) async fn __run_case(
    name: &'static str,
    failures: &mut Vec<(&'static str, String)>,
    case: impl Future<Output = ()>,
) {
    if let Err(panic) = AssertUnwindSafe(case).catch_unwind().await {
        let message = if let Some(message) = panic.downcast_ref::<&str>() {
            (*message).to_owned()
        } else if let Some(message) = panic.downcast_ref::<String>() {
            message.clone()
        } else {
            "the case panicked with a value that is not a string".to_owned()
        };
        failures.push((name, message));
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// How long a case waits for something that should happen promptly (a watch wake-up).
const WAIT: Duration = Duration::from_secs(10);

/// The event type of the suite's plain numbered events.
const NUMBERED: &str = "conformance.numbered";

/// Deterministic ids for one case: a namespace derived from the case's name.
#[derive(Clone, Copy)]
struct Ids(u64);

impl Ids {
    /// FNV-1a of the name: stable across runs and platforms.
    const fn new(case: &str) -> Self {
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

    fn event(self, n: u64) -> EventId {
        EventId(Uuid::from_u64_pair(self.0, n))
    }

    fn command(self, n: u64) -> Uuid {
        Uuid::from_u64_pair(!self.0, n)
    }
}

/// Panics with the failed step and the error, for results a case expects to be `Ok`.
trait OrFail<T> {
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

fn stream(id: &str) -> StreamId {
    StreamId::new(id).or_fail(format_args!("making stream id {id:?}"))
}

fn raw(value: &Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).or_fail("encoding a payload")
}

fn new_event(id: EventId, event_type: &str, payload: &Value) -> NewEvent {
    NewEvent {
        id,
        event_type: Cow::Owned(event_type.to_owned()),
        schema_version: 1,
        payload: raw(payload),
        metadata: Metadata::new(),
    }
}

/// Events `{"n": n}` for every `n` in `numbers`, with ids `ids.event(n)`.
fn numbered(ids: Ids, numbers: impl IntoIterator<Item = u64>) -> Vec<NewEvent> {
    numbers
        .into_iter()
        .map(|n| new_event(ids.event(n), NUMBERED, &json!({ "n": n })))
        .collect()
}

fn payload(event: &RecordedEvent) -> Value {
    serde_json::from_str(event.payload.get()).or_fail(format_args!(
        "parsing the stored payload of event {} as JSON",
        event.id
    ))
}

fn id_list(events: &[RecordedEvent]) -> Vec<EventId> {
    events.iter().map(|event| event.id).collect()
}

fn version_list(events: &[RecordedEvent]) -> Vec<u64> {
    events
        .iter()
        .map(|event| event.stream_version.get())
        .collect()
}

fn versions(range: std::ops::RangeInclusive<u64>) -> Vec<u64> {
    range.collect()
}

async fn append_ok<S: EventStore>(
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

/// Waits until the global log shows `position`. A gap-free read may hold a committed event back
/// while an older transaction elsewhere on the server is still open (PostgreSQL's global read
/// waits for the oldest one); the cases check contents, not that wait.
async fn settle<S: EventStore>(store: &S, position: Option<LogPosition>) {
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

async fn append_err<S: EventStore>(store: &S, request: AppendRequest) -> AppendError {
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

async fn load<S: EventStore>(
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

async fn load_all<S: EventStore>(store: &S, stream_id: &StreamId) -> Vec<RecordedEvent> {
    load(store, stream_id, StreamVersion::INITIAL).await
}

async fn read_all<S: EventStore>(
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
async fn read_log<S: EventStore>(store: &S, filter: EventFilter<'_>) -> Vec<RecordedEvent> {
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

async fn head<S: EventStore>(store: &S) -> Option<LogPosition> {
    store.head().await.or_fail("reading the head of the log")
}

async fn version_of<S: EventStore>(store: &S, stream_id: &StreamId) -> StreamVersion {
    store
        .stream_version(stream_id)
        .await
        .or_fail(format_args!("reading the version of `{stream_id}`"))
}

async fn find_command<S: EventStore>(store: &S, command_id: Uuid) -> Option<CommandRecord> {
    store
        .find_command(command_id)
        .await
        .or_fail(format_args!("finding command {command_id}"))
}

async fn load_snapshot<S: EventStore>(store: &S, stream_id: &StreamId) -> Option<Snapshot> {
    store
        .load_snapshot(stream_id)
        .await
        .or_fail(format_args!("loading the snapshot of `{stream_id}`"))
}

async fn checkpoint<S: CheckpointStore>(store: &S, projection: &str) -> LogPosition {
    store
        .checkpoint(projection)
        .await
        .or_fail(format_args!("reading the checkpoint of {projection:?}"))
}

async fn move_checkpoint<S: CheckpointStore>(store: &S, projection: &str, to: LogPosition) {
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
async fn join<T>(task: JoinHandle<T>) -> T {
    match task.await {
        Ok(value) => value,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => panic!("a task of the case did not finish: {error}"),
    }
}

/// Asserts `error` is a conflict on `stream_id` expecting `expected` with `actual` found.
fn assert_conflict(
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

fn assert_duplicate_event_id(error: &AppendError, stream_id: &StreamId, event_id: EventId) {
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

fn assert_strictly_increasing(events: &[RecordedEvent], what: &str) {
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

// ---------------------------------------------------------------------------------------------
// Append and load.

/// An appended event loads back unchanged: id, stream, version, type, schema version, payload,
/// metadata (correlation, causation, headers); the store sets a global position and
/// `recorded_at`; `load` and `read_all` agree on what they return.
pub async fn append_then_load_round_trips<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("append_then_load_round_trips");
    let stream_id = stream("conformance-round-trip");
    let payload_one = json!({ "sku": "A-1", "quantity": 3, "tags": ["x", "y"], "gift": false });
    let payload_two = json!({ "reason": "customer asked" });
    let metadata = Metadata::new()
        .with_correlation_id(ids.command(1))
        .with_causation_id(ids.command(2))
        .with_header("user-agent", "conformance-suite/1.0")
        .with_header("tenant", "t-1");
    let first = NewEvent {
        id: ids.event(1),
        event_type: Cow::Borrowed("conformance.item_added"),
        schema_version: 2,
        payload: raw(&payload_one),
        metadata: metadata.clone(),
    };
    let second = NewEvent {
        id: ids.event(2),
        event_type: Cow::Borrowed("conformance.order_cancelled"),
        schema_version: 1,
        payload: raw(&payload_two),
        metadata: Metadata::new(),
    };
    let before = time::OffsetDateTime::now_utc();
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        vec![first, second],
    )
    .await;

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), 2, "two events were appended");
    let (one, two) = (&loaded[0], &loaded[1]);
    assert_eq!(one.id, ids.event(1), "the event id changed");
    assert_eq!(two.id, ids.event(2), "the event id changed");
    assert_eq!(one.stream_id, stream_id);
    assert_eq!(two.stream_id, stream_id);
    assert_eq!(one.stream_version, StreamVersion(1));
    assert_eq!(two.stream_version, StreamVersion(2));
    assert_eq!(one.event_type, "conformance.item_added");
    assert_eq!(two.event_type, "conformance.order_cancelled");
    assert_eq!(one.schema_version, 2, "the schema version changed");
    assert_eq!(two.schema_version, 1, "the schema version changed");
    assert_eq!(payload(one), payload_one, "the payload changed");
    assert_eq!(payload(two), payload_two, "the payload changed");
    assert_eq!(one.metadata, metadata, "the metadata changed");
    assert_eq!(
        two.metadata,
        Metadata::new(),
        "empty metadata came back non-empty"
    );
    assert!(
        one.position.get() > 0,
        "the store assigned no global position"
    );
    assert!(one.log_position() < two.log_position());
    for event in &loaded {
        let skew = (event.recorded_at - before).abs();
        assert!(
            skew < time::Duration::days(1),
            "recorded_at {} is not the time of the append (about {before})",
            event.recorded_at
        );
    }

    let read = read_log(&store, EventFilter::All).await;
    let summary = |events: &[RecordedEvent]| -> Vec<_> {
        events
            .iter()
            .map(|e| {
                (
                    e.id,
                    e.stream_id.clone(),
                    e.stream_version,
                    e.log_position(),
                    e.event_type.clone(),
                    e.schema_version,
                    payload(e),
                    e.metadata.clone(),
                    e.recorded_at,
                )
            })
            .collect()
    };
    assert_eq!(
        summary(&read),
        summary(&loaded),
        "read_all and load return different records"
    );
}

/// Stream versions run 1, 2, 3 ... without holes across several appends of different sizes.
pub async fn versions_run_from_one_without_holes<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("versions_run_from_one_without_holes");
    let stream_id = stream("conformance-versions");
    let mut next = 1;
    for size in [1, 3, 2, 5] {
        let current = version_of(&store, &stream_id).await;
        let committed = append_ok(
            &store,
            &stream_id,
            ExpectedVersion::Exact(current),
            numbered(ids, next..next + size),
        )
        .await;
        assert_eq!(committed.version_after, StreamVersion(next + size - 1));
        next += size;
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        version_list(&loaded),
        versions(1..=11),
        "versions have holes"
    );
    assert_eq!(
        id_list(&loaded),
        (1..=11).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "events load in another order than they were appended"
    );
}

/// [`Committed`] reports the versions before and after the append and the last event's
/// log position.
pub async fn committed_reports_versions_and_position<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("committed_reports_versions_and_position");
    let stream_id = stream("conformance-committed");
    let first = append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=3),
    )
    .await;
    assert_eq!(first.version_before, StreamVersion(0));
    assert_eq!(first.version_after, StreamVersion(3));
    let second = append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(3)),
        numbered(ids, 4..=5),
    )
    .await;
    assert_eq!(second.version_before, StreamVersion(3));
    assert_eq!(second.version_after, StreamVersion(5));

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        first.last_position,
        Some(loaded[2].log_position()),
        "the first commit's last position is not that of version 3"
    );
    assert_eq!(
        second.last_position,
        Some(loaded[4].log_position()),
        "the second commit's last position is not that of version 5"
    );
    assert!(first.last_position < second.last_position);
}

/// `stream_version` is 0 for a new stream and follows its appends, not other streams'.
pub async fn stream_version_follows_appends<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("stream_version_follows_appends");
    let mine = stream("conformance-mine");
    let other = stream("conformance-other");
    assert_eq!(version_of(&store, &mine).await, StreamVersion(0));
    append_ok(&store, &mine, ExpectedVersion::Any, numbered(ids, 1..=2)).await;
    assert_eq!(version_of(&store, &mine).await, StreamVersion(2));
    append_ok(&store, &other, ExpectedVersion::Any, numbered(ids, 3..=9)).await;
    assert_eq!(
        version_of(&store, &mine).await,
        StreamVersion(2),
        "another stream's append moved this stream's version"
    );
    append_ok(&store, &mine, ExpectedVersion::Any, numbered(ids, 10..=12)).await;
    assert_eq!(version_of(&store, &mine).await, StreamVersion(5));
    assert_eq!(version_of(&store, &other).await, StreamVersion(7));
}

/// A stream that was never written loads empty and has version 0, also when others exist.
pub async fn unknown_stream_loads_empty_at_version_zero<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("unknown_stream_loads_empty_at_version_zero");
    append_ok(
        &store,
        &stream("conformance-known"),
        ExpectedVersion::Any,
        numbered(ids, 1..=3),
    )
    .await;
    let unknown = stream("conformance-unknown");
    assert!(load_all(&store, &unknown).await.is_empty());
    assert!(load(&store, &unknown, StreamVersion(2)).await.is_empty());
    assert_eq!(version_of(&store, &unknown).await, StreamVersion::INITIAL);
}

/// `load(stream, after)` returns exactly the versions above `after`.
pub async fn load_after_a_version_returns_the_rest<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("load_after_a_version_returns_the_rest");
    let stream_id = stream("conformance-load-after");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=6),
    )
    .await;
    for (after, expected) in [
        (0, versions(1..=6)),
        (2, versions(3..=6)),
        (5, vec![6]),
        (6, vec![]),
        (100, vec![]),
    ] {
        let loaded = load(&store, &stream_id, StreamVersion(after)).await;
        assert_eq!(
            version_list(&loaded),
            expected,
            "loading after version {after}"
        );
    }
}

/// `fold_stream` (through which the command path loads aggregates) visits exactly what `load`
/// returns after a version, field for field and in version order, skips other streams, and
/// stops when the visitor breaks.
pub async fn fold_stream_visits_what_load_returns<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("fold_stream_visits_what_load_returns");
    let stream_id = stream("conformance-fold");
    let events: Vec<NewEvent> = (0..5)
        .map(|n| {
            new_event(
                ids.event(n),
                NUMBERED,
                &json!({ "n": n, "text": "it's \"quoted\" 🦀" }),
            )
        })
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    let longer = stream("conformance-fold-longer");
    let other = vec![new_event(ids.event(9), NUMBERED, &json!({ "n": 9 }))];
    append_ok(&store, &longer, ExpectedVersion::NoStream, other).await;
    let loaded = load_all(&store, &stream_id).await;
    let fields = |version: StreamVersion, event_type: &str, schema: u32, payload: &RawValue| {
        (
            version,
            event_type.to_owned(),
            schema,
            payload.get().to_owned(),
        )
    };
    for after in [0, 2, 5] {
        let mut visited = Vec::new();
        store
            .fold_stream(&stream_id, StreamVersion(after), |event| {
                visited.push(fields(
                    event.stream_version,
                    event.event_type,
                    event.schema_version,
                    event.payload,
                ));
                Ok(std::ops::ControlFlow::Continue(()))
            })
            .await
            .or_fail(format_args!("folding `{stream_id}` after version {after}"));
        let expected: Vec<_> = loaded
            .iter()
            .filter(|event| event.stream_version.get() > after)
            .map(|event| {
                fields(
                    event.stream_version,
                    &event.event_type,
                    event.schema_version,
                    &event.payload,
                )
            })
            .collect();
        assert_eq!(
            visited, expected,
            "fold_stream after version {after} differs from load"
        );
    }
    let mut visits = 0;
    store
        .fold_stream(&stream_id, StreamVersion::INITIAL, |_| {
            visits += 1;
            Ok(if visits == 2 {
                std::ops::ControlFlow::Break(())
            } else {
                std::ops::ControlFlow::Continue(())
            })
        })
        .await
        .or_fail("folding until the visitor breaks");
    assert_eq!(visits, 2, "fold_stream went on after the visitor broke");
}

/// Loading a stream returns its events only, also when other ids share a prefix with it.
pub async fn load_returns_only_the_streams_events<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("load_returns_only_the_streams_events");
    let names = ["order-1", "order-10", "order-1%", "order-_", "Order-1"];
    let mut n = 0;
    for round in 0..2 {
        for name in names {
            n += 1;
            let event = new_event(
                ids.event(n),
                NUMBERED,
                &json!({ "stream": name, "round": round }),
            );
            append_ok(&store, &stream(name), ExpectedVersion::Any, vec![event]).await;
        }
    }
    for name in names {
        let stream_id = stream(name);
        let loaded = load_all(&store, &stream_id).await;
        assert_eq!(version_list(&loaded), [1, 2], "loading `{name}`");
        for event in &loaded {
            assert_eq!(
                event.stream_id, stream_id,
                "loading `{name}` returned another stream's event"
            );
            assert_eq!(
                payload(event)["stream"],
                name,
                "loading `{name}` returned another stream's event"
            );
        }
    }
}

/// A stream of 5,000 events, appended in batches of 500, loads completely and in order.
pub async fn long_stream_loads_completely_in_order<S: EventStore + CheckpointStore>(store: S) {
    const TOTAL: u64 = 5_000;
    const BATCH: u64 = 500;
    let ids = Ids::new("long_stream_loads_completely_in_order");
    let stream_id = stream("conformance-long");
    for start in (1..=TOTAL).step_by(BATCH as usize) {
        append_ok(
            &store,
            &stream_id,
            ExpectedVersion::Exact(StreamVersion(start - 1)),
            numbered(ids, start..start + BATCH),
        )
        .await;
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        loaded.len() as u64,
        TOTAL,
        "the stream did not load completely"
    );
    for (index, event) in loaded.iter().enumerate() {
        let n = index as u64 + 1;
        assert_eq!(
            event.stream_version,
            StreamVersion(n),
            "version out of order"
        );
        assert_eq!(event.id, ids.event(n), "event out of order at version {n}");
    }
    assert_eq!(payload(&loaded[4_321])["n"], 4_322);
    let rest = load(&store, &stream_id, StreamVersion(4_321)).await;
    assert_eq!(version_list(&rest), versions(4_322..=TOTAL));
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(TOTAL));
}

// ---------------------------------------------------------------------------------------------
// Expected versions.

/// `NoStream` on a stream with events is a conflict naming the actual version.
pub async fn no_stream_conflicts_on_existing_stream<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("no_stream_conflicts_on_existing_stream");
    let stream_id = stream("conformance-no-stream");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=2),
    )
    .await;
    // One event and a batch, expecting no stream or version 0: stores may take other
    // statements for each.
    let attempts = [
        (ExpectedVersion::NoStream, 3..=3),
        (ExpectedVersion::NoStream, 4..=6),
        (ExpectedVersion::Exact(StreamVersion::INITIAL), 7..=7),
        (ExpectedVersion::Exact(StreamVersion::INITIAL), 8..=10),
    ];
    for (expected, events) in attempts {
        let error = append_err(
            &store,
            AppendRequest::new(stream_id.clone(), expected, numbered(ids, events)),
        )
        .await;
        assert_conflict(&error, &stream_id, expected, StreamVersion(2));
    }
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(2));
}

/// `Exact(n)` on a stream at another version is a conflict naming the actual version,
/// whether `n` is behind, ahead or zero.
pub async fn exact_conflict_reports_actual_version<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("exact_conflict_reports_actual_version");
    let stream_id = stream("conformance-exact");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=3),
    )
    .await;
    assert_exact_conflicts_at_three(&store, &stream_id, ids, &[1, 4, 0, 2], false).await;
}

/// On a stream at version 3, appends one event and then a batch of two expecting each of the
/// `wrong` versions (marked as read from the stream when `read`): every one must be a conflict
/// naming version 3.
async fn assert_exact_conflicts_at_three<S: EventStore>(
    store: &S,
    stream_id: &StreamId,
    ids: Ids,
    wrong: &[u64],
    read: bool,
) {
    for (attempt, &wrong) in wrong.iter().enumerate() {
        let expected = ExpectedVersion::Exact(StreamVersion(wrong));
        let attempt = attempt as u64;
        for events in [vec![100 + attempt], vec![200 + attempt, 300 + attempt]] {
            let mut request =
                AppendRequest::new(stream_id.clone(), expected, numbered(ids, events));
            request.expected_was_read = read;
            let error = append_err(store, request).await;
            assert_conflict(&error, stream_id, expected, StreamVersion(3));
        }
    }
}

/// An append whose expected version was read from the stream
/// ([`AppendRequest::expected_was_read`], as the command path sends it) is still refused when
/// another writer came first: a conflict naming the actual version, with nothing written; at
/// the current version it appends, one event or a batch, without holes.
pub async fn read_expected_version_conflicts_when_behind<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("read_expected_version_conflicts_when_behind");
    let stream_id = stream("conformance-read-version");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=3),
    )
    .await;
    assert_exact_conflicts_at_three(&store, &stream_id, ids, &[0, 1, 2], true).await;
    assert_eq!(
        version_list(&load_all(&store, &stream_id).await),
        versions(1..=3)
    );

    for (current, events) in [(3, vec![4]), (4, vec![5, 6, 7])] {
        let expected = ExpectedVersion::Exact(StreamVersion(current));
        let request =
            AppendRequest::new(stream_id.clone(), expected, numbered(ids, events.clone()))
                .expected_was_read();
        let committed = store.append(request).await.or_fail(format_args!(
            "appending {events:?} expecting {expected}, read"
        ));
        assert_eq!(committed.version_before, StreamVersion(current));
        assert_eq!(
            committed.version_after,
            StreamVersion(current + events.len() as u64)
        );
        settle(&store, committed.last_position).await;
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(version_list(&loaded), versions(1..=7));
    let numbers: Vec<u64> = loaded
        .iter()
        .filter_map(|event| payload(event)["n"].as_u64())
        .collect();
    assert_eq!(numbers, versions(1..=7), "the refused events were written");
}

/// `StreamExists` on a stream without events is a conflict at version 0, and writes nothing.
pub async fn stream_exists_conflicts_on_empty_stream<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("stream_exists_conflicts_on_empty_stream");
    let stream_id = stream("conformance-stream-exists");
    let error = append_err(
        &store,
        AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::StreamExists,
            numbered(ids, 1..=2),
        ),
    )
    .await;
    assert_conflict(
        &error,
        &stream_id,
        ExpectedVersion::StreamExists,
        StreamVersion(0),
    );
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(0));
    assert_eq!(
        head(&store).await,
        None,
        "the failed append wrote to the log"
    );
}

/// An append made [`without_position`](AppendRequest::without_position), as the command path
/// makes them, reports its versions and conflicts and writes exactly as any other: one event
/// and batches, at exact versions read from the stream (`expected_was_read`) or not, and
/// `NoStream`. Its `last_position` is `None` or the last event's true position.
pub async fn appends_without_position_keep_versions_and_conflicts<
    S: EventStore + CheckpointStore,
>(
    store: S,
) {
    let ids = Ids::new("appends_without_position_keep_versions_and_conflicts");
    let stream_id = stream("conformance-without-position");
    let request = |expected, numbers: std::ops::RangeInclusive<u64>, was_read: bool| {
        let mut request = AppendRequest::new(stream_id.clone(), expected, numbered(ids, numbers))
            .without_position();
        request.expected_was_read = was_read;
        request
    };
    let exact = |version| ExpectedVersion::Exact(StreamVersion(version));
    let appends = [
        (ExpectedVersion::NoStream, 1..=1, false),
        (exact(1), 2..=3, true),
        (exact(3), 4..=4, false),
        (exact(4), 5..=6, false),
        (exact(6), 7..=7, true),
    ];
    let mut committed = Vec::new();
    for (expected, numbers, was_read) in appends {
        let (first, last) = (*numbers.start(), *numbers.end());
        let done = store
            .append(request(expected, numbers, was_read))
            .await
            .or_fail(format_args!(
                "appending events {first} to {last} without a position expecting {expected}"
            ));
        assert_eq!(
            (done.version_before, done.version_after),
            (StreamVersion(first - 1), StreamVersion(last)),
            "an append without a position reported other versions"
        );
        committed.push(done);
    }
    // Behind the stream (at 7): refused whether the version was read or not, for one event
    // and a batch, and `NoStream` too.
    let behind = [
        (exact(2), false, 1),
        (exact(2), false, 2),
        (exact(2), true, 1),
        (exact(2), true, 2),
        (ExpectedVersion::NoStream, false, 1),
        (ExpectedVersion::NoStream, false, 2),
    ];
    for (expected, was_read, count) in behind {
        match append_err(&store, request(expected, 100..=99 + count, was_read)).await {
            AppendError::Conflict { actual, .. } => assert_eq!(
                actual,
                StreamVersion(7),
                "a conflict without a position reported another actual version"
            ),
            other => panic!(
                "{count} event(s) without a position expecting {expected} (read: {was_read}) \
                 should conflict, got {other}"
            ),
        }
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        id_list(&loaded),
        (1..=7).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "appends without a position wrote other events than were committed"
    );
    assert_eq!(version_list(&loaded), versions(1..=7));
    for done in committed {
        if let Some(position) = done.last_position {
            let last = &loaded[usize::try_from(done.version_after.get() - 1).or_fail("an index")];
            assert_eq!(
                position,
                last.log_position(),
                "an append without a position reported a wrong one"
            );
        }
    }
}

/// Each expectation appends when it holds: `NoStream` and `Exact(0)` on new streams,
/// `StreamExists` and `Exact(n)` on existing ones.
pub async fn expected_versions_that_hold_append<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("expected_versions_that_hold_append");
    let first = stream("conformance-holds-1");
    let second = stream("conformance-holds-2");
    let steps = [
        (&first, ExpectedVersion::NoStream, 1),
        (&first, ExpectedVersion::StreamExists, 2),
        (&first, ExpectedVersion::Exact(StreamVersion(2)), 3),
        (&second, ExpectedVersion::Exact(StreamVersion(0)), 1),
        (&second, ExpectedVersion::Exact(StreamVersion(1)), 2),
        (&second, ExpectedVersion::StreamExists, 3),
    ];
    for (n, (stream_id, expected, version_after)) in (1..).zip(steps) {
        let committed = append_ok(&store, stream_id, expected, numbered(ids, [n])).await;
        assert_eq!(committed.version_after, StreamVersion(version_after));
    }
    assert_eq!(version_list(&load_all(&store, &first).await), [1, 2, 3]);
    assert_eq!(version_list(&load_all(&store, &second).await), [1, 2, 3]);
}

/// `Any` appends to new and existing streams alike, after any other writes.
pub async fn any_always_appends<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("any_always_appends");
    let stream_id = stream("conformance-any");
    let other = stream("conformance-any-other");
    let mut next = 1;
    for size in [1, 2, 1, 3] {
        let version_before = version_of(&store, &stream_id).await;
        let committed = append_ok(
            &store,
            &stream_id,
            ExpectedVersion::Any,
            numbered(ids, next..next + size),
        )
        .await;
        next += size;
        assert_eq!(committed.version_before, version_before);
        assert_eq!(committed.version_after, version_before.advanced_by(size));
        append_ok(
            &store,
            &other,
            ExpectedVersion::Any,
            numbered(ids, [1_000 + next]),
        )
        .await;
    }
    assert_eq!(
        version_list(&load_all(&store, &stream_id).await),
        versions(1..=7)
    );
}

/// A conflict writes nothing: the stream, its version, the head and the log are unchanged,
/// and the refused events' ids are still free to use.
pub async fn conflict_writes_nothing<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("conflict_writes_nothing");
    let stream_id = stream("conformance-conflict-nothing");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=2),
    )
    .await;
    let head_before = head(&store).await;
    let loaded_before = id_list(&load_all(&store, &stream_id).await);

    for expected in [
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(StreamVersion(1)),
        ExpectedVersion::Exact(StreamVersion(3)),
    ] {
        let error = append_err(
            &store,
            AppendRequest::new(stream_id.clone(), expected, numbered(ids, 3..=4)),
        )
        .await;
        assert_conflict(&error, &stream_id, expected, StreamVersion(2));
    }
    assert_eq!(head(&store).await, head_before, "a conflict moved the head");
    assert_eq!(id_list(&load_all(&store, &stream_id).await), loaded_before);
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(2));
    assert_eq!(
        read_log(&store, EventFilter::All).await.len(),
        2,
        "a conflict wrote to the log"
    );

    // The refused ids were not stored: the same events append once the version is right.
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(2)),
        numbered(ids, 3..=4),
    )
    .await;
    assert_eq!(
        version_list(&load_all(&store, &stream_id).await),
        versions(1..=4)
    );
}

/// Sixteen tasks race to append to one stream with `Exact(current)` until each has appended
/// its share: every version has exactly one winner, no version is skipped, and nothing is lost.
/// Half of them mark the version as read ([`AppendRequest::expected_was_read`]).
pub async fn concurrent_appends_to_one_stream_have_one_winner_per_version<
    S: EventStore + CheckpointStore,
>(
    store: S,
) {
    const TASKS: u64 = 16;
    const PER_TASK: u64 = 20;
    const MAX_ATTEMPTS: u64 = 100_000;
    let ids = Ids::new("concurrent_appends_to_one_stream_have_one_winner_per_version");
    let stream_id = stream("conformance-race");
    // The first round is a deterministic race: every task has read version 0 before any
    // appends, so exactly one of them may win it.
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS as usize));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let stream_id = stream_id.clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            let mut won = Vec::new();
            let mut won_first_round = false;
            let mut attempts = 0;
            while (won.len() as u64) < PER_TASK {
                attempts += 1;
                assert!(
                    attempts <= MAX_ATTEMPTS,
                    "task {task} appended only {} events in {MAX_ATTEMPTS} attempts",
                    won.len()
                );
                let current = version_of(&store, &stream_id).await;
                if attempts == 1 {
                    start.wait().await;
                } else {
                    // Deciding takes time: let the other tasks read the same version meanwhile.
                    tokio::task::yield_now().await;
                }
                let k = won.len() as u64;
                let event = new_event(
                    ids.event(task * 1_000 + k),
                    "conformance.raced",
                    &json!({ "task": task, "k": k }),
                );
                let expected = ExpectedVersion::Exact(current);
                let mut request = AppendRequest::new(stream_id.clone(), expected, vec![event]);
                // Half the writers say they read the version (they did), so a store that then
                // relies on its unique key alone races the stores' full check too.
                request.expected_was_read = task % 2 == 0;
                match store.append(request).await {
                    Ok(committed) => {
                        assert_eq!(committed.version_before, current);
                        assert_eq!(committed.version_after, current.next());
                        won.push(committed.version_after.get());
                        won_first_round |= attempts == 1;
                    }
                    Err(AppendError::Conflict {
                        expected: found_expected,
                        actual,
                        ..
                    }) => {
                        assert_eq!(found_expected, expected);
                        assert_ne!(
                            actual, current,
                            "a conflict expecting {expected} reports that very version as actual"
                        );
                        tokio::task::yield_now().await;
                    }
                    Err(other) => {
                        panic!("task {task}: unexpected append error: {other} ({other:?})")
                    }
                }
            }
            (won, won_first_round)
        }));
    }
    let mut won = Vec::new();
    let mut first_round_winners = 0;
    for task in tasks {
        let (versions, won_first_round) = join(task).await;
        won.extend(versions);
        first_round_winners += u32::from(won_first_round);
    }
    assert_eq!(
        first_round_winners, 1,
        "{TASKS} appends expecting version 0 at once: exactly one may win"
    );
    won.sort_unstable();
    assert_eq!(
        won,
        versions(1..=TASKS * PER_TASK),
        "versions were won twice or skipped"
    );

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(version_list(&loaded), versions(1..=TASKS * PER_TASK));
    let mut next_k = vec![0_u64; TASKS as usize];
    for event in &loaded {
        let value = payload(event);
        let (Some(task), Some(k)) = (value["task"].as_u64(), value["k"].as_u64()) else {
            panic!("unexpected payload {value}");
        };
        assert_eq!(
            event.id,
            ids.event(task * 1_000 + k),
            "payload and id disagree"
        );
        assert_eq!(
            k, next_k[task as usize],
            "task {task}'s events are stored out of order or twice"
        );
        next_k[task as usize] += 1;
    }
    assert!(
        next_k.iter().all(|&k| k == PER_TASK),
        "events were lost: {next_k:?}"
    );
}

/// A batch whose last event has an id already stored fails as a whole: none of its events is
/// written, and its other ids remain free.
pub async fn failed_batch_writes_nothing<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("failed_batch_writes_nothing");
    let existing = stream("conformance-batch-existing");
    let target = stream("conformance-batch-target");
    append_ok(
        &store,
        &existing,
        ExpectedVersion::NoStream,
        numbered(ids, [1]),
    )
    .await;
    let head_before = head(&store).await;

    let batch = numbered(ids, [2, 3, 4, 1]);
    let error = append_err(
        &store,
        AppendRequest::new(target.clone(), ExpectedVersion::Any, batch),
    )
    .await;
    assert_duplicate_event_id(&error, &target, ids.event(1));
    assert!(
        load_all(&store, &target).await.is_empty(),
        "part of a failed batch was written"
    );
    assert_eq!(version_of(&store, &target).await, StreamVersion(0));
    assert_eq!(
        head(&store).await,
        head_before,
        "a failed batch moved the head"
    );
    assert_eq!(read_log(&store, EventFilter::All).await.len(), 1);

    append_ok(
        &store,
        &target,
        ExpectedVersion::NoStream,
        numbered(ids, [2, 3, 4]),
    )
    .await;
    assert_eq!(version_list(&load_all(&store, &target).await), [1, 2, 3]);
}

/// An event id already stored is refused, in its own stream and in another.
pub async fn duplicate_event_id_is_refused<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("duplicate_event_id_is_refused");
    let first = stream("conformance-dup-id-1");
    let second = stream("conformance-dup-id-2");
    append_ok(
        &store,
        &first,
        ExpectedVersion::NoStream,
        numbered(ids, [1]),
    )
    .await;
    let again = append_err(
        &store,
        AppendRequest::new(first.clone(), ExpectedVersion::Any, numbered(ids, [1])),
    )
    .await;
    assert_duplicate_event_id(&again, &first, ids.event(1));
    let elsewhere = append_err(
        &store,
        AppendRequest::new(second.clone(), ExpectedVersion::Any, numbered(ids, [1])),
    )
    .await;
    assert_duplicate_event_id(&elsewhere, &second, ids.event(1));
    assert_eq!(version_of(&store, &first).await, StreamVersion(1));
    assert_eq!(version_of(&store, &second).await, StreamVersion(0));
}

/// A batch that holds the same event id twice is refused and writes nothing.
pub async fn duplicate_event_id_within_a_batch_is_refused<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("duplicate_event_id_within_a_batch_is_refused");
    let stream_id = stream("conformance-dup-in-batch");
    let error = append_err(
        &store,
        AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::NoStream,
            numbered(ids, [1, 2, 1]),
        ),
    )
    .await;
    assert_duplicate_event_id(&error, &stream_id, ids.event(1));
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(0));
    assert_eq!(head(&store).await, None);
}

/// An append with no events and no command id succeeds without writing anything: the
/// versions before and after are equal and there is no last position.
pub async fn empty_append_without_command_writes_nothing<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("empty_append_without_command_writes_nothing");
    let existing = stream("conformance-empty-existing");
    let fresh = stream("conformance-empty-fresh");
    append_ok(
        &store,
        &existing,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=2),
    )
    .await;
    let head_before = head(&store).await;

    let committed = append_ok(&store, &existing, ExpectedVersion::Any, Vec::new()).await;
    assert_eq!(
        committed,
        Committed::new(StreamVersion(2), StreamVersion(2), None)
    );
    let committed = append_ok(&store, &fresh, ExpectedVersion::NoStream, Vec::new()).await;
    assert_eq!(
        committed,
        Committed::new(StreamVersion(0), StreamVersion(0), None)
    );
    assert_eq!(
        head(&store).await,
        head_before,
        "an empty append moved the head"
    );
    assert_eq!(version_of(&store, &fresh).await, StreamVersion(0));
    assert_eq!(version_list(&load_all(&store, &existing).await), [1, 2]);
}

// ---------------------------------------------------------------------------------------------
// Command sessions.

/// The versions and payload numbers `session` folds from `stream_id` after `after`.
async fn fold_in_session(
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    after: StreamVersion,
) -> Vec<(u64, u64)> {
    let mut seen = Vec::new();
    session
        .fold_stream(stream_id, after, |event| {
            let value: Value = serde_json::from_str(event.payload.get())
                .or_fail("parsing a folded payload as JSON");
            seen.push((event.stream_version.get(), value["n"].as_u64().unwrap_or(0)));
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .await
        .or_fail(format_args!(
            "folding `{stream_id}` after {after} in a session"
        ));
    seen
}

/// An append as the command path makes it after loading the stream at `version`.
fn decided(stream_id: &StreamId, version: u64, events: Vec<NewEvent>) -> AppendRequest {
    let mut request = AppendRequest::new(
        stream_id.clone(),
        ExpectedVersion::Exact(StreamVersion(version)),
        events,
    );
    request.expected_was_read = true;
    request.without_position = true;
    request
}

/// A command session keeps the store's contract: it folds what was appended (through it or
/// the store), its appends check their version and record their command id, it finds
/// commands, and it goes on working after [`CommandSession::release`].
pub async fn a_session_folds_appends_and_finds_commands<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("a_session_folds_appends_and_finds_commands");
    let stream_id = stream("conformance-session");
    let mut session = store.command_session();
    assert_eq!(
        fold_in_session(&mut session, &stream_id, StreamVersion::INITIAL).await,
        [],
        "a new stream folds nothing"
    );
    let committed = session
        .append(decided(&stream_id, 0, numbered(ids, 1..=2)))
        .await
        .or_fail("appending two events to a new stream in a session");
    assert_eq!(
        (committed.version_before, committed.version_after),
        (StreamVersion(0), StreamVersion(2))
    );
    assert_eq!(
        fold_in_session(&mut session, &stream_id, StreamVersion::INITIAL).await,
        [(1, 1), (2, 2)],
        "the session folds its own append"
    );
    let command_id = ids.command(1);
    session
        .append(decided(&stream_id, 2, numbered(ids, [3])).with_command_id(command_id))
        .await
        .or_fail("appending with a command id in a session");
    let record = CommandRecord::new(
        command_id,
        stream_id.clone(),
        StreamVersion(2),
        StreamVersion(3),
    );
    assert_eq!(
        session
            .find_command(command_id)
            .await
            .or_fail("finding the command in a session"),
        Some(record.clone())
    );
    assert_eq!(find_command(&store, command_id).await, Some(record.clone()));
    match session
        .append(decided(&stream_id, 3, numbered(ids, [4])).with_command_id(command_id))
        .await
    {
        Err(AppendError::DuplicateCommand(found)) => assert_eq!(found, record),
        other => panic!("a recorded command id appended again in a session: {other:?}"),
    }
    session.release();
    let wrong = ExpectedVersion::Exact(StreamVersion(2));
    let mut behind = decided(&stream_id, 2, numbered(ids, [5]));
    behind.expected_was_read = false;
    match session.append(behind).await {
        Err(error) => assert_conflict(&error, &stream_id, wrong, StreamVersion(3)),
        Ok(committed) => panic!("an append behind the stream committed {committed:?}"),
    }
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(3)),
        numbered(ids, [6]),
    )
    .await;
    assert_eq!(
        fold_in_session(&mut session, &stream_id, StreamVersion(2)).await,
        [(3, 3), (4, 6)],
        "after a release, the session folds what the store appended"
    );
    assert_eq!(
        version_list(&load_all(&store, &stream_id).await),
        versions(1..=4)
    );
}

/// A session whose append lost to another writer folds the stream again and appends at the
/// new version, as the command path retries: the conflict names the actual version and
/// writes nothing.
pub async fn a_session_appends_again_after_a_conflict<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("a_session_appends_again_after_a_conflict");
    let stream_id = stream("conformance-session-conflict");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=2),
    )
    .await;
    let mut session = store.command_session();
    assert_eq!(
        fold_in_session(&mut session, &stream_id, StreamVersion::INITIAL).await,
        [(1, 1), (2, 2)]
    );
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(2)),
        numbered(ids, [3]),
    )
    .await;
    for events in [vec![10], vec![11, 12]] {
        match session
            .append(decided(&stream_id, 2, numbered(ids, events)))
            .await
        {
            Err(error) => assert_conflict(
                &error,
                &stream_id,
                ExpectedVersion::Exact(StreamVersion(2)),
                StreamVersion(3),
            ),
            Ok(committed) => panic!("an append that lost the race committed {committed:?}"),
        }
    }
    assert_eq!(
        fold_in_session(&mut session, &stream_id, StreamVersion(2)).await,
        [(3, 3)],
        "the conflict wrote something, or the session missed the winner's event"
    );
    session
        .append(decided(&stream_id, 3, numbered(ids, [4, 5])))
        .await
        .or_fail("appending in a session after the conflict");
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(version_list(&loaded), versions(1..=5));
    let numbers: Vec<u64> = loaded
        .iter()
        .map(|event| payload(event)["n"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(numbers, [1, 2, 3, 4, 5]);
}

/// Many sessions on one stream at once, each folding and appending one event per command and
/// retrying its conflicts in the same session, as contended commands do: every command lands
/// once, at versions without holes.
pub async fn concurrent_sessions_on_one_stream_lose_no_append<S: EventStore + CheckpointStore>(
    store: S,
) {
    const TASKS: u64 = 8;
    const PER_TASK: u64 = 10;
    const MAX_ATTEMPTS: u64 = 100_000;
    let ids = Ids::new("concurrent_sessions_on_one_stream_lose_no_append");
    let stream_id = stream("conformance-session-race");
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let stream_id = stream_id.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0;
            for k in 0..PER_TASK {
                let mut session = store.command_session();
                let mut version = 0;
                loop {
                    attempts += 1;
                    assert!(attempts <= MAX_ATTEMPTS, "task {task} never got its turn");
                    let folded =
                        fold_in_session(&mut session, &stream_id, StreamVersion(version)).await;
                    version = folded.last().map_or(version, |(folded, _)| *folded);
                    // Deciding takes time: let the other tasks read the same version meanwhile.
                    tokio::task::yield_now().await;
                    let event = new_event(
                        ids.event(task * 1_000 + k),
                        NUMBERED,
                        &json!({ "n": task * 1_000 + k }),
                    );
                    match session
                        .append(decided(&stream_id, version, vec![event]))
                        .await
                    {
                        Ok(committed) => {
                            assert_eq!(committed.version_after, StreamVersion(version + 1));
                            break;
                        }
                        Err(AppendError::Conflict { actual, .. }) => {
                            assert!(actual.get() > version, "task {task}: conflict at {actual}");
                        }
                        Err(other) => {
                            panic!("task {task}: unexpected append error: {other} ({other:?})")
                        }
                    }
                }
            }
        }));
    }
    for task in tasks {
        join(task).await;
    }
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(version_list(&loaded), versions(1..=TASKS * PER_TASK));
    let mut landed: Vec<u64> = loaded
        .iter()
        .map(|event| payload(event)["n"].as_u64().unwrap_or(u64::MAX))
        .collect();
    landed.sort_unstable();
    let expected: Vec<u64> = (0..TASKS)
        .flat_map(|task| (0..PER_TASK).map(move |k| task * 1_000 + k))
        .collect();
    assert_eq!(landed, expected, "a command was lost or landed twice");
}

// ---------------------------------------------------------------------------------------------
// Idempotent commands.

/// An append with a command id records which stream and versions the command wrote.
pub async fn find_command_returns_the_record<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("find_command_returns_the_record");
    let stream_id = stream("conformance-command");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=3),
    )
    .await;
    let command_id = ids.command(1);
    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Exact(StreamVersion(3)),
                numbered(ids, 4..=5),
            )
            .with_command_id(command_id),
        )
        .await
        .or_fail("appending with a command id");
    assert_eq!(
        find_command(&store, command_id).await,
        Some(CommandRecord::new(
            command_id,
            stream_id,
            StreamVersion(3),
            StreamVersion(5)
        ))
    );
}

/// An id never recorded finds nothing.
pub async fn unknown_command_is_not_found<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("unknown_command_is_not_found");
    assert_eq!(find_command(&store, ids.command(1)).await, None);
    store
        .append(
            AppendRequest::new(
                stream("conformance-some-command"),
                ExpectedVersion::Any,
                numbered(ids, [1]),
            )
            .with_command_id(ids.command(2)),
        )
        .await
        .or_fail("appending with a command id");
    assert_eq!(find_command(&store, ids.command(1)).await, None);
}

/// A second append with a recorded command id fails with the first append's record, whatever
/// stream or version it names, and writes nothing.
pub async fn duplicate_command_is_refused_with_its_record<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("duplicate_command_is_refused_with_its_record");
    let stream_id = stream("conformance-dup-command");
    let other = stream("conformance-dup-command-other");
    let command_id = ids.command(1);
    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::NoStream,
                numbered(ids, 1..=2),
            )
            .with_command_id(command_id),
        )
        .await
        .or_fail("appending with a command id");
    let record = CommandRecord::new(
        command_id,
        stream_id.clone(),
        StreamVersion(0),
        StreamVersion(2),
    );
    let head_before = head(&store).await;

    for (target, expected) in [
        (&stream_id, ExpectedVersion::Exact(StreamVersion(2))),
        (&stream_id, ExpectedVersion::NoStream),
        (&other, ExpectedVersion::Any),
    ] {
        let error = append_err(
            &store,
            AppendRequest::new(target.clone(), expected, numbered(ids, 3..=4))
                .with_command_id(command_id),
        )
        .await;
        match error {
            AppendError::DuplicateCommand(found) => {
                assert_eq!(found, record, "the duplicate reports another record")
            }
            other => panic!("expected a duplicate command, got: {other} ({other:?})"),
        }
    }
    assert_eq!(
        head(&store).await,
        head_before,
        "a duplicate command wrote to the log"
    );
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(2));
    assert_eq!(version_of(&store, &other).await, StreamVersion(0));
    assert_eq!(find_command(&store, command_id).await, Some(record));
    // The refused events' ids were not stored.
    append_ok(
        &store,
        &other,
        ExpectedVersion::NoStream,
        numbered(ids, 3..=4),
    )
    .await;
}

/// A command that decided no events is recorded by an empty append with its id: the record
/// has equal versions, nothing is written, and the id is then refused as a duplicate.
pub async fn no_op_command_is_recorded<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("no_op_command_is_recorded");
    let stream_id = stream("conformance-no-op");
    let fresh = stream("conformance-no-op-fresh");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, [1]),
    )
    .await;
    let head_before = head(&store).await;

    let committed = store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Exact(StreamVersion(1)),
                Vec::new(),
            )
            .with_command_id(ids.command(1)),
        )
        .await
        .or_fail("recording a no-op command");
    assert_eq!(
        committed,
        Committed::new(StreamVersion(1), StreamVersion(1), None)
    );
    let committed = store
        .append(
            AppendRequest::new(fresh.clone(), ExpectedVersion::NoStream, Vec::new())
                .with_command_id(ids.command(2)),
        )
        .await
        .or_fail("recording a no-op command on a new stream");
    assert_eq!(
        committed,
        Committed::new(StreamVersion(0), StreamVersion(0), None)
    );

    let record = CommandRecord::new(
        ids.command(1),
        stream_id.clone(),
        StreamVersion(1),
        StreamVersion(1),
    );
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        Some(record.clone())
    );
    assert_eq!(
        find_command(&store, ids.command(2)).await,
        Some(CommandRecord::new(
            ids.command(2),
            fresh.clone(),
            StreamVersion(0),
            StreamVersion(0)
        ))
    );
    assert_eq!(
        head(&store).await,
        head_before,
        "a no-op command wrote to the log"
    );
    assert_eq!(version_of(&store, &fresh).await, StreamVersion(0));

    let error = append_err(
        &store,
        AppendRequest::new(stream_id, ExpectedVersion::Any, Vec::new())
            .with_command_id(ids.command(1)),
    )
    .await;
    match error {
        AppendError::DuplicateCommand(found) => assert_eq!(found, record),
        other => panic!("expected a duplicate command, got: {other} ({other:?})"),
    }
}

/// A command id is recorded with the fingerprint and the outcome the append gives it, and read
/// back with them: by [`EventStore::find_command`], a session, and a duplicate's error.
pub async fn command_record_keeps_fingerprint_and_outcome<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("command_record_keeps_fingerprint_and_outcome");
    let stream_id = stream("conformance-fingerprint");
    let fingerprint = CommandFingerprint::from_bytes([0xa5; 32]);
    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::NoStream,
                numbered(ids, 1..=2),
            )
            .with_command_id(ids.command(1))
            .with_command_fingerprint(fingerprint),
        )
        .await
        .or_fail("appending with a command id and a fingerprint");
    let record = CommandRecord::new(
        ids.command(1),
        stream_id.clone(),
        StreamVersion(0),
        StreamVersion(2),
    )
    .with_fingerprint(Some(fingerprint));
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        Some(record.clone())
    );
    let in_session = store
        .command_session()
        .find_command(ids.command(1))
        .await
        .or_fail("finding the command in a session");
    assert_eq!(
        in_session,
        Some(record.clone()),
        "a session reads another record"
    );
    let error = append_err(
        &store,
        AppendRequest::new(stream_id.clone(), ExpectedVersion::Any, numbered(ids, [3]))
            .with_command_id(ids.command(1))
            .with_command_fingerprint(CommandFingerprint::from_bytes([0x5a; 32])),
    )
    .await;
    match error {
        AppendError::DuplicateCommand(found) => assert_eq!(
            found, record,
            "the duplicate reports the record without its fingerprint"
        ),
        other => panic!("expected a duplicate command, got: {other} ({other:?})"),
    }
    // Without a fingerprint, none is recorded.
    store
        .append(
            AppendRequest::new(stream_id.clone(), ExpectedVersion::Any, numbered(ids, [4]))
                .with_command_id(ids.command(2)),
        )
        .await
        .or_fail("appending with a command id alone");
    assert_eq!(
        find_command(&store, ids.command(2)).await,
        Some(CommandRecord::new(
            ids.command(2),
            stream_id,
            StreamVersion(2),
            StreamVersion(3)
        ))
    );
}

/// A refusal ([`AppendRequest::refusal`]) records its command as refused at the version it
/// was decided on, writes no event, and is checked against that version: on a stream that
/// moved on it conflicts and records nothing.
pub async fn refusal_is_recorded_against_its_version<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("refusal_is_recorded_against_its_version");
    let stream_id = stream("conformance-refusal");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, 1..=2),
    )
    .await;
    let head_before = head(&store).await;
    let fingerprint = CommandFingerprint::from_bytes([7; 32]);

    let stale = append_err(
        &store,
        AppendRequest::refusal(
            stream_id.clone(),
            ExpectedVersion::Exact(StreamVersion(1)),
            ids.command(1),
            Some(fingerprint),
        ),
    )
    .await;
    assert_conflict(
        &stale,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(1)),
        StreamVersion(2),
    );
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        None,
        "a refusal that conflicted was recorded"
    );

    let committed = store
        .append(AppendRequest::refusal(
            stream_id.clone(),
            ExpectedVersion::Exact(StreamVersion(2)),
            ids.command(1),
            Some(fingerprint),
        ))
        .await
        .or_fail("recording a refusal");
    assert_eq!(
        committed,
        Committed::new(StreamVersion(2), StreamVersion(2), None)
    );
    let record = CommandRecord::new(
        ids.command(1),
        stream_id.clone(),
        StreamVersion(2),
        StreamVersion(2),
    )
    .with_fingerprint(Some(fingerprint))
    .with_outcome(CommandOutcome::Refused);
    assert_eq!(
        find_command(&store, ids.command(1)).await,
        Some(record.clone())
    );
    assert_eq!(
        head(&store).await,
        head_before,
        "a refusal wrote to the log"
    );
    assert_eq!(version_of(&store, &stream_id).await, StreamVersion(2));

    let again = append_err(
        &store,
        AppendRequest::new(stream_id, ExpectedVersion::Any, numbered(ids, [3]))
            .with_command_id(ids.command(1)),
    )
    .await;
    match again {
        AppendError::DuplicateCommand(found) => assert_eq!(found, record),
        other => panic!("expected a duplicate command, got: {other} ({other:?})"),
    }
}

/// An append that fails (a conflict, a duplicate event id) does not record its command id:
/// the command may be retried with the same id.
pub async fn failed_append_does_not_record_its_command<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("failed_append_does_not_record_its_command");
    let stream_id = stream("conformance-failed-command");
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::NoStream,
        numbered(ids, [1]),
    )
    .await;
    let command_id = ids.command(1);

    let conflict = append_err(
        &store,
        AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::NoStream,
            numbered(ids, [2]),
        )
        .with_command_id(command_id),
    )
    .await;
    assert_conflict(
        &conflict,
        &stream_id,
        ExpectedVersion::NoStream,
        StreamVersion(1),
    );
    assert_eq!(
        find_command(&store, command_id).await,
        None,
        "a conflicting append recorded its command"
    );

    let duplicate = append_err(
        &store,
        AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::Any,
            numbered(ids, [2, 1]),
        )
        .with_command_id(command_id),
    )
    .await;
    assert_duplicate_event_id(&duplicate, &stream_id, ids.event(1));
    assert_eq!(
        find_command(&store, command_id).await,
        None,
        "a failed append recorded its command"
    );

    store
        .append(
            AppendRequest::new(
                stream_id.clone(),
                ExpectedVersion::Exact(StreamVersion(1)),
                numbered(ids, [2]),
            )
            .with_command_id(command_id),
        )
        .await
        .or_fail("retrying the command");
    assert_eq!(
        find_command(&store, command_id).await,
        Some(CommandRecord::new(
            command_id,
            stream_id,
            StreamVersion(1),
            StreamVersion(2)
        ))
    );
}

// ---------------------------------------------------------------------------------------------
// The global log.

/// An empty store has no head, reads nothing and finds no commands.
pub async fn empty_store_has_no_head_and_reads_nothing<S: EventStore + CheckpointStore>(store: S) {
    assert_eq!(head(&store).await, None);
    assert!(
        read_all(&store, LogPosition::START, 10, EventFilter::All)
            .await
            .is_empty()
    );
    assert!(
        read_all(
            &store,
            LogPosition::START,
            10,
            EventFilter::Types(&[NUMBERED])
        )
        .await
        .is_empty()
    );
    assert_eq!(
        find_command(&store, Ids::new("empty").command(1)).await,
        None
    );
}

/// `read_all` returns the events of all streams in the order they were appended.
pub async fn read_all_follows_global_order_across_streams<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("read_all_follows_global_order_across_streams");
    let plan: [(&str, &[u64]); 6] = [
        ("conformance-a", &[1, 2]),
        ("conformance-b", &[3]),
        ("conformance-a", &[4]),
        ("conformance-c", &[5, 6, 7]),
        ("conformance-b", &[8]),
        ("conformance-a", &[9]),
    ];
    for (name, numbers) in plan {
        append_ok(
            &store,
            &stream(name),
            ExpectedVersion::Any,
            numbered(ids, numbers.iter().copied()),
        )
        .await;
    }
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(
        id_list(&log),
        (1..=9).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "the log is not in append order"
    );
    let placement: Vec<(String, u64)> = log
        .iter()
        .map(|e| (e.stream_id.to_string(), e.stream_version.get()))
        .collect();
    let expected: Vec<(String, u64)> = [
        ("conformance-a", 1),
        ("conformance-a", 2),
        ("conformance-b", 1),
        ("conformance-a", 3),
        ("conformance-c", 1),
        ("conformance-c", 2),
        ("conformance-c", 3),
        ("conformance-b", 2),
        ("conformance-a", 4),
    ]
    .into_iter()
    .map(|(name, version)| (name.to_owned(), version))
    .collect();
    assert_eq!(placement, expected);
    assert_strictly_increasing(&log, "read_all");
}

/// Reading after a log position excludes the event at that position.
pub async fn read_all_after_is_exclusive<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("read_all_after_is_exclusive");
    append_ok(
        &store,
        &stream("conformance-after-1"),
        ExpectedVersion::Any,
        numbered(ids, 1..=3),
    )
    .await;
    append_ok(
        &store,
        &stream("conformance-after-2"),
        ExpectedVersion::Any,
        numbered(ids, 4..=5),
    )
    .await;
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(log.len(), 5);
    for (index, event) in log.iter().enumerate() {
        let rest = read_all(&store, event.log_position(), 100, EventFilter::All).await;
        assert_eq!(
            id_list(&rest),
            id_list(&log[index + 1..]),
            "reading after the position of event {} of 5",
            index + 1
        );
    }
    let from_start = read_all(&store, LogPosition::START, 100, EventFilter::All).await;
    assert_eq!(
        id_list(&from_start),
        id_list(&log),
        "reading from the start"
    );
}

/// `read_all` returns at most `limit` events: paging with limit 1 visits each event once, a
/// limit beyond the log returns all of it, and limit 0 returns nothing.
pub async fn read_all_respects_the_limit<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("read_all_respects_the_limit");
    append_ok(
        &store,
        &stream("conformance-limit-1"),
        ExpectedVersion::Any,
        numbered(ids, 1..=4),
    )
    .await;
    append_ok(
        &store,
        &stream("conformance-limit-2"),
        ExpectedVersion::Any,
        numbered(ids, 5..=7),
    )
    .await;
    let everything = (1..=7).map(|n| ids.event(n)).collect::<Vec<_>>();

    let mut paged = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let page = read_all(&store, after, 1, EventFilter::All).await;
        let Some(last) = page.last() else { break };
        assert_eq!(page.len(), 1);
        after = last.log_position();
        paged.extend(id_list(&page));
        assert!(paged.len() <= 7, "paging with limit 1 does not end");
    }
    assert_eq!(paged, everything, "paging with limit 1");

    let first_three = read_all(&store, LogPosition::START, 3, EventFilter::All).await;
    assert_eq!(id_list(&first_three), everything[..3]);
    let all = read_all(&store, LogPosition::START, 1_000, EventFilter::All).await;
    assert_eq!(id_list(&all), everything, "a limit beyond the log");
    assert!(
        read_all(&store, LogPosition::START, 0, EventFilter::All)
            .await
            .is_empty(),
        "limit 0 returned events"
    );
}

/// A type filter returns exactly the events with those names (exact match, not a pattern),
/// in log order, and the limit counts only matching events.
pub async fn read_all_filters_by_event_type<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("read_all_filters_by_event_type");
    let types = ["t.a", "t.b", "t.c", "t.a", "t.b", "t.a", "t.c", "t.b"];
    for (n, event_type) in (1..).zip(types) {
        let name = if n % 2 == 0 {
            "conformance-filter-even"
        } else {
            "conformance-filter-odd"
        };
        let event = new_event(ids.event(n), event_type, &json!({ "n": n }));
        append_ok(&store, &stream(name), ExpectedVersion::Any, vec![event]).await;
    }
    let numbers_of = |events: &[RecordedEvent]| -> Vec<u64> {
        events
            .iter()
            .filter_map(|e| payload(e)["n"].as_u64())
            .collect()
    };

    let a_and_c = read_log(&store, EventFilter::Types(&["t.a", "t.c"])).await;
    assert_eq!(
        numbers_of(&a_and_c),
        [1, 3, 4, 6, 7],
        "filtering on t.a and t.c"
    );
    assert!(
        a_and_c
            .iter()
            .all(|e| e.event_type == "t.a" || e.event_type == "t.c")
    );

    let mut b_paged = Vec::new();
    let mut after = LogPosition::START;
    while let Some(last) = read_all(&store, after, 1, EventFilter::Types(&["t.b"]))
        .await
        .pop()
    {
        after = last.log_position();
        b_paged.push(last);
        assert!(b_paged.len() <= 3, "paging a filtered read does not end");
    }
    assert_eq!(
        numbers_of(&b_paged),
        [2, 5, 8],
        "paging the t.b events one by one"
    );

    let first_two_b = read_all(&store, LogPosition::START, 2, EventFilter::Types(&["t.b"])).await;
    assert_eq!(
        numbers_of(&first_two_b),
        [2, 5],
        "the limit counts only matching events"
    );

    for no_match in [
        &[][..],
        &["t.z"],
        &["t"],
        &["t.%"],
        &["t._"],
        &["T.A"],
        &["t.a "],
    ] {
        assert!(
            read_all(
                &store,
                LogPosition::START,
                100,
                EventFilter::Types(no_match)
            )
            .await
            .is_empty(),
            "filter {no_match:?} matched events"
        );
    }
}

/// Log positions strictly increase in the order `read_all` and `load` return events, and no
/// two events share one.
pub async fn log_positions_strictly_increase<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("log_positions_strictly_increase");
    let names = [
        "conformance-pos-1",
        "conformance-pos-2",
        "conformance-pos-3",
    ];
    let mut n = 0;
    for round in 0..4_u64 {
        for name in names {
            let size = 1 + (round + n) % 3;
            append_ok(
                &store,
                &stream(name),
                ExpectedVersion::Any,
                numbered(ids, n..n + size),
            )
            .await;
            n += size;
        }
    }
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(log.len() as u64, n);
    assert_strictly_increasing(&log, "read_all");
    let distinct: BTreeSet<_> = log.iter().map(|e| e.position).collect();
    assert_eq!(
        distinct.len(),
        log.len(),
        "two events share a global position"
    );
    for name in names {
        assert_strictly_increasing(&load_all(&store, &stream(name)).await, name);
    }
}

/// After every append, the head is the commit's last position and the last event of the log.
pub async fn head_is_the_last_event_position<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("head_is_the_last_event_position");
    let plan = [
        ("conformance-head-1", 2),
        ("conformance-head-2", 1),
        ("conformance-head-1", 3),
        ("conformance-head-3", 1),
    ];
    let mut n = 0;
    for (name, size) in plan {
        let committed = append_ok(
            &store,
            &stream(name),
            ExpectedVersion::Any,
            numbered(ids, n..n + size),
        )
        .await;
        n += size;
        let head = head(&store).await;
        assert!(head.is_some(), "no head after an append");
        assert_eq!(
            head, committed.last_position,
            "the head is not the commit's last position"
        );
        let log = read_log(&store, EventFilter::All).await;
        assert_eq!(
            head,
            log.last().map(RecordedEvent::log_position),
            "the head is not the last event"
        );
    }
}

/// `read_with_head` returns the head of the whole log (also when the filter skips its last
/// events) with the same events as `read_all`, and never the head as an event.
pub async fn read_with_head_reads_the_head_with_the_events<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("read_with_head_reads_the_head_with_the_events");
    let read = |after, limit, filter| {
        let store = store.clone();
        async move {
            store
                .read_with_head(after, limit, filter)
                .await
                .or_fail(format_args!(
                    "reading the head and the log after {after} (limit {limit}, filter {filter:?})"
                ))
        }
    };
    assert_eq!(
        read(LogPosition::START, 10, EventFilter::All).await,
        (None, Vec::new()),
        "an empty store has no head and no events"
    );
    let types = ["t.a", "t.b", "t.a", "t.b", "t.c"];
    for (n, event_type) in (1..).zip(types) {
        let event = new_event(ids.event(n), event_type, &json!({ "n": n }));
        append_ok(
            &store,
            &stream(&format!("conformance-with-head-{}", n % 2)),
            ExpectedVersion::Any,
            vec![event],
        )
        .await;
    }
    let log = read_log(&store, EventFilter::All).await;
    let last = log.last().map(RecordedEvent::log_position);
    let only_b = EventFilter::Types(&["t.b"]);
    for (after, limit, filter) in [
        (LogPosition::START, 10, EventFilter::All),
        (LogPosition::START, 2, EventFilter::All),
        (LogPosition::START, 10, only_b),
        (LogPosition::START, 1, only_b),
        (log[1].log_position(), 10, only_b),
    ] {
        let (head, events) = read(after, limit, filter).await;
        assert_eq!(
            head, last,
            "the head read after {after} (limit {limit}, filter {filter:?}) is not the last event"
        );
        assert_eq!(
            events,
            read_all(&store, after, limit, filter).await,
            "read_with_head after {after} (limit {limit}, filter {filter:?}) differs from read_all"
        );
    }
    let past_the_end = read(last.unwrap_or(LogPosition::START), 10, EventFilter::All).await;
    assert_eq!(
        past_the_end,
        (last, Vec::new()),
        "reading after the head returns the head and nothing else"
    );
}

/// Appends to many streams at once interleave in the log, but each stream's events appear in
/// version order without holes, and none is lost.
pub async fn concurrent_appends_to_many_streams_keep_stream_order<
    S: EventStore + CheckpointStore,
>(
    store: S,
) {
    const STREAMS: u64 = 8;
    const APPENDS: u64 = 25;
    let ids = Ids::new("concurrent_appends_to_many_streams_keep_stream_order");
    let mut tasks = Vec::new();
    for task in 0..STREAMS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let stream_id = stream(&format!("conformance-many-{task}"));
            let mut version = StreamVersion::INITIAL;
            for append in 0..APPENDS {
                let size = 1 + (task + append) % 2;
                let numbers = (0..size).map(|i| task * 10_000 + append * 10 + i);
                // Each task owns its stream: any conflict here is a bug in the store.
                let committed = append_ok(
                    &store,
                    &stream_id,
                    ExpectedVersion::Exact(version),
                    numbered(ids, numbers),
                )
                .await;
                version = committed.version_after;
                tokio::task::yield_now().await;
            }
            version.get()
        }));
    }
    let mut expected_counts = BTreeMap::new();
    for (task, handle) in tasks.into_iter().enumerate() {
        expected_counts.insert(format!("conformance-many-{task}"), join(handle).await);
    }
    let log = read_log(&store, EventFilter::All).await;
    assert_eq!(
        log.len() as u64,
        expected_counts.values().sum::<u64>(),
        "events were lost"
    );
    assert_strictly_increasing(&log, "read_all");
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for event in &log {
        let last = seen.entry(event.stream_id.to_string()).or_default();
        assert_eq!(
            event.stream_version.get(),
            *last + 1,
            "stream `{}` appears out of version order in the log",
            event.stream_id
        );
        *last += 1;
    }
    assert_eq!(seen, expected_counts);
}

// ---------------------------------------------------------------------------------------------
// Snapshots.

/// A saved snapshot loads back with its stream version, schema version and state.
pub async fn snapshot_round_trips<S: EventStore + CheckpointStore>(store: S) {
    let stream_id = stream("conformance-snapshot");
    let state = json!({ "total_cents": 4_200, "items": ["a", "b"], "note": "ü \"q\" \\ \n", "nested": { "x": null } });
    store
        .save_snapshot(&stream_id, Snapshot::new(StreamVersion(7), 2, raw(&state)))
        .await
        .or_fail("saving a snapshot");
    let Some(loaded) = load_snapshot(&store, &stream_id).await else {
        panic!("a saved snapshot did not load");
    };
    assert_eq!(loaded.stream_version, StreamVersion(7));
    assert_eq!(loaded.schema_version, 2);
    let loaded_state: Value =
        serde_json::from_str(loaded.state.get()).or_fail("parsing the snapshot state");
    assert_eq!(loaded_state, state, "the snapshot state changed");
}

/// Saving again replaces the snapshot: the latest one loads.
pub async fn latest_snapshot_wins<S: EventStore + CheckpointStore>(store: S) {
    let stream_id = stream("conformance-snapshot-latest");
    for (version, schema, total) in [(5, 1, 50), (10, 1, 100), (10, 2, 101), (15, 2, 150)] {
        store
            .save_snapshot(
                &stream_id,
                Snapshot::new(
                    StreamVersion(version),
                    schema,
                    raw(&json!({ "total": total })),
                ),
            )
            .await
            .or_fail(format_args!("saving the snapshot at version {version}"));
        let Some(loaded) = load_snapshot(&store, &stream_id).await else {
            panic!("a saved snapshot did not load");
        };
        assert_eq!(
            loaded.stream_version,
            StreamVersion(version),
            "an older snapshot loaded"
        );
        assert_eq!(loaded.schema_version, schema);
        let state: Value =
            serde_json::from_str(loaded.state.get()).or_fail("parsing the snapshot state");
        assert_eq!(
            state,
            json!({ "total": total }),
            "an older snapshot's state loaded"
        );
    }
}

/// A stream without a snapshot has none, even when it has events or another stream has one.
pub async fn snapshot_of_unknown_stream_is_none<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("snapshot_of_unknown_stream_is_none");
    let with_snapshot = stream("conformance-has-snapshot");
    let with_events = stream("conformance-has-events");
    assert!(load_snapshot(&store, &with_snapshot).await.is_none());
    store
        .save_snapshot(
            &with_snapshot,
            Snapshot::new(StreamVersion(1), 1, raw(&json!({}))),
        )
        .await
        .or_fail("saving a snapshot");
    append_ok(
        &store,
        &with_events,
        ExpectedVersion::Any,
        numbered(ids, 1..=3),
    )
    .await;
    assert!(
        load_snapshot(&store, &with_events).await.is_none(),
        "a snapshot appeared for a stream that has none"
    );
    assert!(
        load_snapshot(&store, &stream("conformance-has-snapshot-2"))
            .await
            .is_none()
    );
    assert!(
        load_snapshot(&store, &stream("conformance-has"))
            .await
            .is_none()
    );
}

// ---------------------------------------------------------------------------------------------
// Checkpoints.

/// A projection that never ran stands at the start of the log.
pub async fn checkpoint_starts_at_start<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("checkpoint_starts_at_start");
    assert_eq!(
        checkpoint(&store, "conformance.never-ran").await,
        LogPosition::START
    );
    append_ok(
        &store,
        &stream("conformance-checkpoint-events"),
        ExpectedVersion::Any,
        numbered(ids, 1..=2),
    )
    .await;
    assert_eq!(
        checkpoint(&store, "conformance.never-ran").await,
        LogPosition::START
    );
}

/// Committing moves a projection's checkpoint, other projections keep theirs, and a reset
/// returns it to the start.
pub async fn checkpoint_commit_and_reset<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("checkpoint_commit_and_reset");
    append_ok(
        &store,
        &stream("conformance-checkpoint"),
        ExpectedVersion::Any,
        numbered(ids, 1..=4),
    )
    .await;
    let log = read_log(&store, EventFilter::All).await;
    let (second, fourth) = (log[1].log_position(), log[3].log_position());
    let mine = "conformance.summary 'quoted' \"twice\" ü";
    let theirs = "conformance.other";

    move_checkpoint(&store, mine, second).await;
    assert_eq!(checkpoint(&store, mine).await, second);
    assert_eq!(
        checkpoint(&store, theirs).await,
        LogPosition::START,
        "a checkpoint moved another projection's"
    );
    move_checkpoint(&store, theirs, fourth).await;
    move_checkpoint(&store, mine, fourth).await;
    assert_eq!(checkpoint(&store, mine).await, fourth);

    store
        .reset_checkpoint(mine)
        .await
        .or_fail("resetting a checkpoint");
    assert_eq!(
        checkpoint(&store, mine).await,
        LogPosition::START,
        "the reset did not return to the start"
    );
    assert_eq!(
        checkpoint(&store, theirs).await,
        fourth,
        "a reset moved another projection's checkpoint"
    );
    move_checkpoint(&store, mine, fourth).await;
    assert_eq!(
        checkpoint(&store, mine).await,
        fourth,
        "the checkpoint did not move after a reset"
    );
}

// ---------------------------------------------------------------------------------------------
// Live notification.

/// A watch wakes after an append, again after the next one, and a watch taken later wakes too.
pub async fn watch_wakes_after_append<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("watch_wakes_after_append");
    let stream_id = stream("conformance-watch");
    let mut watch = store.watch();
    append_ok(&store, &stream_id, ExpectedVersion::Any, numbered(ids, [1])).await;
    tokio::time::timeout(WAIT, watch.changed())
        .await
        .or_fail("waiting for the watch to wake after an append");

    let mut later = store.watch();
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Any,
        numbered(ids, [2, 3]),
    )
    .await;
    tokio::time::timeout(WAIT, watch.changed())
        .await
        .or_fail("waiting for the watch to wake after a second append");
    tokio::time::timeout(WAIT, later.changed())
        .await
        .or_fail("waiting for a watch taken later to wake");
}

// ---------------------------------------------------------------------------------------------
// Awkward data.

/// Stream ids with quotes, SQL, pattern characters, unicode and the maximum length are stored
/// and found exactly.
pub async fn awkward_stream_ids_round_trip<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("awkward_stream_ids_round_trip");
    let longest = "x".repeat(MAX_STREAM_ID_LEN);
    let names = [
        "order-'; DROP TABLE events; --",
        "it's \"quoted\"",
        "back\\slash",
        "percent%_like",
        "percentile",
        "with space",
        "$1 placeholder ?",
        "ünïcødé-流-🦀-مرحبا",
        longest.as_str(),
    ];
    let mut n = 0;
    for name in names {
        let stream_id = stream(name);
        append_ok(
            &store,
            &stream_id,
            ExpectedVersion::NoStream,
            numbered(ids, [n, n + 1]),
        )
        .await;
        n += 2;
        store
            .save_snapshot(
                &stream_id,
                Snapshot::new(StreamVersion(2), 1, raw(&json!({ "stream": name }))),
            )
            .await
            .or_fail(format_args!("saving a snapshot of {name:?}"));
    }
    for name in names {
        let stream_id = stream(name);
        assert_eq!(
            version_of(&store, &stream_id).await,
            StreamVersion(2),
            "version of {name:?}"
        );
        let loaded = load_all(&store, &stream_id).await;
        assert_eq!(version_list(&loaded), [1, 2], "loading {name:?}");
        for event in &loaded {
            assert_eq!(event.stream_id.as_str(), name, "the stream id changed");
        }
        let Some(snapshot) = load_snapshot(&store, &stream_id).await else {
            panic!("the snapshot of {name:?} did not load");
        };
        let state: Value = serde_json::from_str(snapshot.state.get()).or_fail("parsing a snapshot");
        assert_eq!(
            state,
            json!({ "stream": name }),
            "loaded another stream's snapshot"
        );
    }
    let log = read_log(&store, EventFilter::All).await;
    let stored: BTreeSet<&str> = log.iter().map(|e| e.stream_id.as_str()).collect();
    assert_eq!(
        stored,
        names.into_iter().collect::<BTreeSet<&str>>(),
        "stream ids changed in the log"
    );
}

/// Payloads round-trip as JSON values: unicode, escapes, nested structures, numbers at the
/// edges of `i64` and `u64`, odd keys, and top-level arrays, strings and `null`.
pub async fn awkward_payloads_round_trip<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("awkward_payloads_round_trip");
    let stream_id = stream("conformance-payloads");
    let payloads = [
        json!({ "text": "ünïcødé 流 🦀 😀", "rtl": "مرحبا", "combining": "e\u{301}" }),
        json!({ "a": { "b": { "c": [1, [2, [3, { "d": null }]]] } }, "empty_object": {}, "empty_array": [] }),
        json!({
            "i64_max": i64::MAX, "i64_min": i64::MIN, "u64_max": u64::MAX,
            "zero": 0, "minus_one": -1, "half": 0.5, "fraction": -2.25,
        }),
        json!({
            "quote": "\"", "backslash": "\\", "newline": "line 1\nline 2", "tab": "\t",
            "controls": "\u{1}\u{1f}\u{7f}", "slash": "a/b", "json_in_a_string": "{\"k\": [1, 2]}",
            "sql": "'; DROP TABLE events; --",
        }),
        json!({ "": "empty key", "key with \"quotes\"": 1, "ключ": 2, "$1": 3 }),
        json!([1, "two", { "three": 3 }]),
        json!("just a string with a \"quote\""),
        json!(true),
        json!(null),
    ];
    let events: Vec<NewEvent> = (0..)
        .zip(&payloads)
        .map(|(n, value)| new_event(ids.event(n), "conformance.payload", value))
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;

    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), payloads.len());
    for (event, expected) in loaded.iter().zip(&payloads) {
        assert_eq!(&payload(event), expected, "a payload changed through load");
    }
    let read = read_log(&store, EventFilter::All).await;
    for (event, expected) in read.iter().zip(&payloads) {
        assert_eq!(
            &payload(event),
            expected,
            "a payload changed through read_all"
        );
    }
}

/// Metadata round-trips: correlation and causation ids (each alone and together) and headers
/// holding quotes, unicode, SQL, JSON, escapes and empty values.
pub async fn metadata_round_trips<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("metadata_round_trips");
    let stream_id = stream("conformance-metadata");
    let headers = Metadata::new()
        .with_header("quote", "it's \"quoted\"")
        .with_header("unicode-ключ", "значение 🦀")
        .with_header("empty", "")
        .with_header("json", "{\"a\": 1}")
        .with_header("sql", "'; DROP TABLE events; --")
        .with_header("escapes", "a\nb\tc\\d")
        .with_header("key \"with\" quotes", "v");
    let metadata = [
        headers,
        Metadata::new().with_correlation_id(ids.command(1)),
        Metadata::new().with_causation_id(ids.command(2)),
        Metadata::new()
            .with_correlation_id(ids.command(3))
            .with_causation_id(ids.command(4))
            .with_header("tenant", "t-1"),
        Metadata::new(),
    ];
    let events: Vec<NewEvent> = (0..)
        .zip(&metadata)
        .map(|(n, metadata)| NewEvent {
            metadata: metadata.clone(),
            ..new_event(ids.event(n), NUMBERED, &json!({ "n": n }))
        })
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    // A single event too: stores may append one event by another statement than a batch.
    let single = NewEvent {
        metadata: metadata[0].clone(),
        ..new_event(ids.event(5), NUMBERED, &json!({ "n": 5 }))
    };
    append_ok(
        &store,
        &stream_id,
        ExpectedVersion::Exact(StreamVersion(5)),
        vec![single],
    )
    .await;
    let metadata: Vec<Metadata> = metadata.iter().chain(&metadata[..1]).cloned().collect();
    let loaded = load_all(&store, &stream_id).await;
    let loaded_metadata: Vec<Metadata> = loaded.iter().map(|e| e.metadata.clone()).collect();
    assert_eq!(loaded_metadata, metadata, "metadata changed through load");
    let read = read_log(&store, EventFilter::All).await;
    let read_metadata: Vec<Metadata> = read.iter().map(|e| e.metadata.clone()).collect();
    assert_eq!(read_metadata, metadata, "metadata changed through read_all");
}

/// Event type names with dots, quotes, unicode and pattern characters are stored exactly and
/// each matches itself alone in a type filter.
pub async fn awkward_event_types_round_trip<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("awkward_event_types_round_trip");
    let stream_id = stream("conformance-event-types");
    let types = [
        "order.placed",
        "order.item.added.v2",
        "it's \"quoted\"",
        "ünïcødé.тип.流",
        "with space",
        "percent%_",
        "percent",
        "back\\slash",
        "'; DROP TABLE events; --",
    ];
    let events: Vec<NewEvent> = (0..)
        .zip(types)
        .map(|(n, event_type)| new_event(ids.event(n), event_type, &json!({ "type": event_type })))
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    let loaded = load_all(&store, &stream_id).await;
    let loaded_types: Vec<&str> = loaded.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(loaded_types, types, "event type names changed");
    for event_type in types {
        let only = read_log(&store, EventFilter::Types(&[event_type])).await;
        let found: Vec<&str> = only.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(found, [event_type], "filtering on {event_type:?}");
    }
}

/// Every event of a batch keeps its own type and schema version, whether the batch's events
/// share both, only the type, or only the version, and whichever way the batch is appended (an
/// exact version, `Any`, with a command id). A store may send a type or version the events share
/// once per batch instead of once per event. Load, the global read and `fold_stream` all return
/// them.
pub async fn batches_keep_each_events_type_and_schema_version<S: EventStore + CheckpointStore>(
    store: S,
) {
    let ids = Ids::new("batches_keep_each_events_type_and_schema_version");
    let stream_id = stream("conformance-batch-types");
    let event = |n: u64, event_type: &'static str, schema_version: u32| NewEvent {
        id: ids.event(n),
        event_type: Cow::Borrowed(event_type),
        schema_version,
        payload: raw(&json!({ "n": n })),
        metadata: Metadata::new(),
    };
    let batches: [(ExpectedVersion, Option<Uuid>, Vec<NewEvent>); 5] = [
        // Type and schema version shared, the schema version not 1.
        (
            ExpectedVersion::NoStream,
            None,
            vec![event(1, "a", 3), event(2, "a", 3), event(3, "a", 3)],
        ),
        // The type shared, not the version.
        (
            ExpectedVersion::Exact(StreamVersion(3)),
            None,
            vec![event(4, "a", 1), event(5, "a", 2)],
        ),
        // The version shared, not the type.
        (
            ExpectedVersion::Any,
            None,
            vec![event(6, "a", 2), event(7, "b", 2)],
        ),
        // Both shared, with a command id.
        (
            ExpectedVersion::Exact(StreamVersion(7)),
            Some(ids.command(1)),
            vec![event(8, "c", 4), event(9, "c", 4)],
        ),
        // Neither shared, with a command id; the last event alone differs.
        (
            ExpectedVersion::StreamExists,
            Some(ids.command(2)),
            vec![event(10, "c", 4), event(11, "c", 4), event(12, "d", 5)],
        ),
    ];
    for (expected, command_id, events) in batches {
        let count = events.len();
        let mut request = AppendRequest::new(stream_id.clone(), expected, events);
        if let Some(command_id) = command_id {
            request = request.with_command_id(command_id);
        }
        let committed = store.append(request).await.or_fail(format_args!(
            "appending {count} event(s) to `{stream_id}` expecting {expected}"
        ));
        settle(&store, committed.last_position).await;
    }
    let expected = [
        ("a", 3),
        ("a", 3),
        ("a", 3),
        ("a", 1),
        ("a", 2),
        ("a", 2),
        ("b", 2),
        ("c", 4),
        ("c", 4),
        ("c", 4),
        ("c", 4),
        ("d", 5),
    ];
    let summary = |events: &[RecordedEvent]| -> Vec<(String, u32)> {
        events
            .iter()
            .map(|e| (e.event_type.clone(), e.schema_version))
            .collect()
    };
    let expected: Vec<(String, u32)> = expected
        .iter()
        .map(|&(event_type, version)| (event_type.to_owned(), version))
        .collect();
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        summary(&loaded),
        expected,
        "load returned other types or schema versions than were appended"
    );
    assert_eq!(
        id_list(&loaded),
        (1..=12).map(|n| ids.event(n)).collect::<Vec<_>>(),
        "load returned other events than were appended"
    );
    let read = read_log(&store, EventFilter::All).await;
    assert_eq!(
        summary(&read),
        expected,
        "read_all returned other types or schema versions than were appended"
    );
    let mut folded = Vec::new();
    store
        .fold_stream(&stream_id, StreamVersion::INITIAL, |event| {
            folded.push((event.event_type.to_owned(), event.schema_version));
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .await
        .or_fail(format_args!("folding `{stream_id}`"));
    assert_eq!(
        folded, expected,
        "fold_stream gave other types or schema versions than were appended"
    );
}

// ---------------------------------------------------------------------------------------------
// Decoding rows read back from the store.

/// The suite's evolving event: version 1 stored whole units under `amount`, version 2 cents
/// under `amount_cents`, version 3 adds the currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceSet {
    sku: String,
    amount_cents: u64,
    currency: String,
}

impl Event for PriceSet {
    const NAME: &'static str = "conformance.price_set";
    const VERSION: u32 = 3;
    const UPCASTERS: &'static [Upcaster] = &[price_set_v1_to_v2, price_set_v2_to_v3];
}

fn price_set_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::invalid_field("payload", "not an object"))?;
    let units = object
        .remove("amount")
        .ok_or_else(|| UpcastError::missing_field("amount"))?
        .as_u64()
        .ok_or_else(|| UpcastError::invalid_field("amount", "not an unsigned integer"))?;
    let cents = units
        .checked_mul(100)
        .ok_or_else(|| UpcastError::invalid_field("amount", "too large"))?;
    object.insert("amount_cents".to_owned(), json!(cents));
    Ok(payload)
}

fn price_set_v2_to_v3(mut payload: Value) -> Result<Value, UpcastError> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::invalid_field("payload", "not an object"))?;
    object.insert("currency".to_owned(), json!("EUR"));
    Ok(payload)
}

fn price_set_row(id: EventId, schema_version: u32, payload: &Value) -> NewEvent {
    NewEvent {
        schema_version,
        ..new_event(id, PriceSet::NAME, payload)
    }
}

/// Rows stored at schema versions 1 and 2 load with their versions and payloads untouched,
/// and decode through the upcaster chain to the current type.
pub async fn old_schema_versions_upcast_on_load<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("old_schema_versions_upcast_on_load");
    let stream_id = stream("conformance-upcast");
    let rows = [
        (1, json!({ "sku": "A-1", "amount": 12 })),
        (2, json!({ "sku": "B-2", "amount_cents": 345 })),
        (
            3,
            json!({ "sku": "C-3", "amount_cents": 9, "currency": "USD" }),
        ),
    ];
    let events = (0..)
        .zip(&rows)
        .map(|(n, (version, payload))| price_set_row(ids.event(n), *version, payload))
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;

    let expected = [
        PriceSet {
            sku: "A-1".into(),
            amount_cents: 1_200,
            currency: "EUR".into(),
        },
        PriceSet {
            sku: "B-2".into(),
            amount_cents: 345,
            currency: "EUR".into(),
        },
        PriceSet {
            sku: "C-3".into(),
            amount_cents: 9,
            currency: "USD".into(),
        },
    ];
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), rows.len());
    for ((event, (version, stored)), current) in loaded.iter().zip(&rows).zip(&expected) {
        assert_eq!(
            event.schema_version, *version,
            "the store changed a schema version"
        );
        assert_eq!(&payload(event), stored, "the store changed an old payload");
        let decoded = codec::decode::<PriceSet>(event.schema_version, &event.payload)
            .or_fail(format_args!("decoding a version {version} row"));
        assert_eq!(&decoded, current, "upcasting version {version}");
    }
    let filtered = read_log(&store, EventFilter::Types(&[PriceSet::NAME])).await;
    assert_eq!(filtered.len(), rows.len());
}

/// A stored payload of the wrong shape (valid JSON) loads, and decoding it is a typed
/// [`DecodeError::Payload`] (or [`DecodeError::Upcast`] when an upcaster refuses it) naming
/// the event type and schema version.
pub async fn corrupt_payload_fails_to_decode<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("corrupt_payload_fails_to_decode");
    let stream_id = stream("conformance-corrupt");
    let events = vec![
        price_set_row(
            ids.event(1),
            3,
            &json!({ "sku": 5, "amount_cents": "lots", "currency": "EUR" }),
        ),
        price_set_row(ids.event(2), 1, &json!({ "sku": "A-1" })),
        price_set_row(ids.event(3), 2, &json!(["not", "an", "object"])),
    ];
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        loaded.len(),
        3,
        "corrupt payloads must still load as raw rows"
    );

    match codec::decode::<PriceSet>(loaded[0].schema_version, &loaded[0].payload) {
        Err(DecodeError::Payload {
            event_type,
            schema_version,
            ..
        }) => {
            assert_eq!(event_type, PriceSet::NAME);
            assert_eq!(schema_version, 3);
        }
        other => panic!("expected a payload error for a mistyped field, got {other:?}"),
    }
    match codec::decode::<PriceSet>(loaded[1].schema_version, &loaded[1].payload) {
        Err(DecodeError::Upcast {
            event_type,
            from_version: 1,
            source,
        }) => {
            assert_eq!(event_type, PriceSet::NAME);
            assert_eq!(source, UpcastError::missing_field("amount"));
        }
        other => panic!("expected an upcast error for a missing field, got {other:?}"),
    }
    match codec::decode::<PriceSet>(loaded[2].schema_version, &loaded[2].payload) {
        Err(DecodeError::Upcast {
            from_version: 2, ..
        }) => {}
        other => {
            panic!("expected an upcast error for a payload that is not an object, got {other:?}")
        }
    }
}

/// A row stored at a schema version newer than the type knows loads, and decoding it is
/// [`DecodeError::UnsupportedVersion`].
pub async fn future_schema_version_is_unsupported<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("future_schema_version_is_unsupported");
    let stream_id = stream("conformance-future");
    let row = price_set_row(
        ids.event(1),
        4,
        &json!({ "sku": "A-1", "amount_cents": 1, "currency": "EUR", "tax": 0 }),
    );
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, vec![row]).await;
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].schema_version, 4,
        "the store changed the schema version"
    );
    match codec::decode::<PriceSet>(loaded[0].schema_version, &loaded[0].payload) {
        Err(DecodeError::UnsupportedVersion {
            event_type,
            schema_version,
            current,
        }) => {
            assert_eq!(event_type, PriceSet::NAME);
            assert_eq!(schema_version, 4);
            assert_eq!(current, 3);
        }
        other => panic!("expected an unsupported version error, got {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_names_are_unique() {
        let unique: BTreeSet<&str> = CASES.iter().copied().collect();
        assert_eq!(unique.len(), CASES.len());
        assert!(CASES.len() >= 30);
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        assert_eq!(Ids::new("a").0, Ids::new("a").0);
        assert_ne!(Ids::new("a").0, Ids::new("b").0);
        assert_ne!(Ids::new("a").event(1), Ids::new("a").event(2));
        assert_ne!(Ids::new("a").event(1).0, Ids::new("a").command(1));
    }
}
