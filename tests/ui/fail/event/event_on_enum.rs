use es_core::event;

#[event]
pub enum OrderEvent {
    Placed,
    Paid { cents: u64 },
}

fn main() {}
