use es_core::event;

#[event(version = 99999999999)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
