//! A projection on PostgreSQL writes its read model in the batch's transaction, with the
//! checkpoint: a failing batch leaves neither rows nor checkpoint behind.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
mod common;

use common::{Account, Deposit, Deposited};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use es_core::{
    AggregateSettings, CheckpointStore as _, EventEnvelope, HandlerError, Project, Projection,
    Registry, RunnerSettings,
};
use es_postgres::PgTransaction;

/// One row per deposit in `{schema}.ledger`; fails on 13 cents while `refuse_thirteen` is set.
#[derive(Clone, Projection)]
#[projection(name = "ledger", events(Deposited))]
pub struct Ledger {
    table: String,
    refuse_thirteen: Arc<AtomicBool>,
}

impl Project<Deposited, PgTransaction> for Ledger {
    async fn project(
        &mut self,
        event: EventEnvelope<Deposited>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (event_id, cents) VALUES ($1, $2)",
            self.table
        )))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_rolls_back_rows_and_checkpoint_and_each_event_lands_once() {
    common::with_schemas(6, |pool, schemas| async move {
        let (store, _, table) = schemas
            .store_with_table(
                &pool,
                "ledger",
                "event_id UUID PRIMARY KEY, cents BIGINT NOT NULL",
            )
            .await;
        let refuse_thirteen = Arc::new(AtomicBool::new(true));
        let app = Registry::new(store.clone())
            .aggregate_with(AggregateSettings::<Account>::new(()))
            .projection(Ledger {
                table: table.clone(),
                refuse_thirteen: Arc::clone(&refuse_thirteen),
            })
            .runner_settings(RunnerSettings::default().batch_size(10))
            .build()
            .await
            .unwrap();
        for cents in [1, 2, 13, 4] {
            app.execute::<Account>("a", Deposit(cents)).await.unwrap();
        }
        let rows = |pool: sqlx::PgPool, table: String| async move {
            let sum: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT SUM(cents)::bigint FROM {table}"
            )))
            .fetch_one(&pool)
            .await
            .unwrap();
            let count: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            (count, sum.unwrap_or(0))
        };

        common::wait_visible(&store, 4).await;
        assert!(app.catch_up().await.is_err());
        // The batch held all four events: rolled back whole, rows and checkpoint alike.
        assert_eq!(rows(pool.clone(), table.clone()).await, (0, 0));
        assert_eq!(
            store.checkpoint("ledger").await.unwrap(),
            es_core::LogPosition::START
        );

        refuse_thirteen.store(false, Ordering::SeqCst);
        app.catch_up().await.unwrap();
        app.catch_up().await.unwrap();
        assert_eq!(rows(pool.clone(), table.clone()).await, (4, 20));
        assert_eq!(
            store.checkpoint("ledger").await.unwrap(),
            store.head().await.unwrap().unwrap()
        );
    })
    .await;
}

/// Balances per stream in `{schema}.balances`, upserted in the batch's transaction.
#[derive(Clone, Projection)]
#[projection(name = "balances", events(Deposited), reset)]
pub struct Balances {
    table: String,
}

impl es_core::Reset<PgTransaction> for Balances {
    async fn reset(&mut self, tx: &mut PgTransaction) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {}", self.table)))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Project<Deposited, PgTransaction> for Balances {
    async fn project(
        &mut self,
        event: EventEnvelope<Deposited>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (stream_id, cents) VALUES ($1, $2) \
             ON CONFLICT (stream_id) DO UPDATE SET cents = {0}.cents + EXCLUDED.cents",
            self.table
        )))
        .bind(event.stream_id.as_str())
        .bind(event.event.cents)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_gives_the_live_read_model_and_reports_show_owner_and_lag() {
    common::with_schemas(6, |pool, schemas| async move {
        let (store, _, table) = schemas
            .store_with_table(
                &pool,
                "balances",
                "stream_id TEXT PRIMARY KEY, cents BIGINT NOT NULL",
            )
            .await;
        let app = Registry::new(store.clone())
            .aggregate_with(AggregateSettings::<Account>::new(()))
            .projection(Balances {
                table: table.clone(),
            })
            .runner_settings(RunnerSettings::default().batch_size(7))
            .build()
            .await
            .unwrap();
        for n in 0..40 {
            app.execute::<Account>(n % 6, Deposit(n)).await.unwrap();
        }
        // Counted once visible: an open transaction elsewhere on the server may hold them back.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let behind = loop {
            let report = app.projection_report().await.unwrap();
            if report[0].events_behind == 40 || std::time::Instant::now() > deadline {
                break report;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert_eq!(behind[0].events_behind, 40);
        assert_eq!(behind[0].owner, None, "no worker ran yet");

        let workers = app.start_projections();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let report = loop {
            let report = app.projection_report().await.unwrap();
            if report[0].events_behind == 0 {
                break report;
            }
            assert!(std::time::Instant::now() < deadline, "{report:?}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(
            report[0].owner,
            Some((app.worker_id().to_owned(), true)),
            "{report:?}"
        );
        assert!(report[0].status.lease_held);
        workers.shutdown().await;
        let rows = |pool: sqlx::PgPool, table: String| async move {
            sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(format!(
                "SELECT stream_id, cents FROM {table} ORDER BY stream_id"
            )))
            .fetch_all(&pool)
            .await
            .unwrap()
        };
        let live = rows(pool.clone(), table.clone()).await;
        assert_eq!(live.len(), 6);

        // The rebuild clears the read model itself, through the reset hook.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} VALUES ('stale', 99)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let mut last = None;
        let applied = app
            .rebuild("balances", |progress| last = Some(progress))
            .await
            .unwrap();
        assert_eq!(applied, 40);
        let last = last.unwrap();
        assert_eq!((last.done, last.total), (40, 40));
        assert_eq!(rows(pool.clone(), table.clone()).await, live);
        assert_eq!(
            store.checkpoint("balances").await.unwrap(),
            report[0].checkpoint
        );
    })
    .await;
}
