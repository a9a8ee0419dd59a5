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
#[projection(name = "balances", events(Deposited), reset)]
pub struct BalancesView {
    rows: Balances,
}

impl es_core::Reset for BalancesView {
    async fn reset(&mut self, (): &mut ()) -> Result<(), HandlerError> {
        self.rows.lock().unwrap().clear();
        Ok(())
    }
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

    // The rebuild clears the read model itself (its reset hook), then replays.
    rows.lock().unwrap().insert("stale".into(), 99);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_next_to_a_running_worker_gives_the_fold_of_the_log() {
    let view = BalancesView::default();
    let rows = Arc::clone(&view.rows);
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Account>()
        .projection(view)
        .runner_settings(
            RunnerSettings::default()
                .batch_size(8)
                .lease_ttl(std::time::Duration::from_millis(300)),
        )
        .build()
        .await
        .unwrap();
    let workers = app.start_projections();
    let writer = {
        let app = app.clone();
        tokio::spawn(async move {
            for n in 0..300u64 {
                app.execute::<Account>(n % 7, Deposit(n)).await.unwrap();
            }
        })
    };
    let mut steps = Vec::new();
    for _ in 0..3 {
        app.rebuild_with("balances", es_core::RebuildOptions::default(), |step| {
            steps.push(step)
        })
        .await
        .unwrap();
    }
    writer.await.unwrap();
    assert!(steps.contains(&es_core::RebuildStep::Cleared));

    let mut fold: BTreeMap<String, u64> = BTreeMap::new();
    for n in 0..300u64 {
        *fold.entry(format!("account-{}", n % 7)).or_default() += n;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while *rows.lock().unwrap() != fold {
        assert!(
            std::time::Instant::now() < deadline,
            "the read model never reached the fold of the log: {:?}",
            rows.lock().unwrap()
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    workers.shutdown().await;
}

#[tokio::test]
async fn a_projection_without_a_reset_hook_cannot_be_rebuilt_and_nothing_is_touched() {
    #[derive(Clone, Default, es_core::Projection)]
    #[projection(name = "plain", events(Deposited))]
    struct Plain {
        seen: Arc<Mutex<u64>>,
    }

    impl Project<Deposited> for Plain {
        async fn project(
            &mut self,
            _: EventEnvelope<Deposited>,
            (): &mut (),
        ) -> Result<(), HandlerError> {
            *self.seen.lock().unwrap() += 1;
            Ok(())
        }
    }

    let plain = Plain::default();
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Account>()
        .projection(plain.clone())
        .build()
        .await
        .unwrap();
    app.execute::<Account>("a", Deposit(1)).await.unwrap();
    app.catch_up().await.unwrap();
    let error = app.rebuild("plain", |_| {}).await.unwrap_err();
    assert!(
        matches!(
            error,
            RunnerError::NoReset {
                projection: "plain"
            }
        ),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("add the `reset` flag"),
        "{error}"
    );
    app.catch_up().await.unwrap();
    assert_eq!(
        *plain.seen.lock().unwrap(),
        1,
        "the refused rebuild replayed"
    );
}
