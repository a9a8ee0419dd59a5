//! Rebuilds and projection reports on the in-memory store.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use es_core::{
    Aggregate, Apply, EventEnvelope, Events, Handle, HandlerError, MemoryStore, Project,
    RebuildProgress, Registry, RunnerError, RunnerSettings, event,
};

#[event]
pub struct Deposited {
    pub cents: u64,
}

#[event]
pub struct Noted {
    pub text: String,
}

#[derive(Clone)]
pub struct Deposit(pub u64);

#[derive(Clone)]
pub struct Note;

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Debug, Default, Aggregate)]
#[aggregate(name = "account", error = Never, events(Deposited, Noted), commands(Deposit, Note))]
pub struct Account;

impl Apply<Deposited> for Account {
    fn apply(&mut self, _: &Deposited) {}
}

impl Apply<Noted> for Account {
    fn apply(&mut self, _: &Noted) {}
}

impl Handle<Deposit> for Account {
    fn handle(&self, command: Deposit) -> Result<Events<Self>, Never> {
        Ok(Events::one(Deposited { cents: command.0 }))
    }
}

impl Handle<Note> for Account {
    fn handle(&self, _: Note) -> Result<Events<Self>, Never> {
        Ok(Events::one(Noted { text: "n".into() }))
    }
}

type Balances = Arc<Mutex<BTreeMap<String, u64>>>;

#[derive(Clone, Default, es_core::Projection)]
#[projection(name = "balances", events(Deposited))]
pub struct BalancesView {
    rows: Balances,
}

impl Project<Deposited> for BalancesView {
    async fn project(
        &mut self,
        event: EventEnvelope<Deposited>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        *self
            .rows
            .lock()
            .unwrap()
            .entry(event.stream_id.to_string())
            .or_default() += event.event.cents;
        Ok(())
    }
}

#[tokio::test]
async fn a_rebuild_reports_progress_and_gives_the_live_read_model() {
    let view = BalancesView::default();
    let rows = Arc::clone(&view.rows);
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Account>()
        .projection(view)
        .runner_settings(RunnerSettings::default().batch_size(4))
        .build()
        .await
        .unwrap();
    for n in 0..10u64 {
        app.execute::<Account>(n % 3, Deposit(n)).await.unwrap();
        app.execute::<Account>(n % 3, Note).await.unwrap();
    }

    let report = app.projection_report().await.unwrap();
    assert_eq!(
        report[0].events_behind, 10,
        "only the projection's own types count"
    );
    assert!(report[0].seconds_behind >= 0.0);
    assert_eq!(report[0].owner, None);

    app.catch_up().await.unwrap();
    let live = rows.lock().unwrap().clone();
    let report = app.projection_report().await.unwrap();
    assert_eq!(report[0].events_behind, 0);
    assert_eq!(report[0].seconds_behind, 0.0);
    assert_eq!(Some(report[0].checkpoint), report[0].head);

    rows.lock().unwrap().clear();
    let mut seen: Vec<RebuildProgress> = Vec::new();
    let applied = app
        .rebuild("balances", |progress| seen.push(progress))
        .await
        .unwrap();
    assert_eq!(applied, 10);
    assert_eq!(
        *rows.lock().unwrap(),
        live,
        "the rebuild equals the live run"
    );
    assert!(seen.iter().all(|progress| progress.total == 10));
    let done: Vec<u64> = seen.iter().map(|progress| progress.done).collect();
    assert_eq!(done.first(), Some(&0));
    assert_eq!(done.last(), Some(&10));
    assert!(done.windows(2).all(|pair| pair[0] <= pair[1]), "{done:?}");
}

#[tokio::test]
async fn rebuilding_an_unknown_projection_names_the_registered_ones() {
    let app = Registry::new(MemoryStore::new())
        .projection(BalancesView::default())
        .build()
        .await
        .unwrap();
    let error = app.rebuild("ledger", |_| {}).await.unwrap_err();
    assert!(
        matches!(error, RunnerError::UnknownProjection { .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "no projection named `ledger` is registered (registered: balances)"
    );
}
