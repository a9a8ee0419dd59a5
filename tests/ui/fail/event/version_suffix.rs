use es_core::event;

#[event(version = 2u8)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
