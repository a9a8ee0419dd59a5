//! The `order_summary` read model as SQL tables, written in the projection runner's transaction
//! on SQLite and on PostgreSQL: a batch of events and the checkpoint commit together, so the
//! table is exactly a fold of the log, even across crashes.
//!
//! Two tables: `order_summary` (one row per order) and `order_summary_lines` (units and amount
//! per SKU, so that a removal can be subtracted).

use std::sync::Arc;

use es_core::{EventEnvelope, HandlerError, Project, Projection, Reset};
use sqlx::{Postgres, Sqlite, Transaction};

use crate::domain::{
    ItemAdded, ItemRemoved, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped, OrderStatus,
};
use crate::read_model::order_id_of;

/// The SQL of the read model, with table names qualified for one database.
#[derive(Debug)]
pub struct SummarySql {
    /// Statements creating the tables and index if they are missing, in order.
    pub create: Vec<String>,
    /// Empties both tables (for a rebuild).
    pub clear: Vec<String>,
    insert_order: String,
    delete_lines_of_order: String,
    upsert_line: String,
    add_to_order: String,
    subtract_line: String,
    delete_line: String,
    set_status: String,
    /// Lists summaries in order id order; binds `$1` status or NULL, `$2` customer id or NULL,
    /// `$3` limit, `$4` the order id to start after or NULL (keyset paging: the primary key
    /// is the cursor, so a page costs the same however deep it is).
    pub list: String,
}

impl SummarySql {
    /// The statements for tables named `{prefix}order_summary` and `{prefix}order_summary_lines`
    /// (`prefix` is `""` on SQLite, `"schema".` on PostgreSQL).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        let summary = format!("{prefix}order_summary");
        let lines = format!("{prefix}order_summary_lines");
        Self {
            create: vec![
                format!(
                    "CREATE TABLE IF NOT EXISTS {summary} (\
                     order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, status TEXT NOT NULL, \
                     item_count BIGINT NOT NULL, total_cents BIGINT NOT NULL, \
                     version BIGINT NOT NULL)"
                ),
                format!(
                    "CREATE INDEX IF NOT EXISTS order_summary_by_customer \
                     ON {summary} (customer_id, status)"
                ),
                format!(
                    "CREATE TABLE IF NOT EXISTS {lines} (\
                     order_id TEXT NOT NULL, sku TEXT NOT NULL, quantity BIGINT NOT NULL, \
                     amount_cents BIGINT NOT NULL, PRIMARY KEY (order_id, sku))"
                ),
            ],
            clear: vec![
                format!("DELETE FROM {lines}"),
                format!("DELETE FROM {summary}"),
            ],
            insert_order: format!(
                "INSERT INTO {summary} (order_id, customer_id, status, item_count, total_cents, version) \
                 VALUES ($1, $2, 'placed', 0, 0, $3) \
                 ON CONFLICT (order_id) DO UPDATE SET customer_id = excluded.customer_id, \
                 status = 'placed', item_count = 0, total_cents = 0, version = excluded.version"
            ),
            delete_lines_of_order: format!("DELETE FROM {lines} WHERE order_id = $1"),
            upsert_line: format!(
                "INSERT INTO {lines} (order_id, sku, quantity, amount_cents) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (order_id, sku) DO UPDATE SET \
                 quantity = {lines}.quantity + excluded.quantity, \
                 amount_cents = {lines}.amount_cents + excluded.amount_cents"
            ),
            add_to_order: format!(
                "UPDATE {summary} SET item_count = item_count + $2, \
                 total_cents = total_cents + $3, version = $4 WHERE order_id = $1"
            ),
            subtract_line: format!(
                "UPDATE {summary} SET \
                 item_count = item_count - COALESCE((SELECT quantity FROM {lines} \
                     WHERE order_id = $1 AND sku = $2), 0), \
                 total_cents = total_cents - COALESCE((SELECT amount_cents FROM {lines} \
                     WHERE order_id = $1 AND sku = $2), 0), \
                 version = $3 WHERE order_id = $1"
            ),
            delete_line: format!("DELETE FROM {lines} WHERE order_id = $1 AND sku = $2"),
            set_status: format!(
                "UPDATE {summary} SET status = $2, version = $3 WHERE order_id = $1"
            ),
            list: format!(
                "SELECT order_id, customer_id, status, item_count, total_cents, version \
                 FROM {summary} WHERE ($1 IS NULL OR status = $1) \
                 AND ($2 IS NULL OR customer_id = $2) AND ($4 IS NULL OR order_id > $4) \
                 ORDER BY order_id LIMIT $3"
            ),
        }
    }
}

/// The `order_summary` projection over SQL tables; runs on the SQLite and PostgreSQL stores.
#[derive(Clone, Debug, Projection)]
#[projection(
    name = "order_summary",
    events(
        OrderPlaced,
        ItemAdded,
        ItemRemoved,
        OrderPaid,
        OrderShipped,
        OrderCancelled
    ),
    reset
)]
pub struct OrderSummaryTable {
    sql: Arc<SummarySql>,
}

impl OrderSummaryTable {
    /// A projection writing with `sql`.
    #[must_use]
    pub const fn new(sql: Arc<SummarySql>) -> Self {
        Self { sql }
    }
}

/// A value for a `BIGINT` column; amounts are capped by the domain at `i64::MAX`.
fn column(value: u64, what: &str) -> Result<i64, HandlerError> {
    i64::try_from(value).map_err(|_| HandlerError::msg(format!("{what} {value} exceeds i64")))
}

fn version<E>(event: &EventEnvelope<E>) -> Result<i64, HandlerError> {
    column(event.stream_version.get(), "stream version")
}

/// The same handlers for each database: only the transaction type differs.
macro_rules! summary_handlers {
    ($database:ty) => {
        /// A rebuild empties both tables in the unit of work that resets the checkpoint, under
        /// the rebuild's lease.
        impl Reset<Transaction<'static, $database>> for OrderSummaryTable {
            async fn reset(
                &mut self,
                tx: &mut Transaction<'static, $database>,
            ) -> Result<(), HandlerError> {
                for statement in &self.sql.clear {
                    sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(())
            }
        }

        impl Project<OrderPlaced, Transaction<'static, $database>> for OrderSummaryTable {
            async fn project(
                &mut self,
                event: EventEnvelope<OrderPlaced>,
                tx: &mut Transaction<'static, $database>,
            ) -> Result<(), HandlerError> {
                // Every order starts here, so a replay from position zero over old rows resets
                // each order first (a rebuild clears the tables anyway: see `Reset`).
                let order_id = order_id_of(&event.stream_id);
                sqlx::query(sqlx::AssertSqlSafe(self.sql.delete_lines_of_order.as_str()))
                    .bind(order_id)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(self.sql.insert_order.as_str()))
                    .bind(order_id)
                    .bind(&event.event.customer_id)
                    .bind(version(&event)?)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        impl Project<ItemAdded, Transaction<'static, $database>> for OrderSummaryTable {
            async fn project(
                &mut self,
                event: EventEnvelope<ItemAdded>,
                tx: &mut Transaction<'static, $database>,
            ) -> Result<(), HandlerError> {
                let order_id = order_id_of(&event.stream_id);
                let quantity = u64::from(event.event.quantity);
                let amount = quantity.saturating_mul(event.event.unit_price_cents);
                sqlx::query(sqlx::AssertSqlSafe(self.sql.upsert_line.as_str()))
                    .bind(order_id)
                    .bind(&event.event.sku)
                    .bind(column(quantity, "quantity")?)
                    .bind(column(amount, "amount")?)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(self.sql.add_to_order.as_str()))
                    .bind(order_id)
                    .bind(column(quantity, "quantity")?)
                    .bind(column(amount, "amount")?)
                    .bind(version(&event)?)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        impl Project<ItemRemoved, Transaction<'static, $database>> for OrderSummaryTable {
            async fn project(
                &mut self,
                event: EventEnvelope<ItemRemoved>,
                tx: &mut Transaction<'static, $database>,
            ) -> Result<(), HandlerError> {
                let order_id = order_id_of(&event.stream_id);
                sqlx::query(sqlx::AssertSqlSafe(self.sql.subtract_line.as_str()))
                    .bind(order_id)
                    .bind(&event.event.sku)
                    .bind(version(&event)?)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(sqlx::AssertSqlSafe(self.sql.delete_line.as_str()))
                    .bind(order_id)
                    .bind(&event.event.sku)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }

        summary_handlers!(@status $database, OrderPaid, OrderStatus::Paid);
        summary_handlers!(@status $database, OrderShipped, OrderStatus::Shipped);
        summary_handlers!(@status $database, OrderCancelled, OrderStatus::Cancelled);
    };
    (@status $database:ty, $event:ty, $status:expr) => {
        impl Project<$event, Transaction<'static, $database>> for OrderSummaryTable {
            async fn project(
                &mut self,
                event: EventEnvelope<$event>,
                tx: &mut Transaction<'static, $database>,
            ) -> Result<(), HandlerError> {
                sqlx::query(sqlx::AssertSqlSafe(self.sql.set_status.as_str()))
                    .bind(order_id_of(&event.stream_id))
                    .bind($status.as_str())
                    .bind(version(&event)?)
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }
        }
    };
}

summary_handlers!(Postgres);
summary_handlers!(Sqlite);
