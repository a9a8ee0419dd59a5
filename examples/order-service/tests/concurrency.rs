//! Random interleavings of commands from many tasks against one order: every command either
//! took effect (its events are in the stream, at the versions it was told) or failed with a
//! typed refusal or conflict; nothing is lost, and the loaded state equals a sequential replay
//! of the stored events. On the in-memory store and on PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::{
    App, CommandError, EventStore, ExpectedVersion, MemoryStore, Registry, StreamId, StreamVersion,
};
use futures_util::TryStreamExt as _;
use order_service::domain::*;
use proptest::prelude::*;

/// One command of one task; `pinned` sends it with the version the task last saw.
#[derive(Clone, Debug)]
enum Step {
    Add {
        sku: u8,
        quantity: u32,
        pinned: bool,
    },
    Remove {
        sku: u8,
        pinned: bool,
    },
    Cancel,
}

fn any_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u8..4, 0u32..4, any::<bool>()).prop_map(|(sku, quantity, pinned)| Step::Add { sku, quantity, pinned }),
        3 => (0u8..4, any::<bool>()).prop_map(|(sku, pinned)| Step::Remove { sku, pinned }),
        1 => Just(Step::Cancel),
    ]
}

/// What one command returned, for the checks.
enum Outcome {
    Applied {
        version_before: StreamVersion,
        events: Vec<OrderEvent>,
    },
    Refused,
}

/// Executes one command, pinned to `seen` or not.
async fn send<S: EventStore, C>(
    app: &App<S>,
    order: &str,
    command: C,
    pinned: Option<StreamVersion>,
) -> Result<es_core::Executed<Order>, CommandError<OrderError>>
where
    C: Into<OrderCommand> + Clone + Send + 'static,
{
    let mut execute = app.execute::<Order>(order, command);
    if let Some(seen) = pinned {
        execute = execute.expected_version(ExpectedVersion::Exact(seen));
    }
    execute.await
}

async fn run_task<S: EventStore>(app: App<S>, order: String, steps: Vec<Step>) -> Vec<Outcome> {
    let mut seen = StreamVersion(1);
    let mut outcomes = Vec::new();
    for step in steps {
        let pin = |pinned: bool| pinned.then_some(seen);
        let result = match step {
            Step::Add {
                sku,
                quantity,
                pinned,
            } => {
                let command = AddItem {
                    sku: format!("sku-{sku}"),
                    quantity,
                    unit_price_cents: 10,
                };
                send(&app, &order, command, pin(pinned)).await
            }
            Step::Remove { sku, pinned } => {
                let command = RemoveItem {
                    sku: format!("sku-{sku}"),
                };
                send(&app, &order, command, pin(pinned)).await
            }
            Step::Cancel => {
                let command = CancelOrder { reason: "r".into() };
                send(&app, &order, command, None).await
            }
        };
        match result {
            Ok(executed) => {
                seen = executed.version;
                outcomes.push(Outcome::Applied {
                    version_before: executed.version_before,
                    events: executed.events,
                });
            }
            Err(CommandError::Rejected(_)) => outcomes.push(Outcome::Refused),
            Err(CommandError::Conflict { actual, .. }) => {
                // A typed conflict: the task learns the version and goes on.
                seen = actual;
                outcomes.push(Outcome::Refused);
            }
            Err(other) => panic!("an untyped failure: {other}"),
        }
    }
    outcomes
}

async fn interleavings_lose_nothing<S: EventStore>(app: App<S>, tasks: Vec<Vec<Step>>) {
    let order = uuid::Uuid::now_v7().to_string();
    app.execute::<Order>(
        &order,
        PlaceOrder {
            customer_id: "c".into(),
        },
    )
    .await
    .unwrap();
    let handles: Vec<_> = tasks
        .into_iter()
        .map(|steps| tokio::spawn(run_task(app.clone(), order.clone(), steps)))
        .collect();
    let mut applied = Vec::new();
    for handle in handles {
        for outcome in handle.await.unwrap() {
            if let Outcome::Applied {
                version_before,
                events,
            } = outcome
            {
                applied.push((version_before, events));
            }
        }
    }

    let stream_id = StreamId::for_aggregate("order", &order).unwrap();
    let stored: Vec<OrderEvent> = app
        .store()
        .load(&stream_id, StreamVersion::INITIAL)
        .map_ok(|recorded| {
            <OrderEvent as es_core::EventSet>::decode(
                &recorded.event_type,
                recorded.schema_version,
                &recorded.payload,
            )
            .unwrap()
        })
        .try_collect()
        .await
        .unwrap();
    // Every applied command's events sit in the stream at the versions it was told.
    let mut total = 1;
    for (version_before, events) in &applied {
        total += events.len();
        for (offset, event) in events.iter().enumerate() {
            let index = usize::try_from(version_before.get()).unwrap() + offset;
            assert_eq!(
                stored.get(index),
                Some(event),
                "a lost update at version {}",
                index + 1
            );
        }
    }
    assert_eq!(stored.len(), total, "events nobody was told about");
    let loaded = app.load::<Order>(&order).await.unwrap();
    assert_eq!(loaded.state, es_core::aggregate::fold::<Order>(&stored));
    assert_eq!(loaded.version.get(), stored.len() as u64);
}

fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn interleavings_on_the_memory_store_lose_nothing(
        tasks in prop::collection::vec(prop::collection::vec(any_step(), 1..8), 2..6)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let app = Registry::new(MemoryStore::new()).aggregate::<Order>().build().await.unwrap();
            interleavings_lose_nothing(app, tasks).await;
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn interleavings_on_postgres_lose_nothing(
        tasks in prop::collection::vec(prop::collection::vec(any_step(), 1..8), 2..6)
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let schema = format!("es_test_{}", uuid::Uuid::now_v7().simple());
            let store = es_postgres::PostgresStore::options()
                .schema(schema.clone())
                .max_connections(8)
                .connect(&postgres_url())
                .await
                .unwrap();
            let pool = store.pool().clone();
            let app = Registry::new(store).aggregate::<Order>().build().await.unwrap();
            let outcome = futures_util::FutureExt::catch_unwind(
                std::panic::AssertUnwindSafe(interleavings_lose_nothing(app, tasks)),
            )
            .await;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA \"{schema}\" CASCADE")))
                .execute(&pool)
                .await
                .unwrap();
            if let Err(panic) = outcome {
                std::panic::resume_unwind(panic);
            }
        });
    }
}
