use es_core::event;

#[event(name = "order paid")]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
