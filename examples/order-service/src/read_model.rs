//! The `order_summary` read model: one row per order with status, item count and total.
//!
//! This version keeps its rows in memory (the in-memory store's unit of work is `()`); the
//! PostgreSQL and SQLite versions write the same rows in the runner's transaction.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use es_core::{EventEnvelope, HandlerError, Project, Projection, StreamId};
use serde::Serialize;

use crate::domain::{
    ItemAdded, ItemRemoved, OrderCancelled, OrderPaid, OrderPlaced, OrderShipped, OrderStatus,
};

/// One order as the summary shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OrderSummaryRow {
    /// The order id (the stream id without the `order-` prefix).
    pub order_id: String,
    /// Who placed it.
    pub customer_id: String,
    /// Where it is in its life.
    pub status: OrderStatus,
    /// Units over all lines.
    pub item_count: u64,
    /// The total, in cents.
    pub total_cents: u64,
    /// Units and amount per SKU, so removals can be subtracted.
    #[serde(skip)]
    lines: BTreeMap<String, (u64, u64)>,
}

/// The summary rows, shared between the projection and whoever reads them.
pub type SummaryRows = Arc<RwLock<BTreeMap<String, OrderSummaryRow>>>;

/// The `order_summary` projection over in-memory rows.
#[derive(Debug, Default, Clone, Projection)]
#[projection(
    name = "order_summary",
    events(
        OrderPlaced,
        ItemAdded,
        ItemRemoved,
        OrderPaid,
        OrderShipped,
        OrderCancelled
    )
)]
pub struct OrderSummary {
    rows: SummaryRows,
}

impl OrderSummary {
    /// A projection writing into fresh rows.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The rows this projection writes; clone the handle to read them elsewhere.
    #[must_use]
    pub fn rows(&self) -> SummaryRows {
        Arc::clone(&self.rows)
    }

    fn update(&self, stream_id: &StreamId, change: impl FnOnce(&mut OrderSummaryRow)) {
        let order_id = order_id_of(stream_id);
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        let row = rows
            .entry(order_id.to_owned())
            .or_insert_with(|| OrderSummaryRow {
                order_id: order_id.to_owned(),
                ..OrderSummaryRow::default()
            });
        change(row);
    }
}

/// The order id inside an order stream id (`order-{id}`): the id the order's commands were
/// sent to.
#[must_use]
pub fn order_id_of(stream_id: &StreamId) -> &str {
    stream_id
        .aggregate_parts()
        .map_or(stream_id.as_str(), |(_, order_id)| order_id)
}

impl Project<OrderPlaced> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPlaced>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.update(&event.stream_id, |row| {
            row.customer_id = event.event.customer_id;
            row.status = OrderStatus::Placed;
        });
        Ok(())
    }
}

impl Project<ItemAdded> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<ItemAdded>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        let added = event.event;
        self.update(&event.stream_id, |row| {
            let quantity = u64::from(added.quantity);
            let amount = quantity.saturating_mul(added.unit_price_cents);
            let line = row.lines.entry(added.sku).or_default();
            line.0 = line.0.saturating_add(quantity);
            line.1 = line.1.saturating_add(amount);
            row.item_count = row.item_count.saturating_add(quantity);
            row.total_cents = row.total_cents.saturating_add(amount);
        });
        Ok(())
    }
}

impl Project<ItemRemoved> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<ItemRemoved>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.update(&event.stream_id, |row| {
            if let Some((quantity, amount)) = row.lines.remove(&event.event.sku) {
                row.item_count -= quantity;
                row.total_cents -= amount;
            }
        });
        Ok(())
    }
}

impl Project<OrderPaid> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPaid>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.update(&event.stream_id, |row| row.status = OrderStatus::Paid);
        Ok(())
    }
}

impl Project<OrderShipped> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderShipped>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.update(&event.stream_id, |row| row.status = OrderStatus::Shipped);
        Ok(())
    }
}

impl Project<OrderCancelled> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderCancelled>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.update(&event.stream_id, |row| row.status = OrderStatus::Cancelled);
        Ok(())
    }
}
