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

#[derive(es_core::Aggregate)]
#[aggregate(error = OrderError, events(OrderPlaced, OrderPaid), commands(PlaceOrder))]
pub union Order {
    total: u64,
    count: u32,
}

impl Default for Order {
    fn default() -> Self {
        Self { total: 0 }
    }
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {}
}

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, _: &OrderPaid) {}
}

impl Handle<PlaceOrder> for Order {
    fn handle(&self, _: PlaceOrder) -> Result<Events<Self>, OrderError> {
        Ok(Events::none())
    }
}

fn main() {}
