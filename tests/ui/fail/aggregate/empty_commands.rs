use es_core::{Apply, event};

#[event]
pub struct OrderPlaced;

#[event]
pub struct OrderPaid {
    pub cents: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("refused")]
pub struct OrderError;

#[derive(Default, es_core::Aggregate)]
#[aggregate(error = OrderError, events(OrderPlaced, OrderPaid), commands())]
pub struct Order;

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {}
}

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, _: &OrderPaid) {}
}

fn main() {}
