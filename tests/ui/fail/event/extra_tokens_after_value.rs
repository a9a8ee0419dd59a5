use es_core::event;

#[event(version = 2 3)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
