use es_core::event;

#[event(nmae = "order.paid", version = 0, upcast(v1_to_v2))]
#[derive(Debug)]
pub struct OrderPaid<T> {
    pub cents: T,
}

fn main() {}
