use es_core::event;

#[event(version)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
