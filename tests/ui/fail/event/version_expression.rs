use es_core::event;

const V: u32 = 2;

#[event(version = V)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
