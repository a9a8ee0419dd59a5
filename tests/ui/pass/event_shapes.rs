//! `#[event]` on every struct shape, next to the user's own attributes and derives.

use es_core::{Event, event};

/// A named-field event with serde attributes of its own.
#[event]
#[derive(Default, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct CustomerRenamed {
    pub customer_id: u64,
    #[serde(default)]
    pub new_name: String,
}

#[event]
pub struct HTTPRequestSent(pub String);

#[event]
pub struct Tick;

#[event(name = "v2.ledger-entry/posted", version = 1)]
pub(crate) struct LedgerEntryPosted {
    pub cents: i64,
}

mod nested {
    #[es_core::event]
    pub struct Moved {
        pub to: super::Tick,
    }
}

fn main() {
    assert_eq!(CustomerRenamed::NAME, "customer_renamed");
    assert_eq!(HTTPRequestSent::NAME, "http_request_sent");
    assert_eq!(Tick::NAME, "tick");
    assert_eq!(LedgerEntryPosted::NAME, "v2.ledger-entry/posted");
    assert_eq!(nested::Moved::NAME, "moved");
    assert_eq!(Tick::VERSION, 1);

    let renamed = CustomerRenamed { customer_id: 7, new_name: "Ada".to_owned() };
    let json = serde_json::to_string(&renamed).expect("serialises");
    assert_eq!(json, r#"{"customerId":7,"newName":"Ada"}"#);
    assert_eq!(serde_json::from_str::<CustomerRenamed>(&json).expect("deserialises"), renamed);
    assert_eq!(renamed.clone(), renamed);
    assert_eq!(format!("{:?}", Tick), "Tick");
    let _ = LedgerEntryPosted { cents: -1 }.cents;
    let _ = nested::Moved { to: Tick }.to;
    let _ = HTTPRequestSent("x".to_owned()).0;
}
