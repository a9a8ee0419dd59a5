//! Typed errors for a file from a newer version, a payload that is not JSON, a payload that no
//! longer decodes, broken metadata, an in-memory URL and a missing file; and the outbox: the
//! caller's rows and the events commit or roll back together.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use common::{Account, Deposit, TempDir};
use es_core::{
    AppendError, AppendRequest, BackendErrorKind, CommandError, EventFilter, ExpectedVersion,
    LoadError, LogPosition, Metadata, NewEvent, Registry, StreamId, StreamVersion,
};
use es_sqlite::SqliteStore;
use futures_util::{StreamExt as _, TryStreamExt as _};

#[tokio::test]
async fn a_file_migrated_by_a_newer_version_is_refused() {
    let dir = TempDir::new("newer-schema");
    let store = dir.store("events.db").await;
    sqlx::query(
        "INSERT INTO _es_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', TRUE, x'00', 0)",
    )
    .execute(store.writer())
    .await
    .unwrap();
    store.close().await;
    let error = SqliteStore::open(dir.file("events.db")).await.unwrap_err();
    assert_eq!(error.kind(), BackendErrorKind::SchemaMismatch, "{error}");
    assert!(error.to_string().contains("events.db"), "{error}");
}

#[tokio::test]
async fn an_in_memory_database_and_a_missing_file_are_refused() {
    for url in ["sqlite::memory:", ":memory:", "sqlite:file.db?mode=memory"] {
        let error = SqliteStore::connect(url).await.unwrap_err();
        assert_eq!(
            error.kind(),
            BackendErrorKind::InvalidInput,
            "{url}: {error}"
        );
    }
    let dir = TempDir::new("missing");
    let error = SqliteStore::options()
        .create_if_missing(false)
        .open(dir.file("absent.db"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BackendErrorKind::Unavailable, "{error}");
    assert!(!dir.file("absent.db").exists());
    // A sqlite: URL works as well as a path.
    let url = format!("sqlite://{}", dir.file("by-url.db").display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.close().await;
    assert!(dir.file("by-url.db").exists());
}

fn deposit_event(cents: i64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({ "cents": cents })).unwrap();
    NewEvent::new("deposited", 1, payload, Metadata::new())
}

#[tokio::test]
async fn a_payload_that_is_not_json_is_corrupt_and_names_position_stream_and_version() {
    let dir = TempDir::new("not-json");
    let store = dir.store("events.db").await;
    let stream = StreamId::new("account-a").unwrap();
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![deposit_event(1), deposit_event(2)],
        ))
        .await
        .unwrap();
    sqlx::query("UPDATE events SET payload = '{\"cents\": 2' WHERE stream_version = 2")
        .execute(store.writer())
        .await
        .unwrap();

    let check = |error: &LoadError| {
        let LoadError::Backend(backend) = error else {
            panic!("expected a back-end error, got {error:?}");
        };
        assert_eq!(backend.kind(), BackendErrorKind::Corrupt, "{backend}");
        let message = backend.to_string();
        assert!(message.contains("position 2"), "{message}");
        assert!(
            message.contains("version 2 of stream `account-a`"),
            "{message}"
        );
        assert!(message.contains("deposited"), "{message}");
        assert!(
            std::error::Error::source(backend).is_some(),
            "the JSON error is the source"
        );
    };
    let loaded: Vec<_> = store
        .load(&stream, StreamVersion::INITIAL)
        .collect::<Vec<_>>()
        .await;
    assert_eq!(loaded.len(), 2);
    assert!(loaded[0].is_ok(), "the good event before it loads");
    check(loaded[1].as_ref().unwrap_err());
    let error = store
        .read_all(LogPosition::START, 10, EventFilter::All)
        .await
        .unwrap_err();
    check(&error);
    // The command path's fold: the good event is visited, then the same error.
    let mut visited = Vec::new();
    let error = store
        .fold_stream(&stream, StreamVersion::INITIAL, |event| {
            visited.push(event.stream_version);
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .await
        .unwrap_err();
    assert_eq!(visited, [StreamVersion(1)]);
    check(&error);

    // Through the command path: a typed load error, and nothing is appended.
    let app = Registry::new(store.clone())
        .aggregate::<Account>()
        .build()
        .await
        .unwrap();
    let command = app.execute::<Account>("a", Deposit(1)).await.unwrap_err();
    assert!(matches!(command, CommandError::Load { .. }), "{command:?}");
    assert_eq!(
        store.stream_version(&stream).await.unwrap(),
        StreamVersion(2)
    );
    drop(app);
    store.close().await;
}

#[tokio::test]
async fn a_payload_of_the_wrong_shape_fails_to_decode_and_changes_nothing() {
    let dir = TempDir::new("wrong-shape");
    let store = dir.store("events.db").await;
    let app = Registry::new(store.clone())
        .aggregate::<Account>()
        .build()
        .await
        .unwrap();
    app.execute::<Account>("a", Deposit(5)).await.unwrap();
    sqlx::query("UPDATE events SET payload = '{\"cents\": \"five\"}'")
        .execute(store.writer())
        .await
        .unwrap();
    match app.load::<Account>("a").await.unwrap_err() {
        LoadError::Decode {
            stream_id,
            stream_version,
            source,
        } => {
            assert_eq!(stream_id.as_str(), "account-a");
            assert_eq!(stream_version, StreamVersion(1));
            assert_eq!(source.event_type(), "deposited");
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    let stream = StreamId::new("account-a").unwrap();
    assert!(app.execute::<Account>("a", Deposit(1)).await.is_err());
    assert_eq!(
        store.stream_version(&stream).await.unwrap(),
        StreamVersion(1)
    );
    drop(app);
    store.close().await;
}

#[tokio::test]
async fn broken_metadata_is_corrupt_and_names_the_position_and_stream() {
    let dir = TempDir::new("bad-metadata");
    let store = dir.store("events.db").await;
    let stream = StreamId::new("account-m").unwrap();
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![deposit_event(1)],
        ))
        .await
        .unwrap();
    sqlx::query("UPDATE events SET metadata = '[1, 2]'")
        .execute(store.writer())
        .await
        .unwrap();
    let error = store
        .load(&stream, StreamVersion::INITIAL)
        .try_collect::<Vec<_>>()
        .await
        .unwrap_err();
    let LoadError::Backend(backend) = &error else {
        panic!("expected a back-end error, got {error:?}");
    };
    assert_eq!(backend.kind(), BackendErrorKind::Corrupt);
    let message = backend.to_string();
    assert!(message.contains("position 1"), "{message}");
    assert!(message.contains("account-m"), "{message}");
    store.close().await;
}

#[tokio::test]
async fn the_callers_rows_and_the_events_commit_or_roll_back_together() {
    let dir = TempDir::new("outbox");
    let store = dir.store("events.db").await;
    sqlx::query("CREATE TABLE orders (id TEXT PRIMARY KEY)")
        .execute(store.writer())
        .await
        .unwrap();
    let request = |id: &str| {
        AppendRequest::new(
            StreamId::new(format!("account-{id}")).unwrap(),
            ExpectedVersion::NoStream,
            vec![deposit_event(1)],
        )
    };
    let mut watch = store.watch();
    for (id, commit) in [("kept", true), ("dropped", false)] {
        let mut transaction = store.begin_write().await.unwrap();
        sqlx::query("INSERT INTO orders (id) VALUES (?1)")
            .bind(id)
            .execute(&mut *transaction)
            .await
            .unwrap();
        store
            .append_in(&mut transaction, request(id))
            .await
            .unwrap();
        if commit {
            transaction.commit().await.unwrap();
            store.wake_readers();
        } else {
            transaction.rollback().await.unwrap();
        }
    }
    tokio::time::timeout(std::time::Duration::from_secs(10), watch.changed())
        .await
        .expect("wake_readers wakes the watch");
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_all(store.readers())
        .await
        .unwrap();
    assert_eq!(rows, ["kept"]);
    let kept = StreamId::new("account-kept").unwrap();
    let dropped = StreamId::new("account-dropped").unwrap();
    assert_eq!(store.stream_version(&kept).await.unwrap(), StreamVersion(1));
    assert_eq!(
        store.stream_version(&dropped).await.unwrap(),
        StreamVersion::INITIAL
    );

    // A refused append inside the caller's transaction is a typed conflict, and leaves the
    // transaction usable with the caller's own writes intact.
    let mut transaction = store.begin_write().await.unwrap();
    sqlx::query("INSERT INTO orders (id) VALUES ('after-conflict')")
        .execute(&mut *transaction)
        .await
        .unwrap();
    let error = store
        .append_in(&mut transaction, request("kept"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            AppendError::Conflict {
                actual: StreamVersion(1),
                ..
            }
        ),
        "{error:?}"
    );
    store
        .append_in(
            &mut transaction,
            AppendRequest::new(
                kept.clone(),
                ExpectedVersion::Exact(StreamVersion(1)),
                vec![deposit_event(2)],
            ),
        )
        .await
        .unwrap();
    transaction.commit().await.unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT id FROM orders ORDER BY id")
        .fetch_all(store.readers())
        .await
        .unwrap();
    assert_eq!(rows, ["after-conflict", "kept"]);
    assert_eq!(store.stream_version(&kept).await.unwrap(), StreamVersion(2));

    // A duplicate event id in the caller's transaction names the id, and writes nothing.
    let mut transaction = store.begin_write().await.unwrap();
    let mut twice = deposit_event(3);
    let first = store
        .append_in(
            &mut transaction,
            AppendRequest::new(kept.clone(), ExpectedVersion::Any, vec![twice.clone()]),
        )
        .await
        .unwrap();
    assert_eq!(first.version_after, StreamVersion(3));
    twice.payload = serde_json::value::to_raw_value(&4).unwrap();
    let error = store
        .append_in(
            &mut transaction,
            AppendRequest::new(
                kept.clone(),
                ExpectedVersion::Any,
                vec![deposit_event(5), twice.clone()],
            ),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&error, AppendError::DuplicateEventId { event_id, .. } if *event_id == twice.id),
        "{error:?}"
    );
    transaction.commit().await.unwrap();
    assert_eq!(store.stream_version(&kept).await.unwrap(), StreamVersion(3));

    // On a connection outside any transaction, append_in commits on its own.
    let mut connection = store.writer().acquire().await.unwrap();
    store
        .append_in(
            &mut connection,
            AppendRequest::new(
                kept.clone(),
                ExpectedVersion::Exact(StreamVersion(3)),
                vec![deposit_event(6)],
            ),
        )
        .await
        .unwrap();
    drop(connection);
    assert_eq!(store.stream_version(&kept).await.unwrap(), StreamVersion(4));
    store.close().await;
}

#[tokio::test]
async fn a_lock_held_elsewhere_beyond_the_busy_timeout_is_unavailable_and_writes_nothing() {
    use sqlx::{ConnectOptions as _, Connection as _};

    let dir = TempDir::new("busy");
    let store = SqliteStore::options()
        .busy_timeout(std::time::Duration::from_millis(50))
        .open(dir.file("events.db"))
        .await
        .unwrap();
    // Another "process": a connection of its own holding the file's write lock.
    let mut other = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(dir.file("events.db"))
        .connect()
        .await
        .unwrap();
    let held = other.begin_with("BEGIN IMMEDIATE").await.unwrap();
    let stream = StreamId::new("account-busy").unwrap();
    let error = store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![deposit_event(1)],
        ))
        .await
        .unwrap_err();
    let AppendError::Backend(backend) = &error else {
        panic!("expected a back-end error, got {error:?}");
    };
    assert_eq!(backend.kind(), BackendErrorKind::Unavailable, "{backend}");
    assert!(backend.to_string().contains("account-busy"), "{backend}");
    // Readers are not blocked by the writer (WAL).
    assert_eq!(
        store.stream_version(&stream).await.unwrap(),
        StreamVersion::INITIAL
    );
    held.rollback().await.unwrap();
    other.close().await.unwrap();
    // Once the lock is released, the same append goes through.
    store
        .append(AppendRequest::new(
            stream.clone(),
            ExpectedVersion::NoStream,
            vec![deposit_event(1)],
        ))
        .await
        .unwrap();
    store.close().await;
}
