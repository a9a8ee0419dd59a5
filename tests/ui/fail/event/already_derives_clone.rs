use es_core::event;

#[event]
#[derive(Clone, Default)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
