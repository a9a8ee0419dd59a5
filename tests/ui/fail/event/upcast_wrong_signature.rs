use es_core::event;

fn v1_to_v2(cents: u64) -> u64 {
    cents * 100
}

#[event(version = 2, upcast(v1_to_v2))]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
