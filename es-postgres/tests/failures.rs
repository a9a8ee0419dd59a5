//! Typed errors for a database that is down, a schema from a newer version and a payload that no
//! longer decodes; a snapshot ahead of its stream; and the outbox: the caller's rows and the
//! events commit or roll back together.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
use es_core::SnapshotStore;
mod common;

use common::{Account, Deposit};
use es_core::{
    AppendRequest, BackendErrorKind, CommandError, ExpectedVersion, LoadError, Metadata, NewEvent,
    Registry, StreamId, StreamVersion,
};
use es_postgres::PostgresStore;

#[tokio::test]
async fn a_database_that_is_down_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let error = PostgresStore::options()
        .connect_timeout(std::time::Duration::from_secs(1))
        .connect("postgres://postgres@127.0.0.1:1/test")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), BackendErrorKind::Unavailable, "{error}");
    assert!(error.to_string().contains("connect"), "{error}");
}

#[tokio::test]
async fn a_schema_migrated_by_a_newer_version_is_refused() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schemas.fresh();
        let options = PostgresStore::options().schema(schema.clone());
        options.clone().with_pool(pool.clone()).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\"._es_migrations (version, description, success, checksum, execution_time) \
             VALUES (99999, 'from the future', TRUE, '\\x00', 0)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let error = options.with_pool(pool.clone()).await.unwrap_err();
        assert_eq!(error.kind(), BackendErrorKind::SchemaMismatch, "{error}");
    })
    .await;
}

#[tokio::test]
async fn an_invalid_schema_name_is_refused_before_any_sql() {
    let pool = common::pool(1).await;
    for name in [
        "",
        "Upper",
        "drop table x; --",
        "1starts_with_digit",
        &"x".repeat(49),
    ] {
        let error = PostgresStore::options()
            .schema(name)
            .with_pool(pool.clone())
            .await
            .unwrap_err();
        assert_eq!(
            error.kind(),
            BackendErrorKind::InvalidInput,
            "{name}: {error}"
        );
    }
}

#[tokio::test]
async fn a_payload_that_no_longer_decodes_is_a_typed_error_and_changes_nothing() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schemas.fresh();
        let store = PostgresStore::options()
            .schema(schema.clone())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let app = Registry::new(store.clone())
            .aggregate::<Account>()
            .build()
            .await
            .unwrap();
        app.execute::<Account>("a", Deposit(5)).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "UPDATE \"{schema}\".events SET payload = '{{\"cents\": \"five\"}}'"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let error = app.load::<Account>("a").await.unwrap_err();
        match &error {
            LoadError::Decode {
                stream_id,
                stream_version,
                source,
            } => {
                assert_eq!(stream_id.as_str(), "account-a");
                assert_eq!(*stream_version, StreamVersion(1));
                assert_eq!(source.event_type(), "deposited");
            }
            other => panic!("expected a decode error, got {other:?}"),
        }
        let command = app.execute::<Account>("a", Deposit(1)).await.unwrap_err();
        assert!(matches!(command, CommandError::Load { .. }), "{command:?}");
        let stream = StreamId::new("account-a").unwrap();
        assert_eq!(
            store.stream_version(&stream).await.unwrap(),
            StreamVersion(1)
        );
    })
    .await;
}

#[tokio::test]
async fn the_callers_rows_and_the_events_commit_or_roll_back_together() {
    common::with_schemas(3, |pool, schemas| async move {
        let schema = schemas.fresh();
        let store = PostgresStore::options()
            .schema(schema.clone())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let table = format!("\"{schema}\".orders");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} (id TEXT PRIMARY KEY)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let request = |id: &str| {
            let payload =
                serde_json::value::to_raw_value(&serde_json::json!({"cents": 1})).unwrap();
            AppendRequest::new(
                StreamId::new(format!("account-{id}")).unwrap(),
                ExpectedVersion::NoStream,
                vec![NewEvent::new("deposited", 1, payload, Metadata::new())],
            )
        };
        for (id, commit) in [("kept", true), ("dropped", false)] {
            let mut transaction = pool.begin().await.unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (id) VALUES ($1)"
            )))
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
            } else {
                transaction.rollback().await.unwrap();
            }
        }
        let rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT id FROM {table}")))
                .fetch_all(&pool)
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
        // A conflict inside the caller's transaction is returned, not retried.
        let mut transaction = pool.begin().await.unwrap();
        let error = store
            .append_in(&mut transaction, request("kept"))
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                es_core::AppendError::Conflict {
                    actual: StreamVersion(1),
                    ..
                }
            ),
            "{error:?}"
        );
    })
    .await;
}

/// An account whose state is snapshotted after every append.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, es_core::Aggregate)]
#[aggregate(
    name = "ledger",
    error = common::Never,
    events(common::Deposited),
    commands(Deposit),
    snapshot = 1
)]
struct Ledger {
    cents: i64,
}

impl es_core::Apply<common::Deposited> for Ledger {
    fn apply(&mut self, event: &common::Deposited) {
        self.cents += event.cents;
    }
}

impl es_core::Handle<Deposit> for Ledger {
    fn handle(&self, command: Deposit) -> Result<es_core::Events<Self>, common::Never> {
        Ok(es_core::Events::one(common::Deposited { cents: command.0 }))
    }
}

/// The command path lets the unique version key alone check a version it read from the
/// events: a snapshot claiming a version the stream never reached is checked against the
/// stream (its own last event must be there), ignored, and the stream replayed, so the command
/// appends after the stream's real end and leaves no hole in its versions.
#[tokio::test]
async fn a_snapshot_ahead_of_its_stream_is_ignored_and_leaves_no_holes() {
    common::with_schemas(2, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let app = Registry::new(store.clone())
            .aggregate_with(es_core::AggregateSettings::<Ledger>::default().snapshot_every(1))
            .build()
            .await
            .unwrap();
        app.execute::<Ledger>("l", Deposit(5)).await.unwrap();
        app.execute::<Ledger>("l", Deposit(7)).await.unwrap();
        let stream = StreamId::new("ledger-l").unwrap();
        let save_snapshot = |version: u64, cents: i64| {
            let state = serde_json::value::to_raw_value(&serde_json::json!({ "cents": cents }));
            let snapshot =
                es_core::snapshot::Snapshot::new(StreamVersion(version), 1, state.unwrap());
            let (store, stream) = (store.clone(), stream.clone());
            async move { store.save_snapshot(&stream, snapshot).await.unwrap() }
        };
        save_snapshot(5, 0).await;

        let executed = app.execute::<Ledger>("l", Deposit(1)).await.unwrap();
        assert_eq!(executed.version, StreamVersion(3));
        assert_eq!(
            executed.state.cents, 13,
            "the snapshot beyond the stream was used"
        );
        assert_eq!(
            store.stream_version(&stream).await.unwrap(),
            StreamVersion(3)
        );

        // A snapshot in line with the stream is used: its state, not the events', loads.
        save_snapshot(3, 100).await;
        let executed = app.execute::<Ledger>("l", Deposit(1)).await.unwrap();
        assert_eq!(executed.version, StreamVersion(4));
        assert_eq!(executed.state.cents, 101);
    })
    .await;
}
