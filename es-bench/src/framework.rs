//! The framework's side: every scenario through es-core's public API on es-postgres, as a user
//! writes it (the command path for commands, the projection runner for the read model,
//! `EventStore::append` for batches).

use std::time::{Duration, Instant};

use es_core::{
    AggregateSettings, App, AppendRequest, CommandError, Event as _, EventEnvelope,
    EventStore as _, ExpectedVersion, HandlerError, Metadata, NewEvent, Project, Projection,
    Registry, StreamId,
};
use es_postgres::{PgTransaction, PostgresOptions, PostgresStore};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{
    AddItem, ItemAdded, Order, OrderCancelled, OrderError, OrderPaid, OrderPlaced, OrderShipped,
    PayOrder, PlaceOrder, ShipOrder,
};
use crate::workload::{self, Item, Step, TASKS};
use crate::{BenchError, Result};

/// How often S5's commands are decided before a conflict is returned: enough that 16 writers
/// on one order always get through (each retry means another writer committed).
const CONTENTION_ATTEMPTS: u32 = 10_000;

/// How long S4 waits for every event to become readable before it fails.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(120);

/// The framework on one fresh schema.
pub(crate) struct Framework {
    store: PostgresStore,
    app: App<PostgresStore>,
}

impl Framework {
    /// Builds the store (migrating its fresh `schema`) on `pool` and registers `Order`.
    pub(crate) async fn new(pool: PgPool, schema: &str) -> Result<Self> {
        let store = PostgresOptions::default()
            .schema(schema)
            .with_pool(pool)
            .await?;
        let app = Registry::new(store.clone())
            .aggregate_with(AggregateSettings::<Order>::new(()).max_attempts(CONTENTION_ATTEMPTS))
            .build()
            .await?;
        Ok(Self { store, app })
    }

    /// S1: one task runs every order's six commands, one after the other.
    pub(crate) async fn append_seq(&self, orders: &[Uuid]) -> Result<Duration> {
        let started = Instant::now();
        for (index, order) in orders.iter().enumerate() {
            for step in workload::order_steps(index) {
                execute(&self.app, *order, step).await?;
            }
        }
        Ok(started.elapsed())
    }

    /// S2: [`TASKS`] tasks, each running its own orders' commands.
    pub(crate) async fn append_par(&self, orders: &[Uuid]) -> Result<Duration> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let app = self.app.clone();
                let mine: Vec<(usize, Uuid)> = workload::task_orders(task, orders.len())
                    .filter_map(|index| orders.get(index).map(|id| (index, *id)))
                    .collect();
                tokio::spawn(async move {
                    for (index, order) in mine {
                        for step in workload::order_steps(index) {
                            execute(&app, order, step).await?;
                        }
                    }
                    Ok::<_, BenchError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(started.elapsed())
    }

    /// S3 setup: an order with `OrderPlaced` and `items` `ItemAdded`, appended in large batches.
    pub(crate) async fn store_long(&self, order: Uuid, items: usize) -> Result<()> {
        execute(
            &self.app,
            order,
            Step::Place {
                customer_id: "customer-long".to_owned(),
            },
        )
        .await?;
        let stream = StreamId::for_aggregate(<Order as es_core::Aggregate>::NAME, order)?;
        let mut version = 1;
        let mut next = 0;
        while next < items {
            let end = (next + 1_000).min(items);
            let events = (next..end)
                .map(|i| new_item_added(&workload::long_item(i)))
                .collect::<Result<Vec<_>>>()?;
            let request = AppendRequest::new(
                stream.clone(),
                ExpectedVersion::Exact(es_core::StreamVersion(version)),
                events,
            );
            version = self.store.append(request).await?.version_after.get();
            next = end;
        }
        Ok(())
    }

    /// S3: loads `order` fully `loads` times; returns each load's time. Checks every load.
    pub(crate) async fn load_long(
        &self,
        order: Uuid,
        loads: usize,
        items: usize,
    ) -> Result<Vec<Duration>> {
        let mut times = Vec::with_capacity(loads);
        for _ in 0..loads {
            let started = Instant::now();
            let loaded = self.app.load::<Order>(order).await?;
            times.push(started.elapsed());
            let expected_version = u64::try_from(items + 1)?;
            let expected_units = u64::try_from(items)?;
            if loaded.version.get() != expected_version || loaded.state.units() != expected_units {
                return Err(BenchError::incorrect(format!(
                    "S3 loaded version {} with {} units; expected {expected_version} and {expected_units}",
                    loaded.version,
                    loaded.state.units()
                )));
            }
        }
        Ok(times)
    }

    /// S4: rebuilds `order_summary` (the table exists, empty) from the whole log of `events`
    /// events with the projection runner.
    ///
    /// `catch_up` stops at the last event it may read without skipping one: an event whose
    /// transaction is newer than the oldest transaction still running anywhere on the server
    /// waits (see es-postgres's docs). On a shared server another session's open transaction
    /// can hold the rebuild back, so it catches up again until every event is applied; that
    /// wait is part of the figure.
    pub(crate) async fn project_all(&self, schema: &str, events: usize) -> Result<Duration> {
        let app = Registry::new(self.store.clone())
            .projection(OrderSummary::new(schema))
            .build()
            .await?;
        let events = u64::try_from(events)?;
        let applied = |app: &App<PostgresStore>| {
            app.projection_status()
                .iter()
                .map(|status| status.events_applied)
                .sum::<u64>()
        };
        let started = Instant::now();
        app.catch_up().await?;
        while applied(&app) < events {
            if started.elapsed() > CATCH_UP_DEADLINE {
                return Err(BenchError::incorrect(format!(
                    "S4 applied {} of {events} events within {CATCH_UP_DEADLINE:?}",
                    applied(&app)
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            app.catch_up().await?;
        }
        Ok(started.elapsed())
    }

    /// S5 setup: places the contended order.
    pub(crate) async fn place(&self, order: Uuid) -> Result<()> {
        execute(
            &self.app,
            order,
            Step::Place {
                customer_id: "customer-contended".to_owned(),
            },
        )
        .await
    }

    /// S5: [`TASKS`] tasks each add `per_task` single units to `order`; the command path
    /// retries on conflicts.
    pub(crate) async fn contention(&self, order: Uuid, per_task: usize) -> Result<Duration> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let app = self.app.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        execute(&app, order, Step::Add(workload::contended_item())).await?;
                    }
                    Ok::<_, BenchError>(())
                })
            })
            .collect();
        for task in tasks {
            task.await??;
        }
        Ok(started.elapsed())
    }

    /// The units and version of `order`, for S5's check.
    pub(crate) async fn units_and_version(&self, order: Uuid) -> Result<(u64, u64)> {
        let loaded = self.app.load::<Order>(order).await?;
        Ok((loaded.state.units(), loaded.version.get()))
    }

    /// S6: `appends` calls of `EventStore::append`, each of `events` `ItemAdded` to a fresh
    /// stream.
    pub(crate) async fn append_batch(&self, appends: usize, events: usize) -> Result<Duration> {
        let orders = workload::order_ids(appends);
        let started = Instant::now();
        for order in orders {
            let stream = StreamId::for_aggregate(<Order as es_core::Aggregate>::NAME, order)?;
            let batch = (0..events)
                .map(|i| new_item_added(&workload::long_item(i)))
                .collect::<Result<Vec<_>>>()?;
            self.store
                .append(AppendRequest::new(stream, ExpectedVersion::NoStream, batch))
                .await?;
        }
        Ok(started.elapsed())
    }
}

/// An `ItemAdded` encoded for `EventStore::append`, as a user batching events writes it.
fn new_item_added(item: &Item) -> Result<NewEvent> {
    let event = ItemAdded {
        sku: item.sku.clone(),
        quantity: item.quantity,
        unit_price_cents: item.unit_price_cents,
    };
    Ok(NewEvent::new(
        ItemAdded::NAME,
        ItemAdded::VERSION,
        es_core::codec::encode(&event)?,
        Metadata::default(),
    ))
}

/// Runs one workload step through the command path.
async fn execute(app: &App<PostgresStore>, order: Uuid, step: Step) -> Result<()> {
    let outcome = match step {
        Step::Place { customer_id } => app
            .execute::<Order>(order, PlaceOrder { customer_id })
            .await
            .map(drop),
        Step::Add(item) => app
            .execute::<Order>(
                order,
                AddItem {
                    sku: item.sku,
                    quantity: item.quantity,
                    unit_price_cents: item.unit_price_cents,
                },
            )
            .await
            .map(drop),
        Step::Pay { amount_cents } => app
            .execute::<Order>(order, PayOrder { amount_cents })
            .await
            .map(drop),
        Step::Ship => app.execute::<Order>(order, ShipOrder).await.map(drop),
    };
    outcome.map_err(|error: CommandError<OrderError>| BenchError::Command(Box::new(error)))
}

/// The `order_summary` read model, written with plain sqlx in the runner's transaction.
///
/// It consumes the events that change the four columns; `ItemRemoved` would need per-line rows,
/// which the workload's summary does not have (and its commands never remove items).
#[derive(Projection)]
#[projection(
    name = "order_summary",
    events(OrderPlaced, ItemAdded, OrderPaid, OrderShipped, OrderCancelled)
)]
pub(crate) struct OrderSummary {
    insert: String,
    add: String,
    set_status: String,
}

impl OrderSummary {
    /// The projection writing `"{schema}".order_summary`.
    fn new(schema: &str) -> Self {
        let table = format!("\"{schema}\".order_summary");
        Self {
            insert: format!(
                "INSERT INTO {table} (order_id, status, item_count, total_cents) \
                 VALUES ($1, 'placed', 0, 0)"
            ),
            add: format!(
                "UPDATE {table} SET item_count = item_count + $2, \
                 total_cents = total_cents + $3 WHERE order_id = $1"
            ),
            set_status: format!("UPDATE {table} SET status = $2 WHERE order_id = $1"),
        }
    }

    async fn status(
        &self,
        stream_id: &StreamId,
        status: &str,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(self.set_status.as_str()))
            .bind(order_id(stream_id))
            .bind(status)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The order id in an order's stream id.
fn order_id(stream_id: &StreamId) -> &str {
    stream_id
        .as_str()
        .strip_prefix("order-")
        .unwrap_or(stream_id.as_str())
}

impl Project<OrderPlaced, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPlaced>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        sqlx::query(sqlx::AssertSqlSafe(self.insert.as_str()))
            .bind(order_id(&event.stream_id))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Project<ItemAdded, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<ItemAdded>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        let quantity = i64::from(event.event.quantity);
        let amount = quantity.saturating_mul(i64::try_from(event.event.unit_price_cents)?);
        sqlx::query(sqlx::AssertSqlSafe(self.add.as_str()))
            .bind(order_id(&event.stream_id))
            .bind(quantity)
            .bind(amount)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Project<OrderPaid, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPaid>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "paid", tx).await
    }
}

impl Project<OrderShipped, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderShipped>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "shipped", tx).await
    }
}

impl Project<OrderCancelled, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderCancelled>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "cancelled", tx).await
    }
}
