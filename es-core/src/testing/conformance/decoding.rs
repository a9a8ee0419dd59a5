//! Decoding rows read back from the store, upcasting included.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::codec::{self, DecodeError};
use crate::event::{Event, EventId, NewEvent};
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::store::log::EventFilter;
use crate::stream::ExpectedVersion;
use crate::upcast::{UpcastError, Upcaster};

use super::helpers::{Ids, OrFail as _, append_ok, load_all, new_event, payload, read_log, stream};

/// The suite's evolving event: version 1 stored whole units under `amount`, version 2 cents
/// under `amount_cents`, version 3 adds the currency.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PriceSet {
    sku: String,
    amount_cents: u64,
    currency: String,
}

impl Event for PriceSet {
    const NAME: &'static str = "conformance.price_set";
    const VERSION: u32 = 3;
    const UPCASTERS: &'static [Upcaster] = &[price_set_v1_to_v2, price_set_v2_to_v3];
}

pub(super) fn price_set_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::invalid_field("payload", "not an object"))?;
    let units = object
        .remove("amount")
        .ok_or_else(|| UpcastError::missing_field("amount"))?
        .as_u64()
        .ok_or_else(|| UpcastError::invalid_field("amount", "not an unsigned integer"))?;
    let cents = units
        .checked_mul(100)
        .ok_or_else(|| UpcastError::invalid_field("amount", "too large"))?;
    object.insert("amount_cents".to_owned(), json!(cents));
    Ok(payload)
}

pub(super) fn price_set_v2_to_v3(mut payload: Value) -> Result<Value, UpcastError> {
    let object = payload
        .as_object_mut()
        .ok_or_else(|| UpcastError::invalid_field("payload", "not an object"))?;
    object.insert("currency".to_owned(), json!("EUR"));
    Ok(payload)
}

pub(super) fn price_set_row(id: EventId, schema_version: u32, payload: &Value) -> NewEvent {
    NewEvent {
        schema_version,
        ..new_event(id, PriceSet::NAME, payload)
    }
}

/// Rows stored at schema versions 1 and 2 load with their versions and payloads untouched,
/// and decode through the upcaster chain to the current type.
pub async fn old_schema_versions_upcast_on_load<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("old_schema_versions_upcast_on_load");
    let stream_id = stream("conformance-upcast");
    let rows = [
        (1, json!({ "sku": "A-1", "amount": 12 })),
        (2, json!({ "sku": "B-2", "amount_cents": 345 })),
        (
            3,
            json!({ "sku": "C-3", "amount_cents": 9, "currency": "USD" }),
        ),
    ];
    let events = (0..)
        .zip(&rows)
        .map(|(n, (version, payload))| price_set_row(ids.event(n), *version, payload))
        .collect();
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;

    let expected = [
        PriceSet {
            sku: "A-1".into(),
            amount_cents: 1_200,
            currency: "EUR".into(),
        },
        PriceSet {
            sku: "B-2".into(),
            amount_cents: 345,
            currency: "EUR".into(),
        },
        PriceSet {
            sku: "C-3".into(),
            amount_cents: 9,
            currency: "USD".into(),
        },
    ];
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), rows.len());
    for ((event, (version, stored)), current) in loaded.iter().zip(&rows).zip(&expected) {
        assert_eq!(
            event.schema_version, *version,
            "the store changed a schema version"
        );
        assert_eq!(&payload(event), stored, "the store changed an old payload");
        let decoded = codec::decode::<PriceSet>(event.schema_version, &event.payload)
            .or_fail(format_args!("decoding a version {version} row"));
        assert_eq!(&decoded, current, "upcasting version {version}");
    }
    let filtered = read_log(&store, EventFilter::Types(&[PriceSet::NAME])).await;
    assert_eq!(filtered.len(), rows.len());
}

/// A stored payload of the wrong shape (valid JSON) loads, and decoding it is a typed
/// [`DecodeError::Payload`] (or [`DecodeError::Upcast`] when an upcaster refuses it) naming
/// the event type and schema version.
pub async fn corrupt_payload_fails_to_decode<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("corrupt_payload_fails_to_decode");
    let stream_id = stream("conformance-corrupt");
    let events = vec![
        price_set_row(
            ids.event(1),
            3,
            &json!({ "sku": 5, "amount_cents": "lots", "currency": "EUR" }),
        ),
        price_set_row(ids.event(2), 1, &json!({ "sku": "A-1" })),
        price_set_row(ids.event(3), 2, &json!(["not", "an", "object"])),
    ];
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, events).await;
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(
        loaded.len(),
        3,
        "corrupt payloads must still load as raw rows"
    );

    match codec::decode::<PriceSet>(loaded[0].schema_version, &loaded[0].payload) {
        Err(DecodeError::Payload {
            event_type,
            schema_version,
            ..
        }) => {
            assert_eq!(event_type, PriceSet::NAME);
            assert_eq!(schema_version, 3);
        }
        other => panic!("expected a payload error for a mistyped field, got {other:?}"),
    }
    match codec::decode::<PriceSet>(loaded[1].schema_version, &loaded[1].payload) {
        Err(DecodeError::Upcast {
            event_type,
            from_version: 1,
            source,
        }) => {
            assert_eq!(event_type, PriceSet::NAME);
            assert_eq!(source, UpcastError::missing_field("amount"));
        }
        other => panic!("expected an upcast error for a missing field, got {other:?}"),
    }
    match codec::decode::<PriceSet>(loaded[2].schema_version, &loaded[2].payload) {
        Err(DecodeError::Upcast {
            from_version: 2, ..
        }) => {}
        other => {
            panic!("expected an upcast error for a payload that is not an object, got {other:?}")
        }
    }
}

/// A row stored at a schema version newer than the type knows loads, and decoding it is
/// [`DecodeError::UnsupportedVersion`].
pub async fn future_schema_version_is_unsupported<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("future_schema_version_is_unsupported");
    let stream_id = stream("conformance-future");
    let row = price_set_row(
        ids.event(1),
        4,
        &json!({ "sku": "A-1", "amount_cents": 1, "currency": "EUR", "tax": 0 }),
    );
    append_ok(&store, &stream_id, ExpectedVersion::NoStream, vec![row]).await;
    let loaded = load_all(&store, &stream_id).await;
    assert_eq!(loaded.len(), 1);
    assert_eq!(
        loaded[0].schema_version, 4,
        "the store changed the schema version"
    );
    match codec::decode::<PriceSet>(loaded[0].schema_version, &loaded[0].payload) {
        Err(DecodeError::UnsupportedVersion {
            event_type,
            schema_version,
            current,
        }) => {
            assert_eq!(event_type, PriceSet::NAME);
            assert_eq!(schema_version, 4);
            assert_eq!(current, 3);
        }
        other => panic!("expected an unsupported version error, got {other:?}"),
    }
}
