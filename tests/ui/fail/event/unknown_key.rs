use es_core::event;

#[event(table = "orders")]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
