//! The `Shipment` aggregate and the `shipping` process manager: when an order is paid, a
//! shipment is created for it, exactly once (a replay of the process manager does not create a
//! second one; the aggregate would refuse it anyway).

use es_core::process::Commands;
use es_core::{
    Aggregate, Apply, EventEnvelope, EventStore, Events, Handle, HandlerError, Project, event,
};
use serde::{Deserialize, Serialize};

use crate::domain::OrderPaid;
use crate::read_model::order_id_of;

/// A shipment was created for a paid order.
#[event]
pub struct ShipmentCreated {
    /// The order it ships.
    pub order_id: String,
    /// The amount paid, in cents.
    pub amount_cents: u64,
}

/// Create the shipment of a paid order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateShipment {
    /// The order it ships.
    pub order_id: String,
    /// The amount paid, in cents.
    pub amount_cents: u64,
}

/// Why a shipment refused a command.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShipmentError {
    /// A second shipment for the same order.
    #[error("the order already has a shipment")]
    AlreadyCreated,
}

/// The shipment of one order (stream `shipment-{order id}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "shipment",
    error = ShipmentError,
    events(ShipmentCreated),
    commands(CreateShipment)
)]
pub struct Shipment {
    /// The order it ships (empty while none exists).
    pub order_id: String,
    /// The amount paid, in cents.
    pub amount_cents: u64,
}

impl Apply<ShipmentCreated> for Shipment {
    fn apply(&mut self, event: &ShipmentCreated) {
        self.order_id.clone_from(&event.order_id);
        self.amount_cents = event.amount_cents;
    }
}

impl Handle<CreateShipment> for Shipment {
    fn handle(&self, command: CreateShipment) -> Result<Events<Self>, ShipmentError> {
        if !self.order_id.is_empty() {
            return Err(ShipmentError::AlreadyCreated);
        }
        Ok(Events::one(ShipmentCreated {
            order_id: command.order_id,
            amount_cents: command.amount_cents,
        }))
    }
}

/// The process manager: `OrderPaid` → `CreateShipment`.
#[derive(Clone, Copy, Debug, Default, es_core::Projection)]
#[projection(name = "shipping", events(OrderPaid))]
pub struct Shipping;

impl<S: EventStore> Project<OrderPaid, Commands<S>> for Shipping {
    async fn project(
        &mut self,
        paid: EventEnvelope<OrderPaid>,
        commands: &mut Commands<S>,
    ) -> Result<(), HandlerError> {
        let order_id = order_id_of(&paid.stream_id).to_owned();
        let command = CreateShipment {
            order_id: order_id.clone(),
            amount_cents: paid.event.amount_cents,
        };
        commands.execute::<Shipment>(&order_id, command).await?;
        Ok(())
    }
}
