use es_core::event;

#[event(version = 1.5)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
