use es_core::event;

#[event(crate = "es_core")]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
