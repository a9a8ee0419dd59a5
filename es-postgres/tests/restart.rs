//! PostgreSQL going away under load: connections terminated by the server, and the server
//! restarted. Affected calls fail with typed `Unavailable` errors, the store reconnects by
//! itself, nothing acknowledged is lost, and a projection running through it stays exact.
//!
//! Each test runs on a cluster of its own: restarting the shared server would disturb the
//! other tests.
#![allow(
    missing_docs,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stderr
)] // test code

use es_core::EventLog;
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use es_core::{
    AppendError, AppendRequest, BackendErrorKind, EventEnvelope, EventId, ExpectedVersion,
    HandlerError, Metadata, NewEvent, Project, Projection, Registry, RunnerSettings, StreamId,
    event,
};
use es_postgres::{PgTransaction, PostgresStore};

#[event]
pub struct Beat {
    pub n: u64,
}

/// One row per applied event, no unique key: an event applied twice shows as two rows.
#[derive(Clone, Projection)]
#[projection(name = "beats", events(Beat))]
pub struct Beats {
    table: String,
}

impl Project<Beat, PgTransaction> for Beats {
    async fn project(
        &mut self,
        event: EventEnvelope<Beat>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {} (event_id) VALUES ($1)",
            self.table
        )))
        .bind(event.id.0)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

fn beat(n: u64) -> NewEvent {
    let payload = serde_json::value::to_raw_value(&Beat { n }).unwrap();
    NewEvent::new("beat", 1, payload, Metadata::new())
}

/// What the writers saw: acknowledged event ids, and every error's kind.
#[derive(Default)]
struct Outcomes {
    acked: Vec<EventId>,
    unavailable: usize,
    other: Vec<String>,
    acked_after_disruption: usize,
}

/// Four writers appending until `stop`; `disrupted` is set once the disruption is over.
fn writers(
    store: &PostgresStore,
    stop: &Arc<AtomicBool>,
    disrupted: &Arc<AtomicBool>,
    outcomes: &Arc<Mutex<Outcomes>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..4)
        .map(|writer| {
            let (store, stop, disrupted, outcomes) = (
                store.clone(),
                Arc::clone(stop),
                Arc::clone(disrupted),
                Arc::clone(outcomes),
            );
            tokio::spawn(async move {
                let mut n = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let event = beat(n);
                    let id = event.id;
                    let request = AppendRequest::new(
                        StreamId::new(format!("heart-{writer}-{}", n % 3)).unwrap(),
                        ExpectedVersion::Any,
                        vec![event],
                    );
                    let result = store.append(request).await;
                    {
                        let mut outcomes = outcomes.lock().unwrap();
                        match result {
                            Ok(_) => {
                                outcomes.acked.push(id);
                                if disrupted.load(Ordering::SeqCst) {
                                    outcomes.acked_after_disruption += 1;
                                }
                            }
                            Err(AppendError::Backend(error))
                                if error.kind() == BackendErrorKind::Unavailable =>
                            {
                                outcomes.unavailable += 1;
                            }
                            Err(error) => outcomes.other.push(error.to_string()),
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect()
}

/// Every acknowledged event is stored, streams have no holes, no event id twice; and the
/// projection applied every stored event exactly once.
async fn check(pool: &sqlx::PgPool, schema: &str, outcomes: &Outcomes) {
    let rows: Vec<(uuid::Uuid, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT event_id, stream_id, stream_version FROM \"{schema}\".events ORDER BY position"
    )))
    .fetch_all(pool)
    .await
    .unwrap();
    let stored: HashSet<uuid::Uuid> = rows.iter().map(|row| row.0).collect();
    assert_eq!(stored.len(), rows.len(), "an event id stored twice");
    for id in &outcomes.acked {
        assert!(stored.contains(&id.0), "acknowledged event {id} lost");
    }
    let mut versions: HashMap<&str, Vec<i64>> = HashMap::new();
    for (_, stream, version) in &rows {
        versions.entry(stream).or_default().push(*version);
    }
    for (stream, mut list) in versions {
        list.sort_unstable();
        let expected: Vec<i64> = (1..=i64::try_from(list.len()).unwrap()).collect();
        assert_eq!(list, expected, "stream {stream} has a hole");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let applied: Vec<(uuid::Uuid, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT event_id, COUNT(*) FROM \"{schema}\".beats GROUP BY event_id"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        assert!(
            applied.iter().all(|(_, count)| *count == 1),
            "an event was applied twice"
        );
        if applied.len() == rows.len() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the projection applied {} of {} events",
            applied.len(),
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `disrupt` while writers append and a projection runs, then checks everything.
/// `disrupt` gets a pool of its own and the writers' outcomes so far.
async fn under_disruption<F, Fut>(url: &str, disrupt: F)
where
    F: FnOnce(sqlx::PgPool, Arc<Mutex<Outcomes>>) -> Fut,
    Fut: Future<Output = ()>,
{
    common::with_schemas_at(url, 4, |pool, schemas| async move {
        let schema = schemas.fresh();
        let store = PostgresStore::options()
            .schema(schema.clone())
            .max_connections(8)
            .connect_timeout(Duration::from_secs(2))
            .connect(url)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE \"{schema}\".beats (event_id UUID NOT NULL)"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let app = Registry::new(store.clone())
            .projection(Beats {
                table: format!("\"{schema}\".beats"),
            })
            .runner_settings(
                RunnerSettings::default()
                    .batch_size(20)
                    .poll_interval(Duration::from_millis(100))
                    .retry_backoff(Duration::from_millis(20), Duration::from_millis(500)),
            )
            .build()
            .await
            .unwrap();
        let workers = app.start_projections();
        let stop = Arc::new(AtomicBool::new(false));
        let disrupted = Arc::new(AtomicBool::new(false));
        let outcomes = Arc::new(Mutex::new(Outcomes::default()));
        let tasks = writers(&store, &stop, &disrupted, &outcomes);
        tokio::time::sleep(Duration::from_millis(300)).await;

        disrupt(pool.clone(), Arc::clone(&outcomes)).await;
        disrupted.store(true, Ordering::SeqCst);

        // The store reconnects by itself: appends succeed again.
        let deadline = Instant::now() + Duration::from_secs(30);
        while outcomes.lock().unwrap().acked_after_disruption < 20 {
            assert!(Instant::now() < deadline, "appends never recovered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            task.await.unwrap();
        }
        let outcomes = std::mem::take(&mut *outcomes.lock().unwrap());
        assert!(
            outcomes.other.is_empty(),
            "untyped failures: {:?}",
            outcomes.other
        );
        assert!(
            outcomes.unavailable > 0,
            "the disruption failed no append; it tested nothing"
        );
        check(&pool, &schema, &outcomes).await;
        workers.shutdown().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_connections_fail_typed_and_lose_nothing_acknowledged() {
    // Terminating connections on the shared server would cut other tests' connections too.
    let Some(cluster) = common::PrivateCluster::start() else {
        eprintln!("no initdb: cannot start a server of our own; skipping");
        return;
    };
    under_disruption(&cluster.url, |pool, outcomes| async move {
        // Terminate every other connection to the database, ten times over a second.
        for _ in 0..10 {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&pool)
            .await
            .ok();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // An idle connection cut off is replaced unseen (the pool tests it before handing it
        // out), so those rounds may all miss the appends; and an append seen active may have
        // finished before its backend gets the signal. So keep cutting connections in the
        // middle of an append statement until an append has failed, for up to twenty seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        while outcomes.lock().unwrap().unavailable == 0 && Instant::now() < deadline {
            sqlx::query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                   AND state = 'active' AND query LIKE '%INSERT INTO%events%'",
            )
            .execute(&pool)
            .await
            .ok();
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_fails_calls_typed_and_loses_nothing_acknowledged() {
    let Some(cluster) = common::PrivateCluster::start() else {
        eprintln!("no initdb: cannot restart a server of our own; skipping");
        return;
    };
    let cluster = Arc::new(cluster);
    let url = cluster.url.clone();
    under_disruption(&url, |_, _| {
        let cluster = Arc::clone(&cluster);
        async move {
            // Down for longer than the store's connect timeout, so calls meanwhile fail.
            let stopper = Arc::clone(&cluster);
            let stopped = tokio::task::spawn_blocking(move || stopper.pg_ctl("stop"))
                .await
                .unwrap();
            assert!(stopped, "pg_ctl stop failed");
            tokio::time::sleep(Duration::from_secs(3)).await;
            let started = tokio::task::spawn_blocking(move || cluster.pg_ctl("start"))
                .await
                .unwrap();
            assert!(started, "pg_ctl start failed");
        }
    })
    .await;
}
