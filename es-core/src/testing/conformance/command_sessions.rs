//! Command sessions: a command's reads and append on one connection.

use serde_json::{Value, json};

use crate::event::NewEvent;
use crate::store::checkpoint::CheckpointStore;
use crate::store::command_log::CommandSession;
use crate::store::command_record::CommandRecord;
use crate::store::error::AppendError;
use crate::store::event_store::EventStore;
use crate::store::log::{AppendRequest, ReadVersion};
use crate::stream::{ExpectedVersion, StreamId, StreamVersion};

use super::helpers::{
    Ids, NUMBERED, OrFail as _, append_ok, assert_conflict, find_command, join, load_all,
    new_event, numbered, payload, start_stream, stream, version_list, versions,
};

/// The versions and payload numbers `session` folds from `stream_id` after `after`.
pub(super) async fn fold_in_session(
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
pub(super) fn decided(stream_id: &StreamId, version: u64, events: Vec<NewEvent>) -> AppendRequest {
    AppendRequest::new(
        stream_id.clone(),
        ExpectedVersion::Exact(StreamVersion(version)),
        events,
    )
    .after_read(ReadVersion::loaded(StreamVersion(version)))
    .without_position()
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
    let behind =
        AppendRequest::new(stream_id.clone(), wrong, numbered(ids, [5])).without_position();
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
    start_stream(&store, &stream_id, numbered(ids, 1..=2)).await;
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
