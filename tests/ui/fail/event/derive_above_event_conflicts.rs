//! A `#[derive]` written above `#[event]` is not part of its input, so the macro cannot see the
//! conflict; the compiler reports it (write `#[event]` first).

#[derive(Clone, Default)]
#[es_core::event]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
