use es_core::event;

#[event]
pub fn order_paid() {}

fn main() {}
