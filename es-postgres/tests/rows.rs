//! `TableRows`: a read-model table's rows loaded in one query, changed in memory and written
//! back in one statement, with the table's own types, defaults and generated columns.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use es_postgres::{RowsError, TableRows};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Row as _};

/// A fresh schema with `table` created in it from `columns`; returns the schema.
async fn schema_with_table(
    pool: &PgPool,
    schemas: &common::Schemas,
    table: &str,
    columns: &str,
) -> String {
    let schema = schemas.fresh();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA \"{schema}\"; CREATE TABLE \"{schema}\".{table} ({columns})"
    )))
    .execute(pool)
    .await
    .unwrap();
    schema
}

/// The summary's columns as the row type sees them: not the key, not `placed_at` (defaulted),
/// not `doubled` (generated).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Summary {
    item_count: i64,
    total: f64,
    tags: Vec<String>,
    paid: bool,
}

const SUMMARY: &str = "order_id TEXT PRIMARY KEY, status TEXT NOT NULL DEFAULT 'new', \
     item_count BIGINT NOT NULL, total NUMERIC(12, 2) NOT NULL, tags TEXT[] NOT NULL, \
     paid BOOLEAN NOT NULL, placed_at TIMESTAMPTZ NOT NULL DEFAULT now(), \
     doubled BIGINT GENERATED ALWAYS AS (item_count * 2) STORED";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_load_change_and_flush_in_the_tables_own_types() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(&pool, &schemas, "summary", SUMMARY).await;
        let table = format!("\"{schema}\".summary");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (order_id, status, item_count, total, tags, paid) \
             VALUES ('a', 'placed', 1, 2.50, '{{x}}', false)"
        )))
        .execute(&pool)
        .await
        .unwrap();

        let mut rows = TableRows::<String, Summary>::in_schema(&schema, "summary", "order_id");
        let mut tx = pool.begin().await.unwrap();
        rows.load(&mut tx, ["a", "b", "a"].map(str::to_owned))
            .await
            .unwrap();
        assert_eq!(rows.len(), 2, "a repeated key is loaded once");
        assert_eq!(
            rows.get("a").unwrap(),
            Some(&Summary {
                item_count: 1,
                total: 2.5,
                tags: vec!["x".to_owned()],
                paid: false,
            })
        );
        assert_eq!(rows.get("b").unwrap(), None, "b has no row yet");
        let missing = rows.get("c").unwrap_err();
        assert!(
            matches!(&missing, RowsError::NotLoaded { key, .. } if key == "\"c\""),
            "{missing}"
        );
        assert!(missing.to_string().contains("begin_batch"), "{missing}");

        let a = rows.get_mut("a").unwrap().unwrap();
        a.item_count += 2;
        a.total += 1.25;
        a.tags.push("y".to_owned());
        a.paid = true;
        rows.get_or_insert_with("b", Summary::default)
            .unwrap()
            .item_count = 7;
        rows.flush(&mut tx).await.unwrap();
        assert!(rows.is_empty(), "a flush empties the batch");
        tx.commit().await.unwrap();

        let stored = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT order_id, status, item_count, total::text, tags, paid, doubled, \
             placed_at IS NOT NULL FROM {table} ORDER BY order_id"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        let stored: Vec<_> = stored
            .iter()
            .map(|row| {
                (
                    row.get::<String, _>(0),
                    row.get::<String, _>(1),
                    row.get::<i64, _>(2),
                    row.get::<String, _>(3),
                    row.get::<Vec<String>, _>(4),
                    row.get::<bool, _>(5),
                    row.get::<i64, _>(6),
                    row.get::<bool, _>(7),
                )
            })
            .collect();
        let tags = |tags: &[&str]| tags.iter().map(|tag| (*tag).to_owned()).collect();
        assert_eq!(
            stored,
            vec![
                // The status the row type does not name keeps its value...
                (
                    "a".into(),
                    "placed".into(),
                    3,
                    "3.75".into(),
                    tags(&["x", "y"]),
                    true,
                    6,
                    true
                ),
                // ...or takes its default; the generated column is computed.
                (
                    "b".into(),
                    "new".into(),
                    7,
                    "0.00".into(),
                    tags(&[]),
                    false,
                    14,
                    true
                ),
            ]
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_rows_are_deleted_and_rows_only_read_are_not_written() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(&pool, &schemas, "summary", SUMMARY).await;
        let table = format!("\"{schema}\".summary");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (order_id, item_count, total, tags, paid) \
             VALUES ('a', 1, 1, '{{}}', false), ('b', 2, 2, '{{}}', false)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let version = |pool: PgPool, table: String| async move {
            sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
                "SELECT xmin::text FROM {table} WHERE order_id = 'b'"
            )))
            .fetch_one(&pool)
            .await
            .unwrap()
        };
        let before = version(pool.clone(), table.clone()).await;

        let mut rows = TableRows::<String, Summary>::in_schema(&schema, "summary", "order_id");
        let mut tx = pool.begin().await.unwrap();
        rows.load(&mut tx, ["a".to_owned(), "b".to_owned()])
            .await
            .unwrap();
        assert_eq!(rows.get("b").unwrap().unwrap().item_count, 2);
        let removed = rows.remove("a".to_owned());
        assert_eq!(removed.map(|row| row.item_count), Some(1));
        assert_eq!(rows.get("a").unwrap(), None, "a removed row reads as none");
        rows.flush(&mut tx).await.unwrap();
        tx.commit().await.unwrap();

        let left: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT order_id FROM {table} ORDER BY order_id"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(left, ["b"]);
        assert_eq!(
            version(pool.clone(), table.clone()).await,
            before,
            "a row only read is not rewritten"
        );
    })
    .await;
}

/// The rows of `table`: each key with its item count, in key order.
async fn item_counts(pool: &PgPool, table: &str) -> Vec<(String, i64)> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT order_id, item_count FROM {table} ORDER BY order_id"
    )))
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_loaded_absent_are_inserted_so_one_stored_meanwhile_fails_the_flush() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(&pool, &schemas, "summary", SUMMARY).await;
        let table = format!("\"{schema}\".summary");
        let stored = |key: &str, count: i64| {
            format!(
                "INSERT INTO {table} (order_id, item_count, total, tags, paid) \
                 VALUES ('{key}', {count}, 0, '{{}}', false)"
            )
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(stored("s", 1)))
            .execute(&pool)
            .await
            .unwrap();
        let count = |item_count| Summary {
            item_count,
            ..Summary::default()
        };

        let mut rows = TableRows::<String, Summary>::in_schema(&schema, "summary", "order_id");
        let mut tx = pool.begin().await.unwrap();
        rows.load(&mut tx, ["a", "b"].map(str::to_owned))
            .await
            .unwrap();
        // Another session stores `b` after the batch found it absent.
        sqlx::raw_sql(sqlx::AssertSqlSafe(stored("b", 50)))
            .execute(&pool)
            .await
            .unwrap();
        rows.insert("a".to_owned(), count(2));
        // Removed and inserted again, `b` is still known absent; `s`, never loaded, may be
        // stored, so it is upserted in the same statement.
        rows.remove("b".to_owned());
        rows.insert("b".to_owned(), count(3));
        rows.insert("s".to_owned(), count(4));
        let error = rows.flush(&mut tx).await.unwrap_err();
        let RowsError::Database {
            source: sqlx::Error::Database(refused),
            ..
        } = &error
        else {
            panic!("expected the database's refusal, got {error}");
        };
        assert_eq!(refused.code().as_deref(), Some("23505"), "{error}");
        drop(tx);
        assert_eq!(
            item_counts(&pool, &table).await,
            [("b".to_owned(), 50), ("s".to_owned(), 1)],
            "the failed batch wrote nothing"
        );

        // The retry loads `b`, and writes all three.
        let mut tx = pool.begin().await.unwrap();
        rows.load(&mut tx, ["a", "b"].map(str::to_owned))
            .await
            .unwrap();
        rows.insert("a".to_owned(), count(2));
        rows.get_mut("b").unwrap().unwrap().item_count += 3;
        rows.insert("s".to_owned(), count(4));
        rows.flush(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        assert_eq!(
            item_counts(&pool, &table).await,
            [
                ("a".to_owned(), 2),
                ("b".to_owned(), 53),
                ("s".to_owned(), 4)
            ]
        );
    })
    .await;
}

/// A row keyed by a UUID, with a `jsonb` column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Device {
    id: uuid::Uuid,
    settings: serde_json::Value,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserted_rows_replace_what_is_stored_and_the_key_column_follows_the_key() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "devices",
            "id UUID PRIMARY KEY, settings JSONB NOT NULL",
        )
        .await;
        let (first, second) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let mut rows = TableRows::<uuid::Uuid, Device>::in_schema(&schema, "devices", "id");
        let mut tx = pool.begin().await.unwrap();
        // Not loaded: an insert needs no load, and the row's own `id` field is overridden.
        rows.insert(
            first,
            Device {
                id: second,
                settings: serde_json::json!({"volume": 3, "tags": ["a"]}),
            },
        );
        rows.flush(&mut tx).await.unwrap();
        rows.insert(
            first,
            Device {
                id: first,
                settings: serde_json::json!({"volume": 4}),
            },
        );
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, [first, second]).await.unwrap();
        assert_eq!(
            rows.get(&first).unwrap(),
            Some(&Device {
                id: first,
                settings: serde_json::json!({"volume": 4}),
            })
        );
        assert_eq!(rows.get(&second).unwrap(), None);
        tx.commit().await.unwrap();
    })
    .await;
}

/// A row naming a field the table does not have.
#[derive(Debug, Serialize, Deserialize, Default)]
struct Misnamed {
    item_cuont: i64,
}

/// A row that cannot hold what is stored.
#[derive(Debug, Serialize, Deserialize, Default)]
struct Narrow {
    item_count: u8,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_name_the_table_and_what_is_wrong() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(&pool, &schemas, "summary", SUMMARY).await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"{schema}\".loose (order_id TEXT, item_count BIGINT); \
             INSERT INTO \"{schema}\".summary (order_id, item_count, total, tags, paid) \
             VALUES ('big', 1000, 0, '{{}}', false)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        let key = || ["big".to_owned()];

        let mut rows = TableRows::<String, Summary>::in_schema(&schema, "nothing", "order_id");
        let error = rows.load(&mut tx, key()).await.unwrap_err();
        assert!(matches!(error, RowsError::NoSuchTable { .. }), "{error}");
        assert!(error.to_string().contains("nothing"), "{error}");
        assert!(
            matches!(rows.get("big"), Err(RowsError::NotLoaded { .. })),
            "a failed load knows nothing of its keys"
        );

        let mut rows = TableRows::<String, Summary>::in_schema(&schema, "summary", "id");
        let error = rows.load(&mut tx, key()).await.unwrap_err();
        assert!(
            matches!(&error, RowsError::NoSuchColumn { column, .. } if column == "id"),
            "{error}"
        );

        let mut rows = TableRows::<String, Summary>::in_schema(&schema, "loose", "order_id");
        let error = rows.load(&mut tx, key()).await.unwrap_err();
        assert!(matches!(error, RowsError::KeyNotUnique { .. }), "{error}");
        assert!(error.to_string().contains("PRIMARY KEY"), "{error}");

        let mut rows = TableRows::<String, Misnamed>::in_schema(&schema, "summary", "order_id");
        rows.insert("c".to_owned(), Misnamed::default());
        let error = rows.flush(&mut tx).await.unwrap_err();
        assert!(
            matches!(&error, RowsError::NoSuchColumn { column, .. } if column == "item_cuont"),
            "{error}"
        );

        let mut rows = TableRows::<String, Narrow>::in_schema(&schema, "summary", "order_id");
        let error = rows.load(&mut tx, key()).await.unwrap_err();
        assert!(
            matches!(&error, RowsError::Decode { key, .. } if key == "\"big\""),
            "{error}"
        );
        assert!(error.to_string().contains("summary"), "{error}");
    })
    .await;
}

/// Each account's deposits in `{schema}.tallies`, kept in `TableRows`; a handler fails on 13
/// cents while `refuse_thirteen` is set, after it has changed the row.
#[derive(es_core::Projection)]
#[projection(name = "tallies", events(common::Deposited), begin_batch, end_batch)]
struct Tallies {
    rows: TableRows<String, Tally>,
    refuse_thirteen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Every batch `begin_batch` saw, by its events' count.
    batches: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Tally {
    cents: i64,
    deposits: i64,
}

impl es_core::BeginBatch<es_postgres::PgTransaction> for Tallies {
    async fn begin_batch(
        &mut self,
        events: &[es_core::RecordedEvent],
        tx: &mut es_postgres::PgTransaction,
    ) -> Result<(), es_core::HandlerError> {
        self.batches.lock().unwrap().push(events.len());
        let keys = events
            .iter()
            .map(|event| event.stream_id.as_str().to_owned());
        Ok(self.rows.load(tx, keys).await?)
    }
}

impl es_core::Project<common::Deposited, es_postgres::PgTransaction> for Tallies {
    async fn project(
        &mut self,
        event: es_core::EventEnvelope<common::Deposited>,
        _: &mut es_postgres::PgTransaction,
    ) -> Result<(), es_core::HandlerError> {
        let tally = self
            .rows
            .get_or_insert_with(event.stream_id.as_str(), Tally::default)?;
        tally.cents += event.event.cents;
        tally.deposits += 1;
        if event.event.cents == 13
            && self
                .refuse_thirteen
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(es_core::HandlerError::msg("thirteen is unlucky"));
        }
        Ok(())
    }
}

impl es_core::EndBatch<es_postgres::PgTransaction> for Tallies {
    async fn end_batch(
        &mut self,
        tx: &mut es_postgres::PgTransaction,
    ) -> Result<(), es_core::HandlerError> {
        Ok(self.rows.flush(tx).await?)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_on_table_rows_counts_each_event_once_across_batches_and_a_retry() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use es_core::{AggregateSettings, CheckpointStore as _, Registry};

    common::with_schemas(6, |pool, schemas| async move {
        let (store, schema, table) = schemas
            .store_with_table(
                &pool,
                "tallies",
                "account TEXT PRIMARY KEY, cents BIGINT NOT NULL, deposits BIGINT NOT NULL",
            )
            .await;
        let refuse_thirteen = Arc::new(AtomicBool::new(true));
        let batches = Arc::new(Mutex::new(Vec::new()));
        let app = Registry::new(store.clone())
            .aggregate_with(AggregateSettings::<common::Account>::new(()))
            .projection(Tallies {
                rows: TableRows::in_schema(&schema, "tallies", "account"),
                refuse_thirteen: Arc::clone(&refuse_thirteen),
                batches: Arc::clone(&batches),
            })
            .runner_settings(es_core::RunnerSettings::default().batch_size(4))
            .build()
            .await
            .unwrap();
        // Three accounts, ten deposits: batches of four span accounts, so later batches load
        // rows that earlier ones wrote. The 13 is the sixth deposit, in the second batch.
        let deposits = [1, 2, 3, 4, 5, 13, 7, 8, 9, 10];
        for (n, cents) in deposits.into_iter().enumerate() {
            app.execute::<common::Account>(n % 3, common::Deposit(cents))
                .await
                .unwrap();
        }
        common::wait_visible(&store, 10).await;
        assert!(app.catch_up().await.is_err(), "the second batch fails");
        let tallies = |pool: PgPool, table: String| async move {
            sqlx::query_as::<_, (String, i64, i64)>(sqlx::AssertSqlSafe(format!(
                "SELECT account, cents, deposits FROM {table} ORDER BY account"
            )))
            .fetch_all(&pool)
            .await
            .unwrap()
        };
        let first = vec![
            ("account-0".to_owned(), 1 + 4, 2),
            ("account-1".to_owned(), 2, 1),
            ("account-2".to_owned(), 3, 1),
        ];
        assert_eq!(tallies(pool.clone(), table.clone()).await, first);

        refuse_thirteen.store(false, Ordering::SeqCst);
        app.catch_up().await.unwrap();
        let expected = vec![
            ("account-0".to_owned(), 1 + 4 + 7 + 10, 4),
            ("account-1".to_owned(), 2 + 5 + 8, 3),
            ("account-2".to_owned(), 3 + 13 + 9, 3),
        ];
        assert_eq!(tallies(pool.clone(), table.clone()).await, expected);
        assert_eq!(
            store.checkpoint("tallies").await.unwrap(),
            store.head().await.unwrap().unwrap()
        );
        // The failed batch was begun again whole.
        assert_eq!(*batches.lock().unwrap(), [4, 4, 4, 2]);
    })
    .await;
}

/// A row with a field its table gains only later.
#[derive(Debug, Serialize, Deserialize, Default)]
struct Noted {
    item_count: i64,
    note: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_column_added_while_running_is_found_when_the_batch_is_retried() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "notes",
            "order_id TEXT PRIMARY KEY, item_count BIGINT NOT NULL",
        )
        .await;
        let mut rows = TableRows::<String, Noted>::in_schema(&schema, "notes", "order_id");
        let noted = || Noted {
            item_count: 1,
            note: "fragile".to_owned(),
        };
        let mut tx = pool.begin().await.unwrap();
        rows.insert("a".to_owned(), noted());
        let error = rows.flush(&mut tx).await.unwrap_err();
        assert!(
            matches!(&error, RowsError::NoSuchColumn { column, .. } if column == "note"),
            "{error}"
        );
        drop(tx);

        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE \"{schema}\".notes ADD COLUMN note TEXT"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        rows.insert("a".to_owned(), noted());
        rows.flush(&mut tx).await.unwrap();
        tx.commit().await.unwrap();
        let note: String = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT note FROM \"{schema}\".notes WHERE order_id = 'a'"
        )))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(note, "fragile");
    })
    .await;
}

/// A row naming the columns the database makes: read, never written.
#[derive(Debug, Serialize, Deserialize, Default)]
struct Made {
    item_count: i64,
    doubled: i64,
    serial: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_the_database_makes_are_read_but_never_written() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "made",
            "order_id TEXT PRIMARY KEY, item_count BIGINT NOT NULL, \
             doubled BIGINT GENERATED ALWAYS AS (item_count * 2) STORED, \
             serial BIGINT GENERATED ALWAYS AS IDENTITY",
        )
        .await;
        let mut rows = TableRows::<String, Made>::in_schema(&schema, "made", "order_id");
        let mut tx = pool.begin().await.unwrap();
        rows.insert(
            "a".to_owned(),
            Made {
                item_count: 4,
                doubled: 0,
                serial: 0,
            },
        );
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, ["a".to_owned()]).await.unwrap();
        let made = rows.get_mut("a").unwrap().unwrap();
        assert_eq!((made.item_count, made.doubled, made.serial), (4, 8, 1));
        made.item_count = 5;
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, ["a".to_owned()]).await.unwrap();
        let made = rows.get("a").unwrap().unwrap();
        assert_eq!((made.item_count, made.doubled, made.serial), (5, 10, 1));
        tx.commit().await.unwrap();
    })
    .await;
}

/// A row with only a count, for tables whose other columns the tests set themselves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
struct Count {
    item_count: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_deletes_its_row_alone_whatever_the_columns_are_called() {
    common::with_schemas(2, |pool, schemas| async move {
        // The statements alias their JSON of keys; a column of the same name must not stand
        // in for it.
        for (table, key, columns) in [
            (
                "named_k",
                "k",
                "k TEXT PRIMARY KEY, item_count BIGINT NOT NULL",
            ),
            (
                "with_k",
                "id",
                "id TEXT PRIMARY KEY, k TEXT, key TEXT, position TEXT, item_count BIGINT NOT NULL",
            ),
        ] {
            let schema = schema_with_table(&pool, &schemas, table, columns).await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "INSERT INTO \"{schema}\".{table} ({key}, item_count) \
                 VALUES ('x', 1), ('y', 2), ('z', 3)"
            )))
            .execute(&pool)
            .await
            .unwrap();
            let mut rows = TableRows::<String, Count>::in_schema(&schema, table, key);
            let mut tx = pool.begin().await.unwrap();
            let keys = ["x", "y", "z"].map(str::to_owned);
            rows.load(&mut tx, keys.clone()).await.unwrap();
            assert_eq!(rows.get("x").unwrap(), Some(&Count { item_count: 1 }));
            rows.remove("y".to_owned());
            rows.flush(&mut tx).await.unwrap();
            tx.commit().await.unwrap();
            let left: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {key} FROM \"{schema}\".{table} ORDER BY 1"
            )))
            .fetch_all(&pool)
            .await
            .unwrap();
            assert_eq!(left, ["x", "z"], "{table}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_longer_than_its_column_matches_no_row() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "short",
            "code VARCHAR(5) PRIMARY KEY, item_count BIGINT NOT NULL",
        )
        .await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO \"{schema}\".short VALUES ('abcde', 1)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let mut rows = TableRows::<String, Count>::in_schema(&schema, "short", "code");
        let mut tx = pool.begin().await.unwrap();
        rows.load(&mut tx, ["abcdefgh".to_owned()]).await.unwrap();
        assert_eq!(rows.get("abcdefgh").unwrap(), None, "no row is cut down to");
        rows.remove("abcdefgh".to_owned());
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, ["abcde".to_owned()]).await.unwrap();
        assert_eq!(rows.get("abcde").unwrap(), Some(&Count { item_count: 1 }));
        tx.commit().await.unwrap();
    })
    .await;
}

/// A row whose note is skipped when it has none.
#[derive(Debug, Serialize, Deserialize, Default)]
struct Sparse {
    item_count: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nodes: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_a_batch_names_the_columns_it_writes() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "sparse",
            "order_id TEXT PRIMARY KEY, item_count BIGINT NOT NULL, note TEXT",
        )
        .await;
        let mut rows = TableRows::<String, Sparse>::in_schema(&schema, "sparse", "order_id");
        // Whichever row the batch's map yields first: many batches, so many orders.
        for attempt in 0..20 {
            let mut tx = pool.begin().await.unwrap();
            for n in 0..4 {
                let note = (n == 2).then(|| format!("kept {attempt}"));
                rows.insert(
                    format!("o{n}"),
                    Sparse {
                        item_count: n,
                        note,
                        nodes: None,
                    },
                );
            }
            rows.flush(&mut tx).await.unwrap();
            let note: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT note FROM \"{schema}\".sparse WHERE order_id = 'o2'"
            )))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
            assert_eq!(note, Some(format!("kept {attempt}")), "attempt {attempt}");

            for n in 0..4 {
                let nodes = (n == 2).then(|| "misspelt".to_owned());
                rows.insert(
                    format!("o{n}"),
                    Sparse {
                        item_count: n,
                        note: None,
                        nodes,
                    },
                );
            }
            let error = rows.flush(&mut tx).await.unwrap_err();
            assert!(
                matches!(&error, RowsError::NoSuchColumn { column, .. } if column == "nodes"),
                "attempt {attempt}: {error}"
            );
        }
    })
    .await;
}

/// A row holding a float.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    weight: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floats_come_back_to_the_bit() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "measured",
            "id BIGINT PRIMARY KEY, weight DOUBLE PRECISION NOT NULL",
        )
        .await;
        let mut rows = TableRows::<i64, Measured>::in_schema(&schema, "measured", "id");
        let weights = [123_456_789.123_456_79, 0.1 + 0.2, f64::MAX, 5e-324];
        let mut tx = pool.begin().await.unwrap();
        for (id, weight) in (0..).zip(weights) {
            rows.insert(id, Measured { weight });
        }
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, 0..4).await.unwrap();
        for (id, weight) in (0..).zip(weights) {
            let loaded = rows.get(&id).unwrap().unwrap().weight;
            assert_eq!(loaded.to_bits(), weight.to_bits(), "{weight}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_the_upsert_cannot_use_are_refused_when_the_table_is_read() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "deferred",
            "id TEXT UNIQUE DEFERRABLE, item_count BIGINT NOT NULL",
        )
        .await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"{schema}\".computed (item_count BIGINT NOT NULL, \
             id BIGINT GENERATED ALWAYS AS (item_count * 10) STORED UNIQUE)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let mut tx = pool.begin().await.unwrap();
        let mut rows = TableRows::<String, Count>::in_schema(&schema, "deferred", "id");
        let error = rows.load(&mut tx, ["a".to_owned()]).await.unwrap_err();
        assert!(matches!(error, RowsError::KeyNotUnique { .. }), "{error}");
        let mut rows = TableRows::<i64, Count>::in_schema(&schema, "computed", "id");
        let error = rows.load(&mut tx, [10]).await.unwrap_err();
        assert!(matches!(error, RowsError::KeyGenerated { .. }), "{error}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_identity_key_is_written_from_the_events() {
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schema_with_table(
            &pool,
            &schemas,
            "numbered",
            "id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, item_count BIGINT NOT NULL",
        )
        .await;
        let mut rows = TableRows::<i64, Count>::in_schema(&schema, "numbered", "id");
        let mut tx = pool.begin().await.unwrap();
        rows.insert(42, Count { item_count: 1 });
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, [42]).await.unwrap();
        rows.get_mut(&42).unwrap().unwrap().item_count = 2;
        rows.flush(&mut tx).await.unwrap();
        rows.load(&mut tx, [42]).await.unwrap();
        assert_eq!(rows.get(&42).unwrap(), Some(&Count { item_count: 2 }));
    })
    .await;
}
