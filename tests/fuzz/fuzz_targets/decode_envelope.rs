//! The event decoder on arbitrary stored rows: a type name, a schema version and payload bytes.
//! Whatever the bytes, decoding returns a value or a typed error; it never panics.
#![no_main]

use es_core::EventSet as _;
use libfuzzer_sys::fuzz_target;
use order_service::domain::OrderEvent;

const TYPES: &[&str] = &[
    "order_placed",
    "item_added",
    "item_removed",
    "order_paid",
    "order_shipped",
    "order_cancelled",
    "unknown",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let event_type = TYPES[usize::from(selector) % TYPES.len()];
    let schema_version = u32::from(selector >> 4);
    // A stored payload is JSON; anything else is refused before decoding.
    if let Ok(payload) = serde_json::from_slice::<Box<serde_json::value::RawValue>>(rest) {
        let _ = OrderEvent::decode(event_type, schema_version, &payload);
    }
    // A whole recorded event, as a store or a client might hand one over.
    let _ = serde_json::from_slice::<es_core::RecordedEvent>(rest);
});
