//! Projection leases on PostgreSQL: one worker at a time, takeover after the owner dies, and a
//! worker that lost its lease (paused, then woken) commits nothing.
//!
//! The multi-process test runs its own binary again as the workers (selected by
//! `ES_LEASE_WORKER_SCHEMA`).
#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stdout
)] // test code

use es_core::LeaseStore;
mod common;

use common::{Account, Deposit, Deposited};

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use es_core::{
    AggregateSettings, BackendErrorKind, CheckpointStore as _, EventEnvelope, GlobalPosition,
    HandlerError, LeaseRenewal, LogPosition, Project, Projection, Registry, RunnerSettings,
};
use es_postgres::{PgTransaction, PostgresStore};

const WORKER_ENV: &str = "ES_LEASE_WORKER_SCHEMA";
const WORKER_URL_ENV: &str = "ES_LEASE_WORKER_URL";
const TTL: Duration = Duration::from_millis(1000);

/// One row per applied event, no unique key: an event applied twice shows as two rows.
#[derive(Clone, Projection)]
#[projection(name = "applied", events(Deposited))]
pub struct Applied {
    table: String,
}

impl Project<Deposited, PgTransaction> for Applied {
    async fn project(
        &mut self,
        event: EventEnvelope<Deposited>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (event_id, worker) VALUES ($1, $2)",
            self.table
        )))
        .bind(event.id.0)
        .bind(i64::from(std::process::id()))
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

fn table(schema: &str) -> String {
    format!("\"{schema}\".applied")
}

/// The columns of [`table`]: one row per applied event and the worker that applied it.
const APPLIED_COLUMNS: &str = "event_id UUID NOT NULL, worker BIGINT NOT NULL";

/// Waits until every stored event is in the read model, failing at once if one is there twice;
/// returns how many events were checked. (The log is re-read each time: an append cut off by
/// the end of the writer may still commit.)
async fn wait_until_applied_exactly_once(pool: &sqlx::PgPool, schema: &str, when: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM \"{schema}\".events"
        )))
        .fetch_one(pool)
        .await
        .unwrap();
        let applied: Vec<(uuid::Uuid, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT event_id, COUNT(*) FROM {} GROUP BY event_id",
            table(schema)
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        let twice: Vec<_> = applied.iter().filter(|(_, n)| *n > 1).collect();
        assert!(twice.is_empty(), "applied more than once: {twice:?}");
        let stored = usize::try_from(stored).unwrap();
        if applied.len() == stored {
            return stored;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {stored} events applied{when}",
            applied.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_exclusive_and_a_lost_lease_cannot_commit() {
    common::with_schemas(4, |pool, schemas| async move {
        let store = schemas.store(&pool).await;
        let ttl = Duration::from_millis(300);
        let first = store.acquire_lease("p", "a", ttl).await.unwrap().unwrap();
        assert_eq!(first.epoch, 1);
        assert!(store.acquire_lease("p", "b", ttl).await.unwrap().is_none());
        assert_eq!(
            store.renew_lease(&first, ttl).await.unwrap(),
            LeaseRenewal::Renewed
        );
        assert_eq!(
            store.lease_owner("p").await.unwrap(),
            Some(("a".to_owned(), true))
        );
        // Same owner again: same epoch.
        assert_eq!(
            store
                .acquire_lease("p", "a", ttl)
                .await
                .unwrap()
                .unwrap()
                .epoch,
            1
        );

        // A batch begun under the lease, then the lease expires and b takes it over.
        let mut stale = store.begin("p").await.unwrap();
        sqlx::query("CREATE TEMP TABLE marker (n int)")
            .execute(&mut *stale)
            .await
            .unwrap();
        tokio::time::sleep(ttl + Duration::from_millis(100)).await;
        let second = store.acquire_lease("p", "b", ttl).await.unwrap().unwrap();
        assert_eq!(second.epoch, 2, "a new owner bumps the epoch");
        assert_eq!(
            store.renew_lease(&first, ttl).await.unwrap(),
            LeaseRenewal::Lost
        );
        let at = LogPosition::new(9, GlobalPosition(9));
        let refused = store
            .commit_fenced(stale, "p", at, &first)
            .await
            .unwrap_err();
        assert_eq!(refused.kind(), BackendErrorKind::LeaseLost);
        assert_eq!(store.checkpoint("p").await.unwrap(), LogPosition::START);

        // The new owner commits; released, the lease goes to the next worker at once.
        let batch = store.begin("p").await.unwrap();
        store.commit_fenced(batch, "p", at, &second).await.unwrap();
        assert_eq!(store.checkpoint("p").await.unwrap(), at);
        store.release_lease(&second).await.unwrap();
        let third = store.acquire_lease("p", "a", ttl).await.unwrap().unwrap();
        assert_eq!(third.epoch, 3);
    })
    .await;
}

/// A worker process: runs the `applied` projection until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_worker_child() {
    let Ok(schema) = std::env::var(WORKER_ENV) else {
        return; // Only meaningful as a child of the test below.
    };
    let store = PostgresStore::options()
        .schema(schema.clone())
        .batch_idle_timeout(Duration::from_millis(1500))
        .connect(&std::env::var(WORKER_URL_ENV).unwrap())
        .await
        .unwrap();
    let app = Registry::new(store)
        .projection(Applied {
            table: table(&schema),
        })
        .runner_settings(
            RunnerSettings::default()
                .lease_ttl(TTL)
                .batch_size(5)
                .poll_interval(Duration::from_millis(100)),
        )
        .build()
        .await
        .unwrap();
    let _workers = app.start_projections();
    std::future::pending::<()>().await;
}

fn spawn_worker(url: &str, schema: &str) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "lease_worker_child", "--test-threads=1"])
        .env(WORKER_ENV, schema)
        .env(WORKER_URL_ENV, url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Worker processes, killed when the test ends however it ends.
struct Workers(HashMap<u32, Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for child in self.0.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// The pid of the lease's owner, once one holds it unexpired.
async fn owner_pid(store: &PostgresStore) -> Option<u32> {
    match store.lease_owner("applied").await.unwrap() {
        Some((owner, true)) => owner.split('-').next()?.parse().ok(),
        _ => None,
    }
}

/// Waits until a live worker other than `not` owns the lease; fails after `within`.
async fn wait_for_owner(store: &PostgresStore, not: Option<u32>, within: Duration) -> u32 {
    let started = Instant::now();
    loop {
        if let Some(pid) = owner_pid(store).await
            && Some(pid) != not
        {
            return pid;
        }
        assert!(
            started.elapsed() < within,
            "no other worker took the lease within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_worker_takes_over_and_a_paused_owner_commits_nothing() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    // Pausing a worker mid-transaction holds back every gap-free reader on its server.
    let (url, _cluster) = common::private_or_shared();
    let server = url.clone();
    common::with_schemas_at(&server, 4, |pool, schemas| async move {
        let (store, schema, _) = schemas
            .store_with_table(&pool, "applied", APPLIED_COLUMNS)
            .await;
        let app = Registry::new(store.clone())
            .aggregate_with(AggregateSettings::<Account>::new(()))
            .build()
            .await
            .unwrap();

        // A steady stream of appends for the whole test.
        let writer = {
            let app = app.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
                    app.execute::<Account>(n % 11, Deposit(1)).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(3)).await;
                }
            })
        };

        let mut workers = Workers(HashMap::new());
        for _ in 0..2 {
            let child = spawn_worker(&url, &schema);
            workers.0.insert(child.id(), child);
        }
        // Takeover within the lease time plus the standby's retry interval (4/3 of the TTL),
        // with room for a loaded machine.
        let bound = TTL * 4 + Duration::from_secs(4);
        let first = wait_for_owner(&store, None, Duration::from_secs(60)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;

        // The owner dies: the other worker takes over.
        let mut dead = workers.0.remove(&first).unwrap();
        dead.kill().unwrap();
        dead.wait().unwrap();
        let second = wait_for_owner(&store, Some(first), bound).await;
        assert!(workers.0.contains_key(&second));
        let standby = spawn_worker(&url, &schema);
        workers.0.insert(standby.id(), standby);
        tokio::time::sleep(Duration::from_millis(500)).await;

        // The new owner is paused past its lease: the standby takes over; woken, the paused
        // worker must not commit whatever batch it had in flight.
        signal(&workers.0[&second], "STOP");
        let third = wait_for_owner(&store, Some(second), bound).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        signal(&workers.0[&second], "CONT");
        tokio::time::sleep(Duration::from_millis(1500)).await;

        writer.abort();
        let _ = writer.await;
        // Every event applied exactly once, once the owner has caught up. (The log is re-read:
        // the append the writer was in when aborted may still commit.)
        wait_until_applied_exactly_once(&pool, &schema, "").await;
        let by_worker: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT worker FROM {}",
            table(&schema)
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert!(by_worker.contains(&i64::from(first)));
        assert!(by_worker.contains(&i64::from(third)));
        drop(workers);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_at_random_points_leaves_an_exact_read_model() {
    if std::env::var(WORKER_ENV).is_ok() {
        return;
    }
    let url = common::database_url();
    common::with_schemas(4, |pool, schemas| async move {
        let (store, schema, _) = schemas
            .store_with_table(&pool, "applied", APPLIED_COLUMNS)
            .await;
        let app = Registry::new(store.clone())
            .aggregate_with(AggregateSettings::<Account>::new(()))
            .build()
            .await
            .unwrap();
        let writer = {
            let app = app.clone();
            tokio::spawn(async move {
                for n in 0u64.. {
                    app.execute::<Account>(n % 7, Deposit(1)).await.unwrap();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        // Kill points spread over batches in flight, between batches and while catching up.
        let kills = if std::env::var("ES_LONG").is_ok() {
            50
        } else {
            5
        };
        let mut workers = Workers(HashMap::new());
        let mut killed = 0;
        let mut delay = 137u64;
        while killed < kills {
            let child = spawn_worker(&url, &schema);
            let pid = child.id();
            workers.0.insert(pid, child);
            wait_for_owner(&store, None, Duration::from_secs(30)).await;
            // A cheap deterministic spread of delays (no RNG needed): 137, 274, ... mod 700 ms.
            delay = (delay + 137) % 700;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            let mut child = workers.0.remove(&pid).unwrap();
            child.kill().unwrap();
            child.wait().unwrap();
            killed += 1;
            // Let the lease expire so the next worker can take it.
            tokio::time::sleep(TTL).await;
        }
        writer.abort();
        let _ = writer.await;
        let final_worker = spawn_worker(&url, &schema);
        workers.0.insert(final_worker.id(), final_worker);
        let checked =
            wait_until_applied_exactly_once(&pool, &schema, &format!(" after {kills} kills")).await;
        println!(
            "RELIABILITY projection worker kills survived: {kills}, events checked: {checked}, failures: 0"
        );
        drop(workers);
    })
    .await;
}
