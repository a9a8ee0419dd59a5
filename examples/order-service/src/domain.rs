//! The `Order` aggregate of the `orders-v1` workload (`es-bench/WORKLOAD.md`).
//!
//! Rules beyond the workload's table, chosen because the table leaves them open and a real shop
//! would refuse the command: removing an item also requires an open order (placed, neither paid
//! nor cancelled), paying twice or paying a cancelled order is refused, and cancelling twice is
//! refused. Adding a SKU that is already in the order adds to its quantity. Amounts are checked
//! for overflow rather than wrapping.

use std::collections::BTreeMap;

use es_core::{Aggregate, Apply, Events, Handle, event};
use serde::{Deserialize, Serialize};

/// An order was placed for a customer.
#[event]
pub struct OrderPlaced {
    /// Who placed it.
    pub customer_id: String,
}

/// Units of a SKU were added to the order.
#[event]
pub struct ItemAdded {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many units (at least 1).
    pub quantity: u32,
    /// The price of one unit, in cents.
    pub unit_price_cents: u64,
}

/// Every unit of a SKU was removed from the order.
#[event]
pub struct ItemRemoved {
    /// The stock-keeping unit.
    pub sku: String,
}

/// The order was paid in full.
#[event]
pub struct OrderPaid {
    /// The amount paid, equal to the order's total.
    pub amount_cents: u64,
}

/// The order was shipped.
#[event]
pub struct OrderShipped;

/// The order was cancelled.
#[event]
pub struct OrderCancelled {
    /// Why.
    pub reason: String,
}

/// Place a new order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// Who places it.
    pub customer_id: String,
}

/// Add units of a SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddItem {
    /// The stock-keeping unit.
    pub sku: String,
    /// How many units (at least 1).
    pub quantity: u32,
    /// The price of one unit, in cents.
    pub unit_price_cents: u64,
}

/// Remove every unit of a SKU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveItem {
    /// The stock-keeping unit.
    pub sku: String,
}

/// Pay the order's total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayOrder {
    /// The amount, which must equal the total.
    pub amount_cents: u64,
}

/// Ship a paid order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipOrder;

/// Cancel an order that has not shipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelOrder {
    /// Why.
    pub reason: String,
}

/// The largest total (in cents) and unit count an order may reach: what a signed 64-bit column
/// holds, so read models in SQL and JSON clients store it exactly.
pub const MAX_AMOUNT: u64 = i64::MAX.unsigned_abs();

/// Where an order is in its life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// No events yet.
    #[default]
    New,
    /// Placed; items may be added and removed.
    Placed,
    /// Paid in full.
    Paid,
    /// Shipped.
    Shipped,
    /// Cancelled.
    Cancelled,
}

impl OrderStatus {
    /// The status as the lower-case word used in URLs and JSON.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Shipped => "shipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// One SKU's units in an order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Units of the SKU.
    pub quantity: u64,
    /// What those units cost, in cents.
    pub amount_cents: u64,
}

/// Why an order refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    /// `PlaceOrder` on an order that exists.
    #[error("the order has already been placed")]
    AlreadyPlaced,
    /// A command on an order that was never placed.
    #[error("the order has not been placed")]
    NotPlaced,
    /// A change to an order that is paid (or shipped).
    #[error("the order has already been paid")]
    AlreadyPaid,
    /// A change to a cancelled order.
    #[error("the order has been cancelled")]
    Cancelled,
    /// `AddItem` with quantity 0.
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    /// `RemoveItem` for a SKU not in the order.
    #[error("sku `{sku}` is not in the order")]
    UnknownSku {
        /// The SKU asked for.
        sku: String,
    },
    /// `PayOrder` on an order without items.
    #[error("the order has no items")]
    Empty,
    /// `PayOrder` with an amount other than the total.
    #[error("amount {paid_cents} does not equal the order total {total_cents}")]
    WrongAmount {
        /// The order's total.
        total_cents: u64,
        /// The amount sent.
        paid_cents: u64,
    },
    /// `ShipOrder` on an order that is not paid.
    #[error("the order has not been paid")]
    NotPaid,
    /// `ShipOrder` or `CancelOrder` on a shipped order.
    #[error("the order has already been shipped")]
    AlreadyShipped,
    /// Quantities or amounts beyond what an order can hold.
    #[error("the order total or unit count would exceed {MAX_AMOUNT}")]
    TooLarge,
}

impl OrderError {
    /// Every [`code`](Self::code) a refusal can have.
    pub const CODES: &'static [&'static str] = &[
        "already_placed",
        "not_placed",
        "already_paid",
        "order_cancelled",
        "zero_quantity",
        "unknown_sku",
        "no_items",
        "wrong_amount",
        "not_paid",
        "already_shipped",
        "too_large",
    ];

    /// A stable, machine-readable name for the refusal (the HTTP error `code`).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::AlreadyPlaced => "already_placed",
            Self::NotPlaced => "not_placed",
            Self::AlreadyPaid => "already_paid",
            Self::Cancelled => "order_cancelled",
            Self::ZeroQuantity => "zero_quantity",
            Self::UnknownSku { .. } => "unknown_sku",
            Self::Empty => "no_items",
            Self::WrongAmount { .. } => "wrong_amount",
            Self::NotPaid => "not_paid",
            Self::AlreadyShipped => "already_shipped",
            Self::TooLarge => "too_large",
        }
    }
}

/// An order: its customer, lines and status, folded from its events.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "order",
    error = OrderError,
    events(OrderPlaced, ItemAdded, ItemRemoved, OrderPaid, OrderShipped, OrderCancelled),
    commands(PlaceOrder, AddItem, RemoveItem, PayOrder, ShipOrder, CancelOrder),
)]
pub struct Order {
    /// Who placed it (empty while new).
    pub customer_id: String,
    /// Lines by SKU.
    pub lines: BTreeMap<String, OrderLine>,
    /// Where it is in its life.
    pub status: OrderStatus,
}

impl Order {
    /// The sum of all lines, in cents.
    #[must_use]
    pub fn total_cents(&self) -> u64 {
        self.lines.values().map(|line| line.amount_cents).sum()
    }

    /// The number of units over all lines.
    #[must_use]
    pub fn units(&self) -> u64 {
        self.lines.values().map(|line| line.quantity).sum()
    }

    /// Refuses changes unless the order is placed and still open.
    const fn ensure_open(&self) -> Result<(), OrderError> {
        match self.status {
            OrderStatus::New => Err(OrderError::NotPlaced),
            OrderStatus::Placed => Ok(()),
            OrderStatus::Paid | OrderStatus::Shipped => Err(OrderError::AlreadyPaid),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
        }
    }
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, event: &OrderPlaced) {
        self.customer_id.clone_from(&event.customer_id);
        self.status = OrderStatus::Placed;
    }
}

impl Apply<ItemAdded> for Order {
    fn apply(&mut self, event: &ItemAdded) {
        let line = self.lines.entry(event.sku.clone()).or_default();
        // Saturating: `handle` refused anything that would overflow, so this never saturates
        // for events this code decided; it keeps replay total for rows written elsewhere.
        line.quantity = line.quantity.saturating_add(u64::from(event.quantity));
        line.amount_cents = line
            .amount_cents
            .saturating_add(u64::from(event.quantity).saturating_mul(event.unit_price_cents));
    }
}

impl Apply<ItemRemoved> for Order {
    fn apply(&mut self, event: &ItemRemoved) {
        self.lines.remove(&event.sku);
    }
}

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, _: &OrderPaid) {
        self.status = OrderStatus::Paid;
    }
}

impl Apply<OrderShipped> for Order {
    fn apply(&mut self, _: &OrderShipped) {
        self.status = OrderStatus::Shipped;
    }
}

impl Apply<OrderCancelled> for Order {
    fn apply(&mut self, _: &OrderCancelled) {
        self.status = OrderStatus::Cancelled;
    }
}

impl Handle<PlaceOrder> for Order {
    fn handle(&self, command: PlaceOrder) -> Result<Events<Self>, OrderError> {
        if self.status != OrderStatus::New {
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
        let within = |amount: Option<u64>| amount.is_some_and(|amount| amount <= MAX_AMOUNT);
        let added = u64::from(command.quantity).checked_mul(command.unit_price_cents);
        let fits = within(added)
            && within(self.total_cents().checked_add(added.unwrap_or(u64::MAX)))
            && within(self.units().checked_add(u64::from(command.quantity)));
        if !fits {
            return Err(OrderError::TooLarge);
        }
        // Lines are parts of the total, so they fit when the total does.
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
            return Err(OrderError::UnknownSku { sku: command.sku });
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
        match self.status {
            OrderStatus::Paid => Ok(Events::one(OrderShipped)),
            OrderStatus::Shipped => Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
            OrderStatus::New => Err(OrderError::NotPlaced),
            OrderStatus::Placed => Err(OrderError::NotPaid),
        }
    }
}

impl Handle<CancelOrder> for Order {
    fn handle(&self, command: CancelOrder) -> Result<Events<Self>, OrderError> {
        match self.status {
            OrderStatus::Placed | OrderStatus::Paid => Ok(Events::one(OrderCancelled {
                reason: command.reason,
            })),
            OrderStatus::New => Err(OrderError::NotPlaced),
            OrderStatus::Shipped => Err(OrderError::AlreadyShipped),
            OrderStatus::Cancelled => Err(OrderError::Cancelled),
        }
    }
}
