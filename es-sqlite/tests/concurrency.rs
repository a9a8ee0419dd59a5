//! Many tasks of one process appending at once: writes queue for the one writer connection, so
//! none fails with "database is locked", the log has no holes, and the only refusals are typed
//! conflicts.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::TempDir;
use es_core::{
    AppendError, AppendRequest, EventFilter, ExpectedVersion, LogPosition, Metadata, NewEvent,
    StreamId, StreamVersion,
};
use futures_util::TryStreamExt as _;
use serde_json::json;

const TASKS: u64 = 32;
const APPENDS: u64 = 10;
/// Streams shared by several tasks: task `t` writes to `shared-{t % SHARED}` as well.
const SHARED: u64 = 4;

fn event(task: u64, n: u64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&json!({ "task": task, "n": n })).unwrap();
    NewEvent::new("test.appended", 1, payload, Metadata::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn thirty_two_tasks_append_without_locking_errors_holes_or_untyped_conflicts() {
    let dir = TempDir::new("concurrency");
    let store = dir.store("events.db").await;

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let own = StreamId::new(format!("own-{task}")).unwrap();
            let shared = StreamId::new(format!("shared-{}", task % SHARED)).unwrap();
            let mut conflicts = 0_u64;
            for n in 0..APPENDS {
                // A stream of its own: the expectation always holds.
                let expected = if n == 0 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(StreamVersion(n))
                };
                let request = AppendRequest::new(own.clone(), expected, vec![event(task, n)]);
                store
                    .append(request)
                    .await
                    .unwrap_or_else(|error| panic!("task {task} append {n} to {own}: {error}"));

                // A shared stream: read, decide, append; a lost race is a typed conflict with
                // the version that won, and the task retries from there.
                let mut version = store.stream_version(&shared).await.unwrap();
                loop {
                    let request = AppendRequest::new(
                        shared.clone(),
                        ExpectedVersion::Exact(version),
                        vec![event(task, 100 + n)],
                    );
                    match store.append(request).await {
                        Ok(committed) => {
                            assert_eq!(committed.version_before, version);
                            break;
                        }
                        Err(AppendError::Conflict { actual, .. }) => {
                            assert!(actual > version, "a conflict reports a version that moved");
                            conflicts += 1;
                            version = actual;
                        }
                        Err(other) => panic!("task {task} append to {shared}: {other} ({other:?})"),
                    }
                }

                // And a few appends that check nothing.
                if n % 3 == 0 {
                    let request = AppendRequest::new(
                        shared.clone(),
                        ExpectedVersion::Any,
                        vec![event(task, 200 + n)],
                    );
                    store.append(request).await.unwrap_or_else(|error| {
                        panic!("task {task} append (any) to {shared}: {error}")
                    });
                }
            }
            conflicts
        }));
    }
    let mut conflicts = 0;
    for task in tasks {
        conflicts += task.await.expect("no task panics");
    }
    let any_appends = (0..APPENDS).filter(|n| n % 3 == 0).count() as u64;
    let per_task = 2 * APPENDS + any_appends;
    let total = TASKS * per_task;

    // Every stream's versions run 1, 2, 3 ... without holes.
    for task in 0..TASKS {
        let own = StreamId::new(format!("own-{task}")).unwrap();
        let events: Vec<_> = store
            .load(&own, StreamVersion::INITIAL)
            .try_collect()
            .await
            .unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version.get()).collect();
        assert_eq!(versions, (1..=APPENDS).collect::<Vec<_>>(), "stream {own}");
    }
    for shared in 0..SHARED {
        let id = StreamId::new(format!("shared-{shared}")).unwrap();
        let events: Vec<_> = store
            .load(&id, StreamVersion::INITIAL)
            .try_collect()
            .await
            .unwrap();
        let expected = (TASKS / SHARED) * (APPENDS + any_appends);
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version.get()).collect();
        assert_eq!(versions, (1..=expected).collect::<Vec<_>>(), "stream {id}");
    }

    // The global log holds every event once, at positions 1, 2, 3 ... in order.
    let mut log = Vec::new();
    let mut after = LogPosition::START;
    loop {
        let page = store.read_all(after, 97, EventFilter::All).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.log_position();
        log.extend(page);
    }
    let positions: Vec<u64> = log.iter().map(|e| e.position.get()).collect();
    assert_eq!(
        positions,
        (1..=total).collect::<Vec<_>>(),
        "the log has holes"
    );
    assert!(log.iter().all(|e| e.transaction == e.position.get()));
    let ids: BTreeSet<_> = log.iter().map(|e| e.id).collect();
    assert_eq!(ids.len() as u64, total, "an event appears twice");
    let mut per_stream: BTreeMap<&str, u64> = BTreeMap::new();
    for event in &log {
        let last = per_stream.entry(event.stream_id.as_str()).or_default();
        assert_eq!(
            event.stream_version.get(),
            *last + 1,
            "stream order differs from log order"
        );
        *last += 1;
    }
    assert_eq!(
        store.head().await.unwrap(),
        Some(LogPosition::new(total, es_core::GlobalPosition(total)))
    );
    // Not an assertion on timing: only that the shared streams were really contended.
    tracing::debug!(conflicts, "typed conflicts retried");

    store.close().await;
}

/// Two stores opened on one file (two writer connections, as two processes would have): each
/// write transaction takes the file's write lock first (`BEGIN IMMEDIATE`) and waits for the
/// other's through the busy timeout, so neither sees "database is locked" nor a stale version.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn two_stores_on_one_file_wait_for_each_other() {
    let dir = TempDir::new("two-stores");
    let first = dir.store("events.db").await;
    let second = dir.store("events.db").await;
    let shared = StreamId::new("shared").unwrap();

    let mut tasks = Vec::new();
    for task in 0..16_u64 {
        let store = if task % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let shared = shared.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..5 {
                let mut version = store.stream_version(&shared).await.unwrap();
                loop {
                    let request = AppendRequest::new(
                        shared.clone(),
                        ExpectedVersion::Exact(version),
                        vec![event(task, n)],
                    );
                    match store.append(request).await {
                        Ok(_) => break,
                        Err(AppendError::Conflict { actual, .. }) => version = actual,
                        Err(other) => panic!("task {task}: {other} ({other:?})"),
                    }
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task panics");
    }
    for store in [&first, &second] {
        let events: Vec<_> = store
            .load(&shared, StreamVersion::INITIAL)
            .try_collect()
            .await
            .unwrap();
        let versions: Vec<u64> = events.iter().map(|e| e.stream_version.get()).collect();
        assert_eq!(versions, (1..=80).collect::<Vec<_>>());
        let positions: Vec<u64> = events.iter().map(|e| e.position.get()).collect();
        assert_eq!(positions, (1..=80).collect::<Vec<_>>());
    }
    first.close().await;
    second.close().await;
}
