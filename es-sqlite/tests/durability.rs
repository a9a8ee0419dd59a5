//! What was acknowledged is in the file: a store dropped (or closed) and opened again on the
//! same file finds every event, command record, snapshot and checkpoint.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::CommandLog;
use es_core::EventLog;
use es_core::SnapshotStore;
mod common;

use common::TempDir;
use es_core::snapshot::Snapshot;
use es_core::{
    AppendError, AppendRequest, CheckpointStore as _, EventFilter, ExpectedVersion, GlobalPosition,
    LogPosition, Metadata, NewEvent, StreamId, StreamVersion,
};
use es_sqlite::SqliteStore;
use futures_util::TryStreamExt as _;
use serde_json::json;
use uuid::Uuid;

fn events(from: u64, to: u64) -> Vec<NewEvent> {
    (from..=to)
        .map(|n| {
            let payload = serde_json::value::to_raw_value(&json!({ "n": n })).unwrap();
            NewEvent::new(
                "test.numbered",
                1,
                payload,
                Metadata::new().with_header("n", n.to_string()),
            )
        })
        .collect()
}

async fn assert_everything_is_there(store: &SqliteStore, command: Uuid, events_in_log: u64) {
    let stream = StreamId::new("durable").unwrap();
    let loaded: Vec<_> = store
        .load(&stream, StreamVersion::INITIAL)
        .try_collect()
        .await
        .unwrap();
    assert_eq!(loaded.len() as u64, events_in_log);
    for (n, event) in (1..).zip(&loaded) {
        assert_eq!(event.stream_version, StreamVersion(n));
        assert_eq!(event.position, GlobalPosition(n));
        let payload: serde_json::Value = serde_json::from_str(event.payload.get()).unwrap();
        assert_eq!(payload, json!({ "n": n }));
        assert_eq!(event.metadata.headers.get("n"), Some(&n.to_string()));
    }
    let log = store
        .read_all(LogPosition::START, 1000, EventFilter::All)
        .await
        .unwrap();
    assert_eq!(log.len() as u64, events_in_log);
    assert_eq!(
        store.head().await.unwrap(),
        Some(LogPosition::new(
            events_in_log,
            GlobalPosition(events_in_log)
        ))
    );
    let record = store
        .find_command(command)
        .await
        .unwrap()
        .expect("the command is recorded");
    assert_eq!(record.stream_id, stream);
    assert_eq!(record.version_after, StreamVersion(3));
    // The idempotency record is durable too: the retried command is still refused.
    let retried = store
        .append(
            AppendRequest::new(stream.clone(), ExpectedVersion::Any, events(100, 100))
                .with_command_id(command),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(retried, AppendError::DuplicateCommand(_)),
        "{retried:?}"
    );
    let snapshot = store
        .load_snapshot(&stream)
        .await
        .unwrap()
        .expect("the snapshot is there");
    assert_eq!(snapshot.stream_version, StreamVersion(3));
    assert_eq!(snapshot.state.get(), r#"{"total":6}"#);
    assert_eq!(
        store.checkpoint("summary").await.unwrap(),
        LogPosition::new(3, GlobalPosition(3))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_commands_snapshots_and_checkpoints_survive_reopening() {
    let dir = TempDir::new("durability");
    let path = dir.file("events.db");
    let stream = StreamId::new("durable").unwrap();
    let command = Uuid::from_u128(0x1234);

    let store = SqliteStore::open(&path).await.unwrap();
    store
        .append(
            AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, events(1, 3))
                .with_command_id(command),
        )
        .await
        .unwrap();
    store
        .save_snapshot(
            &stream,
            Snapshot::new(
                StreamVersion(3),
                1,
                serde_json::value::to_raw_value(&json!({ "total": 6 })).unwrap(),
            ),
        )
        .await
        .unwrap();
    let batch = store.begin("summary").await.unwrap();
    store
        .commit(batch, "summary", LogPosition::new(3, GlobalPosition(3)))
        .await
        .unwrap();
    // A batch begun and dropped leaves the checkpoint where it was.
    let abandoned = store.begin("summary").await.unwrap();
    drop(abandoned);
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::Exact(StreamVersion(3)),
            events(4, 5),
        ))
        .await
        .unwrap();

    // Dropped without closing, as a process that stops would.
    drop(store);
    let store = SqliteStore::open(&path).await.unwrap();
    assert_everything_is_there(&store, command, 5).await;

    // Appending after reopening continues the log where it stopped.
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::Exact(StreamVersion(5)),
            events(6, 6),
        ))
        .await
        .unwrap();
    store.close().await;
    assert!(
        !dir.file("events.db-wal").exists(),
        "closing checkpoints and removes the WAL"
    );
    let store = SqliteStore::options()
        .create_if_missing(false)
        .open(&path)
        .await
        .unwrap();
    assert_everything_is_there(&store, command, 6).await;
    store.close().await;
}

#[tokio::test]
async fn the_writer_uses_wal_full_sync_and_foreign_keys_and_readers_are_read_only() {
    let dir = TempDir::new("pragmas");
    let store = dir.store("events.db").await;
    let mut writer = store.writer().acquire().await.unwrap();
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *writer)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(&mut *writer)
        .await
        .unwrap();
    assert_eq!(synchronous, 2, "synchronous=FULL");
    let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
        .fetch_one(&mut *writer)
        .await
        .unwrap();
    assert_eq!(foreign_keys, 1);
    let busy: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
        .fetch_one(&mut *writer)
        .await
        .unwrap();
    assert!(busy > 0);
    drop(writer);
    let refused = sqlx::query("DELETE FROM events")
        .execute(store.readers())
        .await;
    assert!(refused.is_err(), "a reader connection wrote");
    store.close().await;
}
