//! A projection on SQLite writes its read model in the batch's transaction, with the
//! checkpoint: a failing batch leaves neither rows nor checkpoint behind, and each event lands
//! exactly once.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use common::{Account, Deposit, Deposited, TempDir};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use es_core::{
    AggregateSettings, CheckpointStore as _, EventEnvelope, HandlerError, Project, Projection,
    Registry, RunnerSettings,
};
use es_sqlite::{SqliteStore, SqliteTransaction};

/// One row per deposit in `ledger`; fails on 13 cents while `refuse_thirteen` is set.
#[derive(Clone, Projection)]
#[projection(name = "ledger", events(Deposited))]
pub struct Ledger {
    refuse_thirteen: Arc<AtomicBool>,
}

impl Project<Deposited, SqliteTransaction> for Ledger {
    async fn project(
        &mut self,
        event: EventEnvelope<Deposited>,
        tx: &mut SqliteTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query("INSERT INTO ledger (event_id, cents) VALUES (?1, ?2)")
            .bind(event.id.0)
            .bind(event.event.cents)
            .execute(&mut **tx)
            .await?;
        if event.event.cents == 13 && self.refuse_thirteen.load(Ordering::SeqCst) {
            return Err(HandlerError::msg("thirteen is unlucky"));
        }
        Ok(())
    }
}

async fn ledger(store: &SqliteStore) -> (i64, i64) {
    sqlx::query_as("SELECT COUNT(*), COALESCE(SUM(cents), 0) FROM ledger")
        .fetch_one(store.readers())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_rolls_back_rows_and_checkpoint_and_each_event_lands_once() {
    let dir = TempDir::new("projection");
    let store = dir.store("events.db").await;
    sqlx::query("CREATE TABLE ledger (event_id BLOB PRIMARY KEY, cents INTEGER NOT NULL)")
        .execute(store.writer())
        .await
        .unwrap();
    let refuse_thirteen = Arc::new(AtomicBool::new(true));
    let app = Registry::new(store.clone())
        .aggregate_with(AggregateSettings::<Account>::new(()))
        .projection(Ledger {
            refuse_thirteen: Arc::clone(&refuse_thirteen),
        })
        .runner_settings(RunnerSettings::default().batch_size(10))
        .build()
        .await
        .unwrap();
    for cents in [1, 2, 13, 4] {
        app.execute::<Account>("a", Deposit(cents)).await.unwrap();
    }

    assert!(app.catch_up().await.is_err());
    // The batch held all four events: rolled back whole, rows and checkpoint alike.
    assert_eq!(ledger(&store).await, (0, 0));
    assert_eq!(
        store.checkpoint("ledger").await.unwrap(),
        es_core::LogPosition::START
    );
    // The failed batch released the writer: appends go on.
    app.execute::<Account>("b", Deposit(100)).await.unwrap();

    refuse_thirteen.store(false, Ordering::SeqCst);
    app.catch_up().await.unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(ledger(&store).await, (5, 120));
    assert_eq!(
        store.checkpoint("ledger").await.unwrap(),
        store.head().await.unwrap().unwrap()
    );

    // Reopened (a restart), the projection resumes from its checkpoint: nothing lands twice.
    drop(app);
    store.close().await;
    let store = SqliteStore::open(dir.file("events.db")).await.unwrap();
    let app = Registry::new(store.clone())
        .aggregate::<Account>()
        .projection(Ledger {
            refuse_thirteen: Arc::new(AtomicBool::new(false)),
        })
        .build()
        .await
        .unwrap();
    app.execute::<Account>("a", Deposit(1000)).await.unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(ledger(&store).await, (6, 1120));
    drop(app);
    store.close().await;
}
