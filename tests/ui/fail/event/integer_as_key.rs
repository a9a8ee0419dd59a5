use es_core::event;

#[event(2)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
