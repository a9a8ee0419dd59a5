//! Expected versions: every kind, and what a conflict reports.

use serde_json::json;

use crate::store::checkpoint::CheckpointStore;
use crate::store::error::AppendError;
use crate::store::event_store::EventStore;
use crate::store::log::{AppendRequest, Committed, EventFilter, ReadVersion};
use crate::stream::{ExpectedVersion, StreamId, StreamVersion};

use super::helpers::{
    Ids, OrFail as _, append_any, append_err, append_ok, assert_conflict,
    assert_duplicate_event_id, head, id_list, join, load_all, new_event, numbered, payload,
    read_log, settle, start_stream, stream, version_list, version_of, versions,
};

/// `NoStream` on a stream with events is a conflict naming the actual version.
pub async fn no_stream_conflicts_on_existing_stream<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("no_stream_conflicts_on_existing_stream");
    let stream_id = stream("conformance-no-stream");
    start_stream(&store, &stream_id, numbered(ids, 1..=2)).await;
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
    start_stream(&store, &stream_id, numbered(ids, 1..=3)).await;
    assert_exact_conflicts_at_three(&store, &stream_id, ids, &[1, 4, 0, 2], false).await;
}

/// On a stream at version 3, appends one event and then a batch of two expecting each of the
/// `wrong` versions (marked as read from the stream when `read`): every one must be a conflict
/// naming version 3.
pub(super) async fn assert_exact_conflicts_at_three<S: EventStore>(
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
            let request = AppendRequest::new(stream_id.clone(), expected, numbered(ids, events));
            // A version read before the stream moved on to 3.
            let request = if read {
                request.after_read(ReadVersion::loaded(StreamVersion(wrong)))
            } else {
                request
            };
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
    start_stream(&store, &stream_id, numbered(ids, 1..=3)).await;
    assert_exact_conflicts_at_three(&store, &stream_id, ids, &[0, 1, 2], true).await;
    assert_eq!(
        version_list(&load_all(&store, &stream_id).await),
        versions(1..=3)
    );

    for (current, events) in [(3, vec![4]), (4, vec![5, 6, 7])] {
        let expected = ExpectedVersion::Exact(StreamVersion(current));
        let read = ReadVersion::read(&store, &stream_id)
            .await
            .or_fail(format_args!("reading the version of `{stream_id}`"));
        assert_eq!(read.version(), StreamVersion(current));
        let request =
            AppendRequest::new(stream_id.clone(), expected, numbered(ids, events.clone()))
                .after_read(read);
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
        let request = AppendRequest::new(stream_id.clone(), expected, numbered(ids, numbers))
            .without_position();
        match expected {
            // Appended one after another: each exact version is one the stream was read at.
            ExpectedVersion::Exact(version) if was_read => {
                request.after_read(ReadVersion::loaded(version))
            }
            _ => request,
        }
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
        let committed = append_any(&store, &stream_id, numbered(ids, next..next + size)).await;
        next += size;
        assert_eq!(committed.version_before, version_before);
        assert_eq!(committed.version_after, version_before.advanced_by(size));
        append_any(&store, &other, numbered(ids, [1_000 + next])).await;
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
    start_stream(&store, &stream_id, numbered(ids, 1..=2)).await;
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
                let request = AppendRequest::new(stream_id.clone(), expected, vec![event]);
                // Half the writers say they read the version (they did), so a store that then
                // relies on its unique key alone races the stores' full check too.
                let request = if task % 2 == 0 {
                    request.after_read(ReadVersion::loaded(current))
                } else {
                    request
                };
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
    start_stream(&store, &existing, numbered(ids, [1])).await;
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

    start_stream(&store, &target, numbered(ids, [2, 3, 4])).await;
    assert_eq!(version_list(&load_all(&store, &target).await), [1, 2, 3]);
}

/// An event id already stored is refused, in its own stream and in another.
pub async fn duplicate_event_id_is_refused<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("duplicate_event_id_is_refused");
    let first = stream("conformance-dup-id-1");
    let second = stream("conformance-dup-id-2");
    start_stream(&store, &first, numbered(ids, [1])).await;
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
    start_stream(&store, &existing, numbered(ids, 1..=2)).await;
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
