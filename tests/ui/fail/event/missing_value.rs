use es_core::event;

#[event(name = )]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
