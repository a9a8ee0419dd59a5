//! The in-memory store's own cases, beyond the conformance suite.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

use futures_util::TryStreamExt as _;
use serde_json::json;

use super::*;
use crate::event::NewEvent;
use crate::metadata::Metadata;
use crate::stream::ExpectedVersion;

fn stream(name: &str) -> StreamId {
    StreamId::new(name).unwrap()
}

fn event(n: u64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&json!({ "n": n })).unwrap();
    NewEvent::new("test.happened", 1, payload, Metadata::new())
}

fn events(count: u64) -> Vec<NewEvent> {
    (1..=count).map(event).collect()
}

async fn append(store: &MemoryStore, id: &StreamId, count: u64) -> Committed {
    store
        .append(AppendRequest::new(
            id.clone(),
            ExpectedVersion::Any,
            events(count),
        ))
        .await
        .unwrap()
}

#[tokio::test]
async fn positions_are_dense_and_transactions_equal_positions() {
    let store = MemoryStore::new();
    append(&store, &stream("a"), 2).await;
    append(&store, &stream("b"), 3).await;
    let all = store
        .read_all(LogPosition::START, 100, EventFilter::All)
        .await
        .unwrap();
    let positions: Vec<u64> = all.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, [1, 2, 3, 4, 5]);
    assert!(all.iter().all(|e| e.transaction == e.position.get()));
}

#[tokio::test]
async fn read_all_starts_after_the_given_position() {
    let store = MemoryStore::new();
    append(&store, &stream("a"), 10).await;
    let after = LogPosition::new(7, GlobalPosition(7));
    let rest = store.read_all(after, 100, EventFilter::All).await.unwrap();
    let positions: Vec<u64> = rest.iter().map(|e| e.position.get()).collect();
    assert_eq!(positions, [8, 9, 10]);
    let past_the_end = LogPosition::new(99, GlobalPosition(99));
    assert!(
        store
            .read_all(past_the_end, 100, EventFilter::All)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn empty_append_without_command_writes_nothing_but_checks_the_version() {
    let store = MemoryStore::new();
    let id = stream("a");
    append(&store, &id, 2).await;
    let committed = store
        .append(AppendRequest::new(
            id.clone(),
            ExpectedVersion::Any,
            Vec::new(),
        ))
        .await
        .unwrap();
    assert_eq!(
        committed,
        Committed::new(StreamVersion(2), StreamVersion(2), None)
    );
    assert_eq!(store.read().log.len(), 2);
    let conflict = store
        .append(AppendRequest::new(
            id,
            ExpectedVersion::NoStream,
            Vec::new(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(
        conflict,
        AppendError::Conflict {
            actual: StreamVersion(2),
            ..
        }
    ));
}

#[tokio::test]
async fn empty_append_does_not_create_a_stream() {
    let store = MemoryStore::new();
    let id = stream("a");
    store
        .append(AppendRequest::new(
            id.clone(),
            ExpectedVersion::NoStream,
            Vec::new(),
        ))
        .await
        .unwrap();
    assert!(store.read().streams.is_empty());
    assert_eq!(
        store.stream_version(&id).await.unwrap(),
        StreamVersion::INITIAL
    );
}

#[tokio::test]
async fn command_id_is_checked_before_the_expected_version() {
    let store = MemoryStore::new();
    let id = stream("a");
    let command = Uuid::from_u128(7);
    store
        .append(
            AppendRequest::new(id.clone(), ExpectedVersion::NoStream, events(1))
                .with_command_id(command),
        )
        .await
        .unwrap();
    // A retry of the same command with its stale expectation is a duplicate, not a conflict.
    let retry = store
        .append(
            AppendRequest::new(id.clone(), ExpectedVersion::NoStream, events(1))
                .with_command_id(command),
        )
        .await
        .unwrap_err();
    let AppendError::DuplicateCommand(record) = retry else {
        panic!("expected a duplicate command, got {retry:?}");
    };
    assert_eq!(
        record,
        CommandRecord::new(command, id, StreamVersion(0), StreamVersion(1))
    );
}

#[tokio::test]
async fn load_crosses_chunk_boundaries_without_holes() {
    let store = MemoryStore::new();
    let id = stream("long");
    let total = LOAD_CHUNK as u64 * 2 + 3;
    append(&store, &id, total).await;
    append(&store, &stream("other"), 5).await;
    let loaded: Vec<_> = store
        .load(&id, StreamVersion(1))
        .try_collect()
        .await
        .unwrap();
    let versions: Vec<u64> = loaded.iter().map(|e| e.stream_version.get()).collect();
    assert_eq!(versions, (2..=total).collect::<Vec<_>>());
    assert!(loaded.iter().all(|e| e.stream_id == id));
}

#[tokio::test]
async fn a_load_under_way_sees_a_hole_free_prefix() {
    let store = MemoryStore::new();
    let id = stream("growing");
    append(&store, &id, LOAD_CHUNK as u64).await;
    let mut load = std::pin::pin!(store.load(&id, StreamVersion::INITIAL));
    let first = load.try_next().await.unwrap().unwrap();
    assert_eq!(first.stream_version, StreamVersion(1));
    append(&store, &id, 10).await;
    let mut expected = 2;
    while let Some(event) = load.try_next().await.unwrap() {
        assert_eq!(event.stream_version, StreamVersion(expected));
        expected += 1;
    }
    assert!(
        expected > LOAD_CHUNK as u64,
        "stopped at version {expected}"
    );
}

#[tokio::test]
async fn a_poisoned_lock_is_recovered() {
    let store = MemoryStore::new();
    append(&store, &stream("a"), 1).await;
    let poisoner = store.clone();
    let result = std::thread::spawn(move || {
        let _guard = poisoner.write();
        panic!("poisoning the lock on purpose");
    })
    .join();
    assert!(result.is_err());
    assert!(store.inner.state.is_poisoned());
    let committed = append(&store, &stream("a"), 1).await;
    assert_eq!(committed.version_after, StreamVersion(2));
    assert_eq!(store.head().await.unwrap(), committed.last_position);
}

#[tokio::test]
async fn watch_value_is_the_head_position() {
    let store = MemoryStore::new();
    let mut watch = store.inner.head.subscribe();
    append(&store, &stream("a"), 3).await;
    tokio::time::timeout(Duration::from_secs(5), watch.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(*watch.borrow_and_update(), 3);
}

#[tokio::test]
async fn clones_share_the_log() {
    let store = MemoryStore::new();
    let other = store.clone();
    append(&other, &stream("a"), 2).await;
    assert_eq!(
        store.stream_version(&stream("a")).await.unwrap(),
        StreamVersion(2)
    );
    assert_eq!(
        format!("{store:?}"),
        "MemoryStore { events: 2, streams: 1, .. }"
    );
}

#[tokio::test]
async fn checkpoints_are_kept_per_projection() {
    let store = MemoryStore::new();
    let at = LogPosition::new(4, GlobalPosition(4));
    store.begin("a").await.unwrap();
    store.commit((), "a", at).await.unwrap();
    assert_eq!(store.checkpoint("a").await.unwrap(), at);
    assert_eq!(store.checkpoint("b").await.unwrap(), LogPosition::START);
    store.reset_checkpoint("a").await.unwrap();
    assert_eq!(store.checkpoint("a").await.unwrap(), LogPosition::START);
}
