//! The framework's side: every scenario through es-core's public API on es-postgres, as a user
//! writes it (the command path for commands, the projection runner for the read model,
//! `EventLog::append` for batches).

use es_core::EventLog;
use std::collections::HashMap;
use std::ops::Range;
use std::time::{Duration, Instant};

use es_core::{
    AggregateSettings, App, AppendRequest, BeginBatch, CheckpointStore as _, CommandError,
    EndBatch, Event as _, EventEnvelope, ExpectedVersion, HandlerError, LogPosition, Metadata,
    NewEvent, Project, Projection, RecordedEvent, Registry, RunnerSettings, StreamId,
};
use es_postgres::{PgTransaction, PostgresOptions, PostgresStore, TableRows};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{
    AddItem, ItemAdded, Order, OrderCancelled, OrderError, OrderPaid, OrderPlaced, OrderShipped,
    PayOrder, PlaceOrder, ShipOrder,
};
use crate::workload::{self, Item, Scenario, Step, TASKS};
use crate::{BenchError, Result};

/// How often S5's commands are decided before a conflict is returned: enough that 16 writers
/// on one order always get through (each retry means another writer committed).
const CONTENTION_ATTEMPTS: u32 = 10_000;

/// How long the rebuilds give the store's listener to connect before their clock starts.
const LISTENER_SETTLE: Duration = Duration::from_millis(200);

/// How long a rebuild waits for every event to become readable before it fails.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(120);

/// Events per batch of the bulk rebuilds, S4's and S4b's (the default, S4p's, is 500). A batch
/// is one transaction and a few bulk statements, and its reads cost about 20 ms on this log
/// whatever its size (see the README), so fewer, larger batches are faster: for S4b, 500,
/// 2,000, 5,000 and 12,000 gave ratios of 0.08, 0.21, 0.33 and 0.35.
pub(crate) const BULK_BATCH: usize = 5_000;

/// How a rebuild's projection writes the read model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Rebuild {
    /// S4: handlers change rows in memory; `TableRows` loads and writes each batch's rows.
    Rows,
    /// S4p: one statement per event, in the handlers.
    PerEvent,
    /// S4b: handlers fold the batch into per-order deltas, the end-of-batch hook writes them.
    Bulk,
}

impl Rebuild {
    /// The rebuild `scenario` measures.
    pub(crate) fn of(scenario: Scenario) -> Result<Self> {
        match scenario {
            Scenario::S4 => Ok(Self::Rows),
            Scenario::S4p => Ok(Self::PerEvent),
            Scenario::S4b => Ok(Self::Bulk),
            other => Err(BenchError::incorrect(format!("{other} is not a rebuild"))),
        }
    }

    /// The checkpoint name of its projection.
    const fn checkpoint(self) -> &'static str {
        match self {
            Self::Rows => <OrderSummary as Projection>::NAME,
            Self::PerEvent => <PerEventOrderSummary as Projection>::NAME,
            Self::Bulk => <BulkOrderSummary as Projection>::NAME,
        }
    }

    /// The scenario that measures it.
    const fn scenario(self) -> Scenario {
        match self {
            Self::Rows => Scenario::S4,
            Self::PerEvent => Scenario::S4p,
            Self::Bulk => Scenario::S4b,
        }
    }
}

/// The framework on one fresh schema.
pub(crate) struct Framework {
    store: PostgresStore,
    app: App<PostgresStore>,
    /// Whether the store's listener was started (by the first rebuild).
    listening: std::sync::atomic::AtomicBool,
    /// The app running each rebuild's projection, built at its first rebuild and kept for the
    /// others, as a service keeps its projections while it runs.
    rebuilders: std::sync::Mutex<HashMap<Rebuild, App<PostgresStore>>>,
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
        Ok(Self {
            store,
            app,
            listening: std::sync::atomic::AtomicBool::new(false),
            rebuilders: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// S1, the orders of `part`: one task runs each order's six commands, one after the other.
    pub(crate) async fn append_seq(&self, orders: &[Uuid], part: Range<usize>) -> Result<Duration> {
        let started = Instant::now();
        for (index, order) in orders.iter().enumerate().take(part.end).skip(part.start) {
            for step in workload::order_steps(index) {
                execute(&self.app, *order, step).await?;
            }
        }
        Ok(started.elapsed())
    }

    /// S2, the orders of `part`: [`TASKS`] tasks, each running its own orders' commands.
    pub(crate) async fn append_par(&self, orders: &[Uuid], part: Range<usize>) -> Result<Duration> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let app = self.app.clone();
                let mine: Vec<(usize, Uuid)> = workload::task_orders(task, part.clone())
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
                .map(|i| new_item_added(workload::long_item(i)))
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

    /// S4, S4p and S4b: rebuilds `order_summary` (the table exists, empty) from the whole log
    /// of `events` events with the projection runner, from position zero: with rows changed in
    /// memory ([`OrderSummary`], batches of [`BULK_BATCH`]), per event
    /// ([`PerEventOrderSummary`]) or with hand-written bulk SQL ([`BulkOrderSummary`], batches
    /// of [`BULK_BATCH`]). The projection's checkpoint is reset first (untimed), since a run
    /// rebuilds several times.
    ///
    /// `catch_up` stops at the last event it may read without skipping one: an event whose
    /// transaction is newer than the oldest transaction still running anywhere on the server
    /// waits (see es-postgres's docs). On a shared server another session's open transaction
    /// can hold the rebuild back, so it catches up again until every event is applied; that
    /// wait is part of the figure.
    pub(crate) async fn project_all(
        &self,
        schema: &str,
        events: usize,
        rebuild: Rebuild,
    ) -> Result<Duration> {
        self.store.reset_checkpoint(rebuild.checkpoint()).await?;
        let built = self
            .rebuilders
            .lock()
            .ok()
            .and_then(|apps| apps.get(&rebuild).cloned());
        let app = match built {
            Some(app) => app,
            None => self.rebuilder(schema, rebuild).await?,
        };
        // A service that runs projections listens for other processes' commits from its start;
        // the store starts its listener on the first watch of the log, so start it before the
        // first rebuild, untimed, and give it the moment it takes to connect.
        if !self
            .listening
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            drop(self.store.watch());
            tokio::time::sleep(LISTENER_SETTLE).await;
        }
        let events = u64::try_from(events)?;
        // The app is kept for the run, and its count of applied events with it: this rebuild's
        // events are what the count gains from here.
        let before = events_applied(&app);
        let applied = |app: &App<PostgresStore>| events_applied(app).saturating_sub(before);
        let started = Instant::now();
        app.catch_up().await?;
        while applied(&app) < events {
            if started.elapsed() > CATCH_UP_DEADLINE {
                return Err(BenchError::incorrect(format!(
                    "{} applied {} of {events} events within {CATCH_UP_DEADLINE:?}",
                    rebuild.scenario(),
                    applied(&app)
                )));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            app.catch_up().await?;
        }
        Ok(started.elapsed())
    }

    /// The app that runs `rebuild`'s projection, built now and kept for the run's other
    /// rebuilds (the projection keeps what it learnt, such as `TableRows`' table columns).
    async fn rebuilder(&self, schema: &str, rebuild: Rebuild) -> Result<App<PostgresStore>> {
        let registry = Registry::new(self.store.clone());
        let app = match rebuild {
            Rebuild::Rows => registry
                .projection(OrderSummary::new(schema))
                .runner_settings(RunnerSettings::default().batch_size(BULK_BATCH)),
            Rebuild::PerEvent => registry.projection(PerEventOrderSummary::new(schema)),
            Rebuild::Bulk => registry
                .projection(BulkOrderSummary::new(schema))
                .runner_settings(RunnerSettings::default().batch_size(BULK_BATCH)),
        }
        .build()
        .await?;
        if let Ok(mut apps) = self.rebuilders.lock() {
            apps.insert(rebuild, app.clone());
        }
        Ok(app)
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
    /// queues them and retries on conflicts.
    pub(crate) async fn contention(&self, order: Uuid, per_task: usize) -> Result<Duration> {
        contend(std::slice::from_ref(&self.app), order, per_task).await
    }

    /// S5x2: as [`contention`](Self::contention), but the tasks are split between this app and
    /// a second one over the same store (built here, untimed): two application instances, as
    /// two processes would be, each queueing its own commands on the order and conflicting
    /// with the other's, which the command path retries after a jittered pause.
    pub(crate) async fn contention_two_apps(
        &self,
        order: Uuid,
        per_task: usize,
    ) -> Result<Duration> {
        let other = Registry::new(self.store.clone())
            .aggregate_with(AggregateSettings::<Order>::new(()).max_attempts(CONTENTION_ATTEMPTS))
            .build()
            .await?;
        contend(&[self.app.clone(), other], order, per_task).await
    }

    /// The units and version of `order`, for S5's check.
    pub(crate) async fn units_and_version(&self, order: Uuid) -> Result<(u64, u64)> {
        let loaded = self.app.load::<Order>(order).await?;
        Ok((loaded.state.units(), loaded.version.get()))
    }

    /// S6: `appends` calls of `EventLog::append`, each of `events` `ItemAdded` to a fresh
    /// stream.
    pub(crate) async fn append_batch(&self, appends: usize, events: usize) -> Result<Duration> {
        let orders = workload::order_ids(appends);
        let started = Instant::now();
        for order in orders {
            let stream = StreamId::for_aggregate(<Order as es_core::Aggregate>::NAME, order)?;
            let batch = (0..events)
                .map(|i| new_item_added(workload::long_item(i)))
                .collect::<Result<Vec<_>>>()?;
            self.store
                .append(AppendRequest::new(stream, ExpectedVersion::NoStream, batch))
                .await?;
        }
        Ok(started.elapsed())
    }
}

/// [`TASKS`] tasks, spread over `apps` in turn, each add `per_task` single units to `order`.
async fn contend(apps: &[App<PostgresStore>], order: Uuid, per_task: usize) -> Result<Duration> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .zip(apps.iter().cycle())
        .map(|(_, app)| {
            let app = app.clone();
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

/// An `ItemAdded` encoded for `EventLog::append`, as a user batching events writes it.
fn new_item_added(item: Item) -> Result<NewEvent> {
    let event = ItemAdded {
        sku: item.sku,
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

/// The events `app`'s projections have applied since it was built.
fn events_applied(app: &App<PostgresStore>) -> u64 {
    app.projection_status()
        .iter()
        .map(|status| status.events_applied)
        .sum()
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

/// One `order_summary` row as S4's handlers see it (the key, `order_id`, is the map's).
#[derive(Debug, Serialize, Deserialize)]
struct SummaryRow {
    status: String,
    item_count: i64,
    total_cents: i64,
}

/// S4's `order_summary` read model, as the framework has a table read model written: the
/// handlers change rows in memory, [`TableRows`] loads the rows a batch touches before it
/// (in [`BeginBatch`]) and writes them back after it (in [`EndBatch`]), in the runner's
/// transaction.
///
/// It consumes the events that change the four columns; `ItemRemoved` would need per-line rows,
/// which the workload's summary does not have (and its commands never remove items).
#[derive(Projection)]
#[projection(
    name = "order_summary",
    events(OrderPlaced, ItemAdded, OrderPaid, OrderShipped, OrderCancelled),
    begin_batch,
    end_batch
)]
pub(crate) struct OrderSummary {
    rows: TableRows<String, SummaryRow>,
}

impl OrderSummary {
    /// The projection writing `"{schema}".order_summary`.
    fn new(schema: &str) -> Self {
        Self {
            rows: TableRows::in_schema(schema, "order_summary", "order_id"),
        }
    }

    /// Sets the status of the order of `stream_id`, if it was placed.
    fn status(&mut self, stream_id: &StreamId, status: &str) -> Result<(), HandlerError> {
        if let Some(row) = self.rows.get_mut(order_id(stream_id))? {
            status.clone_into(&mut row.status);
        }
        Ok(())
    }
}

impl BeginBatch<PgTransaction> for OrderSummary {
    async fn begin_batch(
        &mut self,
        events: &[RecordedEvent],
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        let keys = events
            .iter()
            .map(|event| order_id(&event.stream_id).to_owned());
        Ok(self.rows.load(tx, keys).await?)
    }
}

impl Project<OrderPlaced, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPlaced>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        let row = SummaryRow {
            status: "placed".to_owned(),
            item_count: 0,
            total_cents: 0,
        };
        self.rows.insert(order_id(&event.stream_id).to_owned(), row);
        Ok(())
    }
}

impl Project<ItemAdded, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<ItemAdded>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        let (quantity, amount) = units_and_cents(&event.event)?;
        if let Some(row) = self.rows.get_mut(order_id(&event.stream_id))? {
            row.item_count = row.item_count.saturating_add(quantity);
            row.total_cents = row.total_cents.saturating_add(amount);
        }
        Ok(())
    }
}

impl Project<OrderPaid, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPaid>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "paid")
    }
}

impl Project<OrderShipped, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderShipped>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "shipped")
    }
}

impl Project<OrderCancelled, PgTransaction> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderCancelled>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "cancelled")
    }
}

impl EndBatch<PgTransaction> for OrderSummary {
    async fn end_batch(&mut self, tx: &mut PgTransaction) -> Result<(), HandlerError> {
        Ok(self.rows.flush(tx).await?)
    }
}

/// S4p's `order_summary`: the same read model, written with plain sqlx in the runner's
/// transaction, one statement per event.
#[derive(Projection)]
#[projection(
    name = "order_summary_per_event",
    events(OrderPlaced, ItemAdded, OrderPaid, OrderShipped, OrderCancelled)
)]
pub(crate) struct PerEventOrderSummary {
    insert: String,
    add: String,
    set_status: String,
}

impl PerEventOrderSummary {
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

/// The units an `ItemAdded` adds and what they cost, in cents.
fn units_and_cents(item: &ItemAdded) -> Result<(i64, i64), HandlerError> {
    let quantity = i64::from(item.quantity);
    Ok((
        quantity,
        quantity.saturating_mul(i64::try_from(item.unit_price_cents)?),
    ))
}

/// The order id in an order's stream id.
fn order_id(stream_id: &StreamId) -> &str {
    stream_id
        .aggregate_parts()
        .map_or(stream_id.as_str(), |(_, order_id)| order_id)
}

impl Project<OrderPlaced, PgTransaction> for PerEventOrderSummary {
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

impl Project<ItemAdded, PgTransaction> for PerEventOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<ItemAdded>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        let (quantity, amount) = units_and_cents(&event.event)?;
        sqlx::query(sqlx::AssertSqlSafe(self.add.as_str()))
            .bind(order_id(&event.stream_id))
            .bind(quantity)
            .bind(amount)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

impl Project<OrderPaid, PgTransaction> for PerEventOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPaid>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "paid", tx).await
    }
}

impl Project<OrderShipped, PgTransaction> for PerEventOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderShipped>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "shipped", tx).await
    }
}

impl Project<OrderCancelled, PgTransaction> for PerEventOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderCancelled>,
        tx: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(&event.stream_id, "cancelled", tx).await
    }
}

/// S4b's `order_summary`: the same read model as [`OrderSummary`], written in bulk by SQL of its
/// own.
///
/// The handlers only fold the batch's events into per-order deltas in memory (status, units,
/// amount); [`EndBatch::end_batch`] writes them with one `INSERT ... SELECT FROM UNNEST ... ON
/// CONFLICT DO UPDATE` in the runner's transaction, before its commit. An order placed in an
/// earlier batch gets its deltas added; its status changes only if the batch changed it.
#[derive(Projection)]
#[projection(
    name = "order_summary_bulk",
    events(OrderPlaced, ItemAdded, OrderPaid, OrderShipped, OrderCancelled),
    end_batch
)]
pub(crate) struct BulkOrderSummary {
    upsert: String,
    /// The batch so far, by order stream.
    deltas: HashMap<StreamId, Delta>,
    /// The log position of the last event buffered.
    last: Option<LogPosition>,
}

/// What one batch changes in one order's row.
#[derive(Debug, Default)]
struct Delta {
    /// The batch's last status, if it set one.
    status: Option<&'static str>,
    /// Units added.
    item_count: i64,
    /// Cents added.
    total_cents: i64,
}

impl BulkOrderSummary {
    /// The projection writing `"{schema}".order_summary`.
    fn new(schema: &str) -> Self {
        let table = format!("\"{schema}\".order_summary");
        Self {
            // A new order's row comes with its `OrderPlaced` (status `placed` unless the batch
            // moved it on); an existing row never goes back to `placed`, so there `placed` (or
            // no status) keeps the stored one.
            upsert: format!(
                "INSERT INTO {table} AS s (order_id, status, item_count, total_cents) \
                 SELECT order_id, COALESCE(status, 'placed'), item_count, total_cents \
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::int8[]) \
                 AS u(order_id, status, item_count, total_cents) \
                 ON CONFLICT (order_id) DO UPDATE SET \
                 status = COALESCE(NULLIF(EXCLUDED.status, 'placed'), s.status), \
                 item_count = s.item_count + EXCLUDED.item_count, \
                 total_cents = s.total_cents + EXCLUDED.total_cents"
            ),
            deltas: HashMap::new(),
            last: None,
        }
    }

    /// The delta of the order of `stream_id`, for the event at `position`.
    ///
    /// A position at or before the last one buffered means the runner is handing a batch over
    /// again (a handler failed and the transaction rolled back): what was buffered of the
    /// abandoned attempt is dropped, or it would be counted twice.
    fn delta(&mut self, stream_id: StreamId, position: LogPosition) -> &mut Delta {
        if self.last.is_some_and(|last| position <= last) {
            self.deltas.clear();
        }
        self.last = Some(position);
        self.deltas.entry(stream_id).or_default()
    }

    /// Buffers a status change.
    fn status<E>(&mut self, event: EventEnvelope<E>, status: &'static str) {
        self.delta(event.stream_id, event.log_position).status = Some(status);
    }
}

impl Project<OrderPlaced, PgTransaction> for BulkOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPlaced>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(event, "placed");
        Ok(())
    }
}

impl Project<ItemAdded, PgTransaction> for BulkOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<ItemAdded>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        let (quantity, amount) = units_and_cents(&event.event)?;
        let delta = self.delta(event.stream_id, event.log_position);
        delta.item_count = delta.item_count.saturating_add(quantity);
        delta.total_cents = delta.total_cents.saturating_add(amount);
        Ok(())
    }
}

impl Project<OrderPaid, PgTransaction> for BulkOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPaid>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(event, "paid");
        Ok(())
    }
}

impl Project<OrderShipped, PgTransaction> for BulkOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderShipped>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(event, "shipped");
        Ok(())
    }
}

impl Project<OrderCancelled, PgTransaction> for BulkOrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderCancelled>,
        _: &mut PgTransaction,
    ) -> Result<(), HandlerError> {
        self.status(event, "cancelled");
        Ok(())
    }
}

impl EndBatch<PgTransaction> for BulkOrderSummary {
    async fn end_batch(&mut self, tx: &mut PgTransaction) -> Result<(), HandlerError> {
        // Taken first: if the statement or the commit fails, the runner hands the whole batch
        // over again, and it must find the buffer empty.
        let deltas = std::mem::take(&mut self.deltas);
        self.last = None;
        if deltas.is_empty() {
            return Ok(());
        }
        let count = deltas.len();
        let (mut ids, mut statuses, mut items, mut totals) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        for (stream_id, delta) in &deltas {
            ids.push(order_id(stream_id));
            statuses.push(delta.status);
            items.push(delta.item_count);
            totals.push(delta.total_cents);
        }
        sqlx::query(sqlx::AssertSqlSafe(self.upsert.as_str()))
            .bind(ids)
            .bind(statuses)
            .bind(items)
            .bind(totals)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}
