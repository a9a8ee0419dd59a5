use es_core::event;

fn v1_to_v2(payload: serde_json::Value) -> Result<serde_json::Value, es_core::upcast::UpcastError> {
    Ok(payload)
}

#[event(version = 2, upcast = v1_to_v2)]
pub struct OrderPaid {
    pub cents: u64,
}

fn main() {}
