//! The baseline: plain sqlx, no framework code, doing the least work each scenario allows on
//! the framework's table shape.
//!
//! Its own event and state types (plain serde), its own SQL. A command is one `SELECT` of the
//! stream's events, the decision, and one `INSERT` of the new event in autocommit mode (the
//! statement is its own transaction: one round trip that commits). Two writers that decided on
//! the same version collide on the `(stream_id, stream_version)` unique key; the loser loads and
//! decides again.
//!
//! A command takes one connection from the pool and runs its load, its insert and any retry
//! on it: each checkout costs sqlx's pool a round trip (it pings the connection it hands out),
//! and a second checkout would run the insert on another backend than the load. Statements
//! run on that connection, not through the pool's executor, which wraps each statement's row
//! stream in a boxed stream of its own (an 8.6 KB copy per statement, and a hop per row).

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool, Row as _};
use uuid::Uuid;

use crate::workload::{self, Item, Step, SummaryRow, TASKS};
use crate::{BenchError, Result};

/// The framework's `events` table (es-postgres migration 0001), its keys and index included.
const EVENTS_DDL: &str = r"
CREATE TABLE {schema}.events (
    position        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  XID8 NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       TEXT NOT NULL,
    stream_version  BIGINT NOT NULL CHECK (stream_version > 0),
    event_id        UUID NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  BIGINT NOT NULL,
    payload         JSONB NOT NULL,
    metadata        JSONB NOT NULL,
    recorded_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);
CREATE INDEX events_log_idx ON {schema}.events (transaction_id, position);
";

/// A stream's events in version order. `LIMIT $2`, bound to NULL (no limit), gives it the
/// framework's plan: once the statement's plan is generic, PostgreSQL expects a parameterised
/// limit to keep a tenth of the rows and reads `(stream_id, stream_version)` in order instead
/// of a bitmap scan and a sort of every row (on this workload's never-analyzed tables). Without
/// it the framework's S3 loads were faster than this baseline's (ratios 1.06 and 1.20, medians
/// of `--runs 5 --scenario S3`), and the baseline must be the least work.
const LOAD: &str = "SELECT stream_version, event_type, payload FROM {schema}.events \
     WHERE stream_id = $1 ORDER BY stream_version LIMIT $2";

const INSERT: &str = "INSERT INTO {schema}.events \
     (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata) \
     VALUES ($1, $2, $3, $4, 1, $5, '{}')";

const INSERT_BATCH: &str = "INSERT INTO {schema}.events \
     (stream_id, stream_version, event_id, event_type, schema_version, payload, metadata) \
     SELECT $1, $2 + e.ord, e.event_id, 'item_added', 1, e.payload, '{}' \
     FROM UNNEST($3::uuid[], $4::jsonb[]) WITH ORDINALITY AS e(event_id, payload, ord)";

const READ_LOG: &str =
    "SELECT stream_id, event_type, payload FROM {schema}.events ORDER BY position";

const INSERT_SUMMARY: &str = "INSERT INTO {schema}.order_summary \
     (order_id, status, item_count, total_cents) \
     SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::bigint[])";

/// The event types, as the framework names them (so both tables hold the same rows).
const ORDER_PLACED: &str = "order_placed";
const ITEM_ADDED: &str = "item_added";
const ITEM_REMOVED: &str = "item_removed";
const ORDER_PAID: &str = "order_paid";
const ORDER_SHIPPED: &str = "order_shipped";
const ORDER_CANCELLED: &str = "order_cancelled";

#[derive(Serialize)]
struct PlacedOut<'a> {
    customer_id: &'a str,
}

#[derive(Serialize, Deserialize)]
struct ItemAddedPayload {
    sku: String,
    quantity: u32,
    unit_price_cents: u64,
}

#[derive(Deserialize)]
struct ItemRemovedPayload {
    sku: String,
}

#[derive(Serialize)]
struct PaidOut {
    amount_cents: u64,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Status {
    #[default]
    New,
    Placed,
    Paid,
    Shipped,
    Cancelled,
}

/// An order's state, folded from its rows.
#[derive(Default)]
struct OrderState {
    version: i64,
    lines: BTreeMap<String, (u64, u64)>,
    status: Status,
}

impl OrderState {
    fn apply(&mut self, event_type: &str, payload: &RawValue) -> Result<()> {
        match event_type {
            ORDER_PLACED => self.status = Status::Placed,
            ITEM_ADDED => {
                let item: ItemAddedPayload = serde_json::from_str(payload.get())?;
                let quantity = u64::from(item.quantity);
                let line = self.lines.entry(item.sku).or_default();
                line.0 = line.0.saturating_add(quantity);
                line.1 = line
                    .1
                    .saturating_add(quantity.saturating_mul(item.unit_price_cents));
            }
            ITEM_REMOVED => {
                let item: ItemRemovedPayload = serde_json::from_str(payload.get())?;
                self.lines.remove(&item.sku);
            }
            ORDER_PAID => self.status = Status::Paid,
            ORDER_SHIPPED => self.status = Status::Shipped,
            ORDER_CANCELLED => self.status = Status::Cancelled,
            other => {
                return Err(BenchError::incorrect(format!(
                    "unknown event type `{other}`"
                )));
            }
        }
        Ok(())
    }

    fn units(&self) -> u64 {
        self.lines.values().map(|(units, _)| units).sum()
    }

    /// The event `step` records, as (type, JSON payload), or why the order refuses it.
    fn decide(&self, step: &Step) -> Result<(&'static str, Json<Box<RawValue>>)> {
        let refused = |why: &str| Err(BenchError::incorrect(format!("command refused: {why}")));
        match step {
            Step::Place { customer_id } => {
                if self.status != Status::New {
                    return refused("already placed");
                }
                Ok((ORDER_PLACED, json(&PlacedOut { customer_id })?))
            }
            Step::Add(item) => {
                if self.status != Status::Placed {
                    return refused("not open");
                }
                if item.quantity == 0 {
                    return refused("zero quantity");
                }
                Ok((ITEM_ADDED, json(&item_payload(item))?))
            }
            Step::Pay { amount_cents } => {
                if self.status != Status::Placed {
                    return refused("not open");
                }
                let total: u64 = self.lines.values().map(|(_, amount)| amount).sum();
                if self.lines.is_empty() || total != *amount_cents {
                    return refused("wrong amount");
                }
                Ok((
                    ORDER_PAID,
                    json(&PaidOut {
                        amount_cents: *amount_cents,
                    })?,
                ))
            }
            Step::Ship => {
                if self.status != Status::Paid {
                    return refused("not paid");
                }
                Ok((ORDER_SHIPPED, json(&())?))
            }
        }
    }
}

/// The payload's JSON text, bound as `jsonb` without further conversion.
fn json(value: &impl Serialize) -> Result<Json<Box<RawValue>>> {
    Ok(Json(serde_json::value::to_raw_value(value)?))
}

fn item_payload(item: &Item) -> ItemAddedPayload {
    ItemAddedPayload {
        sku: item.sku.clone(),
        quantity: item.quantity,
        unit_price_cents: item.unit_price_cents,
    }
}

/// The statements with the schema filled in.
struct Sql {
    load: String,
    insert: String,
    insert_batch: String,
    read_log: String,
    insert_summary: String,
}

/// The baseline on one fresh schema.
pub(crate) struct Raw {
    pool: PgPool,
    sql: std::sync::Arc<Sql>,
}

impl Raw {
    /// Creates `schema` with the events table on `pool`.
    pub(crate) async fn new(pool: PgPool, schema: &str) -> Result<Self> {
        let quoted = format!("\"{schema}\"");
        let render = |template: &str| template.replace("{schema}", &quoted);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {quoted}")))
            .execute(&pool)
            .await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(render(EVENTS_DDL)))
            .execute(&pool)
            .await?;
        let sql = Sql {
            load: render(LOAD),
            insert: render(INSERT),
            insert_batch: render(INSERT_BATCH),
            read_log: render(READ_LOG),
            insert_summary: render(INSERT_SUMMARY),
        };
        Ok(Self {
            pool,
            sql: std::sync::Arc::new(sql),
        })
    }

    fn handle(&self) -> Handle {
        Handle {
            pool: self.pool.clone(),
            sql: std::sync::Arc::clone(&self.sql),
        }
    }

    /// S1, the orders of `part`: one task runs each order's six commands, one after the other.
    pub(crate) async fn append_seq(&self, orders: &[Uuid], part: Range<usize>) -> Result<Duration> {
        let handle = self.handle();
        let started = Instant::now();
        for (index, order) in orders.iter().enumerate().take(part.end).skip(part.start) {
            let stream = workload::stream_id(*order);
            for step in workload::order_steps(index) {
                handle.execute(&stream, &step).await?;
            }
        }
        Ok(started.elapsed())
    }

    /// S2, the orders of `part`: [`TASKS`] tasks, each running its own orders' commands.
    pub(crate) async fn append_par(&self, orders: &[Uuid], part: Range<usize>) -> Result<Duration> {
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let handle = self.handle();
                let mine: Vec<(usize, Uuid)> = workload::task_orders(task, part.clone())
                    .filter_map(|index| orders.get(index).map(|id| (index, *id)))
                    .collect();
                tokio::spawn(async move {
                    for (index, order) in mine {
                        let stream = workload::stream_id(order);
                        for step in workload::order_steps(index) {
                            handle.execute(&stream, &step).await?;
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

    /// S3 setup: an order with `OrderPlaced` and `items` `ItemAdded`, inserted in large batches.
    pub(crate) async fn store_long(&self, order: Uuid, items: usize) -> Result<()> {
        let stream = workload::stream_id(order);
        let handle = self.handle();
        handle
            .execute(
                &stream,
                &Step::Place {
                    customer_id: "customer-long".to_owned(),
                },
            )
            .await?;
        let mut next = 0;
        while next < items {
            let end = (next + 1_000).min(items);
            let batch: Vec<Item> = (next..end).map(workload::long_item).collect();
            handle
                .insert_batch(&stream, 2 + i64::try_from(next)?, &batch)
                .await?;
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
        let stream = workload::stream_id(order);
        let handle = self.handle();
        let mut times = Vec::with_capacity(loads);
        for _ in 0..loads {
            let started = Instant::now();
            let state = handle.load(&stream).await?;
            times.push(started.elapsed());
            let expected_version = i64::try_from(items + 1)?;
            let expected_units = u64::try_from(items)?;
            if state.version != expected_version || state.units() != expected_units {
                return Err(BenchError::incorrect(format!(
                    "S3 loaded version {} with {} units; expected {expected_version} and {expected_units}",
                    state.version,
                    state.units()
                )));
            }
        }
        Ok(times)
    }

    /// S4: reads the whole log in position order in one query, folds it into summary rows in
    /// memory, and writes them with one multi-row `INSERT` (autocommit).
    pub(crate) async fn project_all(&self) -> Result<Duration> {
        #[derive(Default)]
        struct Summary {
            status: &'static str,
            item_count: i64,
            total_cents: i64,
        }
        let started = Instant::now();
        let mut summaries: HashMap<String, Summary> = HashMap::new();
        let mut connection = self.pool.acquire().await?;
        {
            let mut rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.read_log.as_str()))
                .fetch(&mut *connection);
            while let Some(row) = rows.try_next().await? {
                let stream_id: &str = row.try_get(0)?;
                let event_type: &str = row.try_get(1)?;
                let order_id = stream_id.strip_prefix("order-").unwrap_or(stream_id);
                let status = match event_type {
                    ORDER_PLACED => "placed",
                    ORDER_PAID => "paid",
                    ORDER_SHIPPED => "shipped",
                    ORDER_CANCELLED => "cancelled",
                    ITEM_ADDED => {
                        let Json(item): Json<ItemAddedPayload> = row.try_get(2)?;
                        let summary = summaries.entry(order_id.to_owned()).or_default();
                        let quantity = i64::from(item.quantity);
                        summary.item_count += quantity;
                        summary.total_cents += quantity * i64::try_from(item.unit_price_cents)?;
                        continue;
                    }
                    _ => continue,
                };
                match summaries.get_mut(order_id) {
                    Some(summary) => summary.status = status,
                    None => {
                        summaries.insert(
                            order_id.to_owned(),
                            Summary {
                                status,
                                ..Summary::default()
                            },
                        );
                    }
                }
            }
        }
        let count = summaries.len();
        let (mut ids, mut statuses, mut items, mut totals) = (
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
            Vec::with_capacity(count),
        );
        for (id, summary) in summaries {
            ids.push(id);
            statuses.push(summary.status);
            items.push(summary.item_count);
            totals.push(summary.total_cents);
        }
        sqlx::query(sqlx::AssertSqlSafe(self.sql.insert_summary.as_str()))
            .bind(ids)
            .bind(statuses)
            .bind(items)
            .bind(totals)
            .execute(&mut *connection)
            .await?;
        Ok(started.elapsed())
    }

    /// S5 setup: places the contended order.
    pub(crate) async fn place(&self, order: Uuid) -> Result<()> {
        self.handle()
            .execute(
                &workload::stream_id(order),
                &Step::Place {
                    customer_id: "customer-contended".to_owned(),
                },
            )
            .await
    }

    /// S5: [`TASKS`] tasks each add `per_task` single units to `order`, reloading and deciding
    /// again whenever another writer took the version.
    pub(crate) async fn contention(&self, order: Uuid, per_task: usize) -> Result<Duration> {
        let stream = workload::stream_id(order);
        let started = Instant::now();
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let handle = self.handle();
                let stream = stream.clone();
                tokio::spawn(async move {
                    for _ in 0..per_task {
                        handle
                            .execute(&stream, &Step::Add(workload::contended_item()))
                            .await?;
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
        let state = self.handle().load(&workload::stream_id(order)).await?;
        Ok((state.units(), u64::try_from(state.version)?))
    }

    /// S6: `appends` multi-row inserts of `events` `ItemAdded` each, to fresh streams.
    pub(crate) async fn append_batch(&self, appends: usize, events: usize) -> Result<Duration> {
        let orders = workload::order_ids(appends);
        let handle = self.handle();
        let started = Instant::now();
        for order in orders {
            let batch: Vec<Item> = (0..events).map(workload::long_item).collect();
            handle
                .insert_batch(&workload::stream_id(order), 1, &batch)
                .await?;
        }
        Ok(started.elapsed())
    }
}

/// What one task holds: the pool and the statements.
struct Handle {
    pool: PgPool,
    sql: std::sync::Arc<Sql>,
}

impl Handle {
    /// All events of `stream`, folded, on a connection of its own.
    async fn load(&self, stream: &str) -> Result<OrderState> {
        self.load_on(&mut *self.pool.acquire().await?, stream).await
    }

    /// All events of `stream`, folded, read on `connection`.
    async fn load_on(&self, connection: &mut PgConnection, stream: &str) -> Result<OrderState> {
        let mut state = OrderState::default();
        let mut rows = sqlx::query(sqlx::AssertSqlSafe(self.sql.load.as_str()))
            .bind(stream)
            .bind(None::<i64>) // no limit: see LOAD
            .fetch(connection);
        while let Some(row) = rows.try_next().await? {
            let Json(payload): Json<&RawValue> = row.try_get(2)?;
            state.apply(row.try_get(1)?, payload)?;
            state.version = row.try_get(0)?;
        }
        Ok(state)
    }

    /// Load, decide, insert, on one connection; again from the load when another writer took
    /// the version.
    async fn execute(&self, stream: &str, step: &Step) -> Result<()> {
        let mut connection = self.pool.acquire().await?;
        loop {
            let state = self.load_on(&mut connection, stream).await?;
            let (event_type, payload) = state.decide(step)?;
            let inserted = sqlx::query(sqlx::AssertSqlSafe(self.sql.insert.as_str()))
                .bind(stream)
                .bind(state.version + 1)
                .bind(Uuid::now_v7())
                .bind(event_type)
                .bind(payload)
                .execute(&mut *connection)
                .await;
            match inserted {
                Ok(_) => return Ok(()),
                Err(error)
                    if error
                        .as_database_error()
                        .and_then(sqlx::error::DatabaseError::constraint)
                        == Some("events_stream_version_key") => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Inserts `items` as `ItemAdded` rows with versions from `first_version`, in one statement.
    async fn insert_batch(&self, stream: &str, first_version: i64, items: &[Item]) -> Result<()> {
        let ids: Vec<Uuid> = items.iter().map(|_| Uuid::now_v7()).collect();
        let payloads: Vec<Json<ItemAddedPayload>> =
            items.iter().map(|item| Json(item_payload(item))).collect();
        sqlx::query(sqlx::AssertSqlSafe(self.sql.insert_batch.as_str()))
            .bind(stream)
            .bind(first_version - 1)
            .bind(ids)
            .bind(payloads)
            .execute(&mut *self.pool.acquire().await?)
            .await?;
        Ok(())
    }
}

/// The summary rows in `schema`, sorted; used for both systems' S4 check.
pub(crate) async fn summary_rows(pool: &PgPool, schema: &str) -> Result<Vec<SummaryRow>> {
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT order_id, status, item_count, total_cents FROM \"{schema}\".order_summary \
         ORDER BY order_id"
    )))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

/// How many events and streams `schema` holds; used for both systems' checks.
pub(crate) async fn event_counts(pool: &PgPool, schema: &str) -> Result<(i64, i64)> {
    let counts = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*), COUNT(DISTINCT stream_id) FROM \"{schema}\".events"
    )))
    .fetch_one(pool)
    .await?;
    Ok(counts)
}
