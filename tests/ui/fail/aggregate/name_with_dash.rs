use es_core::{Apply, Events, Handle, event};

#[event]
pub struct OrderPlaced;

#[event]
pub struct OrderPaid {
    pub cents: u64,
}

pub struct PlaceOrder;

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct OrderError;

#[derive(Default, es_core::Aggregate)]
#[aggregate(name = "order-line", error = OrderError, events(OrderPlaced, OrderPaid), commands(PlaceOrder))]
pub struct Order;

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {}
}

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, _: &OrderPaid) {}
}

impl Handle<PlaceOrder> for Order {
    fn handle(&self, _: PlaceOrder) -> Result<Events<Self>, OrderError> {
        Ok(Events::one(OrderPlaced))
    }
}

fn main() {}
