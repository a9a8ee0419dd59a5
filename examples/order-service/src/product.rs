//! The `Product` aggregate: the catalogue, one stream per SKU, with the units in stock.
//!
//! Stock never goes below zero: a reservation larger than the stock is refused, so two clerks
//! reserving the last unit at once get one success and one refusal (the command path re-decides
//! the loser on the new version).

use es_core::{Aggregate, Apply, Events, Handle, event};
use serde::{Deserialize, Serialize};

use crate::domain::MAX_AMOUNT;

/// A product was added to the catalogue.
#[event]
pub struct ProductListed {
    /// The display name.
    pub name: String,
    /// The price of one unit, in cents.
    pub unit_price_cents: u64,
    /// Units in stock at listing.
    pub stock: u64,
}

/// Units arrived.
#[event]
pub struct StockAdded {
    /// How many units.
    pub quantity: u64,
}

/// Units were set aside for an order.
#[event]
pub struct StockReserved {
    /// How many units.
    pub quantity: u64,
}

/// The price changed.
#[event]
pub struct PriceChanged {
    /// The new price of one unit, in cents.
    pub unit_price_cents: u64,
}

/// List a new product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListProduct {
    /// The display name.
    pub name: String,
    /// The price of one unit, in cents.
    pub unit_price_cents: u64,
    /// Units in stock.
    pub stock: u64,
}

/// Add units to the stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Restock {
    /// How many units (at least 1).
    pub quantity: u64,
}

/// Take units out of the stock for an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveStock {
    /// How many units (at least 1, at most the stock).
    pub quantity: u64,
}

/// Change the unit price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePrice {
    /// The new price of one unit, in cents.
    pub unit_price_cents: u64,
}

/// Why a product refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProductError {
    /// `ListProduct` for a SKU already listed.
    #[error("the product is already listed")]
    AlreadyListed,
    /// A command for a SKU never listed.
    #[error("the product is not listed")]
    NotListed,
    /// A quantity of zero.
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    /// More units reserved than in stock.
    #[error("only {in_stock} units in stock, {requested} requested")]
    InsufficientStock {
        /// Units in stock.
        in_stock: u64,
        /// Units asked for.
        requested: u64,
    },
    /// Stock or price beyond what the catalogue holds.
    #[error("stock and prices are at most {MAX_AMOUNT}")]
    TooLarge,
}

impl ProductError {
    /// Every [`code`](Self::code) a refusal can have.
    pub const CODES: &'static [&'static str] = &[
        "already_listed",
        "not_listed",
        "zero_quantity",
        "insufficient_stock",
        "too_large",
    ];

    /// A stable, machine-readable name for the refusal (the HTTP error `code`).
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::AlreadyListed => "already_listed",
            Self::NotListed => "not_listed",
            Self::ZeroQuantity => "zero_quantity",
            Self::InsufficientStock { .. } => "insufficient_stock",
            Self::TooLarge => "too_large",
        }
    }
}

/// A product in the catalogue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "product",
    error = ProductError,
    events(ProductListed, StockAdded, StockReserved, PriceChanged),
    commands(ListProduct, Restock, ReserveStock, ChangePrice)
)]
pub struct Product {
    /// Whether it was listed.
    pub listed: bool,
    /// The display name.
    pub name: String,
    /// The price of one unit, in cents.
    pub unit_price_cents: u64,
    /// Units in stock.
    pub stock: u64,
}

impl Product {
    const fn ensure_listed(&self) -> Result<(), ProductError> {
        if self.listed {
            Ok(())
        } else {
            Err(ProductError::NotListed)
        }
    }
}

impl Apply<ProductListed> for Product {
    fn apply(&mut self, event: &ProductListed) {
        self.listed = true;
        self.name.clone_from(&event.name);
        self.unit_price_cents = event.unit_price_cents;
        self.stock = event.stock;
    }
}

impl Apply<StockAdded> for Product {
    fn apply(&mut self, event: &StockAdded) {
        self.stock = self.stock.saturating_add(event.quantity);
    }
}

impl Apply<StockReserved> for Product {
    fn apply(&mut self, event: &StockReserved) {
        self.stock = self.stock.saturating_sub(event.quantity);
    }
}

impl Apply<PriceChanged> for Product {
    fn apply(&mut self, event: &PriceChanged) {
        self.unit_price_cents = event.unit_price_cents;
    }
}

impl Handle<ListProduct> for Product {
    fn handle(&self, command: ListProduct) -> Result<Events<Self>, ProductError> {
        if self.listed {
            return Err(ProductError::AlreadyListed);
        }
        if command.unit_price_cents > MAX_AMOUNT || command.stock > MAX_AMOUNT {
            return Err(ProductError::TooLarge);
        }
        Ok(Events::one(ProductListed {
            name: command.name,
            unit_price_cents: command.unit_price_cents,
            stock: command.stock,
        }))
    }
}

impl Handle<Restock> for Product {
    fn handle(&self, command: Restock) -> Result<Events<Self>, ProductError> {
        self.ensure_listed()?;
        if command.quantity == 0 {
            return Err(ProductError::ZeroQuantity);
        }
        if self
            .stock
            .checked_add(command.quantity)
            .is_none_or(|stock| stock > MAX_AMOUNT)
        {
            return Err(ProductError::TooLarge);
        }
        Ok(Events::one(StockAdded {
            quantity: command.quantity,
        }))
    }
}

impl Handle<ReserveStock> for Product {
    fn handle(&self, command: ReserveStock) -> Result<Events<Self>, ProductError> {
        self.ensure_listed()?;
        if command.quantity == 0 {
            return Err(ProductError::ZeroQuantity);
        }
        if command.quantity > self.stock {
            return Err(ProductError::InsufficientStock {
                in_stock: self.stock,
                requested: command.quantity,
            });
        }
        Ok(Events::one(StockReserved {
            quantity: command.quantity,
        }))
    }
}

impl Handle<ChangePrice> for Product {
    fn handle(&self, command: ChangePrice) -> Result<Events<Self>, ProductError> {
        self.ensure_listed()?;
        if command.unit_price_cents > MAX_AMOUNT {
            return Err(ProductError::TooLarge);
        }
        Ok(Events::one(PriceChanged {
            unit_price_cents: command.unit_price_cents,
        }))
    }
}
