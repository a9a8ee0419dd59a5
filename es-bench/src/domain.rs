//! The workload's `Order` aggregate, written the way a user of the framework writes it.
//!
//! No snapshots (`#[aggregate(snapshot = ...)]` is absent): the workload rules them out unless a
//! scenario allows them, and none does.

use std::collections::BTreeMap;

use es_core::{Aggregate, Apply, Events, Handle, event};

/// An order was placed.
#[event]
pub(crate) struct OrderPlaced {
    /// Who placed it.
    pub(crate) customer_id: String,
}

/// Units of a SKU were added.
#[event]
pub(crate) struct ItemAdded {
    /// The SKU.
    pub(crate) sku: String,
    /// Units.
    pub(crate) quantity: u32,
    /// Price of one unit.
    pub(crate) unit_price_cents: u64,
}

/// Every unit of a SKU was removed.
#[event]
pub(crate) struct ItemRemoved {
    /// The SKU.
    pub(crate) sku: String,
}

/// The order was paid in full.
#[event]
pub(crate) struct OrderPaid {
    /// The amount, equal to the total.
    pub(crate) amount_cents: u64,
}

/// The order was shipped.
#[event]
pub(crate) struct OrderShipped;

/// The order was cancelled.
#[event]
pub(crate) struct OrderCancelled {
    /// Why.
    pub(crate) reason: String,
}

/// Place a new order.
#[derive(Clone, Debug)]
pub(crate) struct PlaceOrder {
    /// Who places it.
    pub(crate) customer_id: String,
}

/// Add units of a SKU.
#[derive(Clone, Debug)]
pub(crate) struct AddItem {
    /// The SKU.
    pub(crate) sku: String,
    /// Units (at least 1).
    pub(crate) quantity: u32,
    /// Price of one unit.
    pub(crate) unit_price_cents: u64,
}

/// Remove every unit of a SKU.
#[derive(Clone, Debug)]
pub(crate) struct RemoveItem {
    /// The SKU.
    pub(crate) sku: String,
}

/// Pay the order's total.
#[derive(Clone, Debug)]
pub(crate) struct PayOrder {
    /// The amount, which must equal the total.
    pub(crate) amount_cents: u64,
}

/// Ship a paid order.
#[derive(Clone, Debug)]
pub(crate) struct ShipOrder;

/// Cancel an order that has not shipped.
#[derive(Clone, Debug)]
pub(crate) struct CancelOrder {
    /// Why.
    pub(crate) reason: String,
}

/// Why an order refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum OrderError {
    /// `PlaceOrder` on an existing order.
    #[error("the order has already been placed")]
    AlreadyPlaced,
    /// A change to an order that is not open (new, paid, shipped or cancelled).
    #[error("the order is not open for changes")]
    NotOpen,
    /// `AddItem` with quantity 0.
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    /// `RemoveItem` of a SKU not in the order.
    #[error("the sku is not in the order")]
    UnknownSku,
    /// `PayOrder` without items.
    #[error("the order has no items")]
    Empty,
    /// `PayOrder` with an amount other than the total.
    #[error("amount {paid_cents} does not equal the order total {total_cents}")]
    WrongAmount {
        /// The total.
        total_cents: u64,
        /// The amount sent.
        paid_cents: u64,
    },
    /// `ShipOrder` on an unpaid or shipped order.
    #[error("only a paid order ships")]
    NotPaid,
    /// `CancelOrder` on a shipped (or cancelled) order.
    #[error("the order can no longer be cancelled")]
    NotCancellable,
}

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Status {
    /// No events yet.
    #[default]
    New,
    /// Placed: items may change.
    Placed,
    /// Paid.
    Paid,
    /// Shipped.
    Shipped,
    /// Cancelled.
    Cancelled,
}

/// An order: lines and status, folded from its events.
#[derive(Debug, Default, Aggregate)]
#[aggregate(
    name = "order",
    error = OrderError,
    events(OrderPlaced, ItemAdded, ItemRemoved, OrderPaid, OrderShipped, OrderCancelled),
    commands(PlaceOrder, AddItem, RemoveItem, PayOrder, ShipOrder, CancelOrder)
)]
pub(crate) struct Order {
    /// Units and amount per SKU.
    lines: BTreeMap<String, (u64, u64)>,
    /// Where it is in its life.
    status: Status,
}

impl Order {
    /// Units over all lines.
    pub(crate) fn units(&self) -> u64 {
        self.lines.values().map(|(units, _)| units).sum()
    }

    /// The total in cents.
    pub(crate) fn total_cents(&self) -> u64 {
        self.lines.values().map(|(_, amount)| amount).sum()
    }

    const fn ensure_open(&self) -> Result<(), OrderError> {
        match self.status {
            Status::Placed => Ok(()),
            _ => Err(OrderError::NotOpen),
        }
    }
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {
        self.status = Status::Placed;
    }
}

impl Apply<ItemAdded> for Order {
    fn apply(&mut self, event: &ItemAdded) {
        let line = self.lines.entry(event.sku.clone()).or_default();
        let quantity = u64::from(event.quantity);
        line.0 = line.0.saturating_add(quantity);
        line.1 = line
            .1
            .saturating_add(quantity.saturating_mul(event.unit_price_cents));
    }
}

impl Apply<ItemRemoved> for Order {
    fn apply(&mut self, event: &ItemRemoved) {
        self.lines.remove(&event.sku);
    }
}

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, _: &OrderPaid) {
        self.status = Status::Paid;
    }
}

impl Apply<OrderShipped> for Order {
    fn apply(&mut self, _: &OrderShipped) {
        self.status = Status::Shipped;
    }
}

impl Apply<OrderCancelled> for Order {
    fn apply(&mut self, _: &OrderCancelled) {
        self.status = Status::Cancelled;
    }
}

impl Handle<PlaceOrder> for Order {
    fn handle(&self, command: PlaceOrder) -> Result<Events<Self>, OrderError> {
        if self.status != Status::New {
            return Err(OrderError::AlreadyPlaced);
        }
        Ok(Events::one(OrderPlaced {
            customer_id: command.customer_id,
        }))
    }
}

impl Handle<AddItem> for Order {
    fn handle(&self, command: AddItem) -> Result<Events<Self>, OrderError> {
        self.ensure_open()?;
        if command.quantity == 0 {
            return Err(OrderError::ZeroQuantity);
        }
        Ok(Events::one(ItemAdded {
            sku: command.sku,
            quantity: command.quantity,
            unit_price_cents: command.unit_price_cents,
        }))
    }
}

impl Handle<RemoveItem> for Order {
    fn handle(&self, command: RemoveItem) -> Result<Events<Self>, OrderError> {
        self.ensure_open()?;
        if !self.lines.contains_key(&command.sku) {
            return Err(OrderError::UnknownSku);
        }
        Ok(Events::one(ItemRemoved { sku: command.sku }))
    }
}

impl Handle<PayOrder> for Order {
    fn handle(&self, command: PayOrder) -> Result<Events<Self>, OrderError> {
        self.ensure_open()?;
        if self.lines.is_empty() {
            return Err(OrderError::Empty);
        }
        let total_cents = self.total_cents();
        if command.amount_cents != total_cents {
            return Err(OrderError::WrongAmount {
                total_cents,
                paid_cents: command.amount_cents,
            });
        }
        Ok(Events::one(OrderPaid {
            amount_cents: command.amount_cents,
        }))
    }
}

impl Handle<ShipOrder> for Order {
    fn handle(&self, _: ShipOrder) -> Result<Events<Self>, OrderError> {
        if self.status != Status::Paid {
            return Err(OrderError::NotPaid);
        }
        Ok(Events::one(OrderShipped))
    }
}

impl Handle<CancelOrder> for Order {
    fn handle(&self, command: CancelOrder) -> Result<Events<Self>, OrderError> {
        match self.status {
            Status::Placed | Status::Paid => Ok(Events::one(OrderCancelled {
                reason: command.reason,
            })),
            Status::New | Status::Shipped | Status::Cancelled => Err(OrderError::NotCancellable),
        }
    }
}
