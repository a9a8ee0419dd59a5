//! A projection whose state lives in the process, next to a durable store: registered as an
//! ordinary projection it is refused (its checkpoint would outlive its state), and registered
//! with `in_memory_projection` its checkpoint lives with its state, so after a restart it
//! replays the whole log instead of believing itself up to date.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod common;

use std::sync::{Arc, Mutex};

use common::{Account, Deposit, Deposited, TempDir};
use es_core::{EventEnvelope, HandlerError, Project, Projection, Registry, RegistryError};
use es_sqlite::SqliteStore;

/// Total deposits, in a map of the process. Its handler accepts any unit of work: it writes
/// nothing through the store.
#[derive(Clone, Default, Projection)]
#[projection(name = "totals", events(Deposited))]
pub struct Totals {
    cents: Arc<Mutex<i64>>,
}

impl<Tx: Send> Project<Deposited, Tx> for Totals {
    async fn project(
        &mut self,
        event: EventEnvelope<Deposited>,
        _: &mut Tx,
    ) -> Result<(), HandlerError> {
        *self.cents.lock().unwrap() += event.event.cents;
        Ok(())
    }
}

async fn app_with(store: SqliteStore, totals: Totals) -> es_core::App<SqliteStore> {
    Registry::new(store)
        .aggregate::<Account>()
        .in_memory_projection(totals)
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_with_its_state_in_the_process_is_refused_as_a_durable_one() {
    let dir = TempDir::new("in-memory-refused");
    let store = dir.store("events.db").await;
    let error = Registry::new(store)
        .aggregate::<Account>()
        .projection(Totals::default())
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        error,
        RegistryError::ProjectionStateOutsideStore { name: "totals" }
    );
    assert!(
        error.to_string().contains("Registry::in_memory_projection"),
        "the error does not say what to do: {error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_memory_projection_replays_the_log_after_a_restart() {
    let dir = TempDir::new("in-memory-restart");
    let first = Totals::default();
    let app = app_with(dir.store("events.db").await, first.clone()).await;
    for cents in [5, 7, 11] {
        app.execute::<Account>("a", Deposit(cents)).await.unwrap();
    }
    app.catch_up().await.unwrap();
    assert_eq!(*first.cents.lock().unwrap(), 23);
    app.store().close().await;
    drop(app);

    // A new process run: the state starts empty, and so does its checkpoint.
    let second = Totals::default();
    let app = app_with(dir.store("events.db").await, second.clone()).await;
    app.execute::<Account>("a", Deposit(1)).await.unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(
        *second.cents.lock().unwrap(),
        24,
        "the restarted projection skipped the events it had seen before"
    );
    let report = app.projection_report().await.unwrap();
    assert_eq!(
        (report[0].events_behind, report[0].owner.clone()),
        (0, None),
        "{report:?}"
    );

    // Its workers run it too, unleased: every process keeps its own copy.
    let workers = app.start_projections();
    app.execute::<Account>("a", Deposit(2)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while *second.cents.lock().unwrap() != 26 {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never applied the deposit"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    workers.shutdown().await;
}
