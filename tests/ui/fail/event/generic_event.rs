use es_core::event;

#[event]
pub struct Changed<T> {
    pub value: T,
}

fn main() {}
