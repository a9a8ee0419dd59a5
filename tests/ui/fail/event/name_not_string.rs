use es_core::event;

#[event(name = order_paid)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
