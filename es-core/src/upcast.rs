//! Upcasting: turning a payload stored under an old schema version into the current one.
//!
//! Upcasters work on raw JSON so that old Rust types need not be kept around. An event at
//! version 3 declares two, `1 -> 2` and `2 -> 3`; loading a version-1 row runs both, then
//! decodes the current type:
//!
//! ```
//! use es_core::upcast::UpcastError;
//! use serde_json::{json, Value};
//!
//! // v1 stored `amount` in whole units; v2 stores cents under a new name.
//! fn amount_to_cents(mut payload: Value) -> Result<Value, UpcastError> {
//!     let units = payload
//!         .get("amount")
//!         .and_then(Value::as_u64)
//!         .ok_or(UpcastError::missing_field("amount"))?;
//!     payload["amount_cents"] = json!(units * 100);
//!     Ok(payload)
//! }
//! # assert_eq!(amount_to_cents(json!({"amount": 2})).unwrap()["amount_cents"], 200);
//! ```

use std::borrow::Cow;

use serde_json::Value;

/// One step of an upcaster chain: a payload of version `n` in, version `n + 1` out.
pub type Upcaster = fn(Value) -> Result<Value, UpcastError>;

/// Why an upcaster could not convert a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UpcastError {
    /// A field the upcaster needs is absent.
    #[error("field `{field}` is missing")]
    MissingField {
        /// The field's name.
        field: Cow<'static, str>,
    },
    /// A field holds a value the upcaster cannot convert.
    #[error("field `{field}` is invalid: {reason}")]
    InvalidField {
        /// The field's name.
        field: Cow<'static, str>,
        /// What is wrong with it.
        reason: Cow<'static, str>,
    },
}

impl UpcastError {
    /// A required field is absent.
    #[must_use]
    pub fn missing_field(field: impl Into<Cow<'static, str>>) -> Self {
        Self::MissingField {
            field: field.into(),
        }
    }

    /// A field holds a value that cannot be converted.
    #[must_use]
    pub fn invalid_field(
        field: impl Into<Cow<'static, str>>,
        reason: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }
}
