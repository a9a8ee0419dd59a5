use es_core::event;

#[event]
pub union Amount {
    cents: u64,
    units: u32,
}

fn main() {}
