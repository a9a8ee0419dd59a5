use es_core::event;

#[event]
#[derive(serde::Serialize, serde::Deserialize)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
