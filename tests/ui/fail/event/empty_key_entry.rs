use es_core::event;

#[event(version = 2,, name = "order.paid")]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
