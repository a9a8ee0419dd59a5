//! Encoding events to stored JSON and decoding them back, through the upcaster chain.

use serde_json::value::RawValue;

use crate::event::Event;
use crate::upcast::UpcastError;

/// Serialises `event` to its stored JSON payload.
///
/// # Errors
/// [`EncodeError`] when the event's `Serialize` impl fails (a map with non-string keys, say).
pub fn encode<E: Event>(event: &E) -> Result<Box<RawValue>, EncodeError> {
    serde_json::value::to_raw_value(event).map_err(|source| EncodeError {
        event_type: E::NAME,
        source,
    })
}

/// Decodes a payload stored as `E` at `schema_version`, running upcasters for older versions.
///
/// # Errors
/// [`DecodeError`] for a version newer than `E::VERSION`, an old version without upcasters, a
/// failing upcaster, or a payload that does not match `E`.
pub fn decode<E: Event>(schema_version: u32, payload: &RawValue) -> Result<E, DecodeError> {
    if schema_version == E::VERSION {
        return serde_json::from_str(payload.get())
            .map_err(|source| DecodeError::payload(E::NAME, schema_version, source));
    }
    if schema_version > E::VERSION || schema_version == 0 {
        return Err(DecodeError::UnsupportedVersion {
            event_type: E::NAME.to_owned(),
            schema_version,
            current: E::VERSION,
        });
    }
    // `#[event]` guarantees the chain is empty or complete; a hand-written impl may not.
    let chain_is_complete = usize::try_from(E::VERSION - 1).is_ok_and(|n| E::UPCASTERS.len() == n);
    if !chain_is_complete {
        return Err(DecodeError::MissingUpcaster {
            event_type: E::NAME.to_owned(),
            schema_version,
            current: E::VERSION,
        });
    }
    let mut value: serde_json::Value = serde_json::from_str(payload.get())
        .map_err(|source| DecodeError::payload(E::NAME, schema_version, source))?;
    let pending = E::UPCASTERS.iter().skip((schema_version - 1) as usize);
    for (from_version, upcaster) in (schema_version..).zip(pending) {
        value = upcaster(value).map_err(|source| DecodeError::Upcast {
            event_type: E::NAME.to_owned(),
            from_version,
            source,
        })?;
    }
    serde_json::from_value(value)
        .map_err(|source| DecodeError::payload(E::NAME, schema_version, source))
}

/// An event that could not be serialised.
#[derive(Debug, thiserror::Error)]
#[error("cannot serialise event `{event_type}`")]
pub struct EncodeError {
    /// The event's stable name.
    pub event_type: &'static str,
    /// What serde said.
    #[source]
    pub source: serde_json::Error,
}

/// A stored payload that could not become a current event value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No event with this name is known to the type decoding it.
    #[error("unknown event type `{event_type}` (schema version {schema_version}); known types: {}", known.join(", "))]
    UnknownType {
        /// The stored name.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
        /// The names that decode here.
        known: &'static [&'static str],
    },
    /// The stored version is newer than this build knows (or 0, which no build writes).
    #[error(
        "event `{event_type}` has schema version {schema_version}, but this build knows versions 1 to {current}"
    )]
    UnsupportedVersion {
        /// The stored name.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
        /// The version this build writes.
        current: u32,
    },
    /// An older version was stored and the event declares no upcasters.
    #[error(
        "event `{event_type}` has schema version {schema_version} but declares no upcasters to version {current}"
    )]
    MissingUpcaster {
        /// The stored name.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
        /// The version this build writes.
        current: u32,
    },
    /// An upcaster refused the payload.
    #[error("upcasting event `{event_type}` from schema version {from_version} failed")]
    Upcast {
        /// The stored name.
        event_type: String,
        /// The version the failing upcaster starts from.
        from_version: u32,
        /// Why it failed.
        #[source]
        source: UpcastError,
    },
    /// The payload does not match the event's shape (corrupt JSON, missing or mistyped field).
    #[error("payload of event `{event_type}` (schema version {schema_version}) does not decode")]
    Payload {
        /// The stored name.
        event_type: String,
        /// The stored schema version.
        schema_version: u32,
        /// What serde said, with the field and position.
        #[source]
        source: serde_json::Error,
    },
}

impl DecodeError {
    fn payload(event_type: &str, schema_version: u32, source: serde_json::Error) -> Self {
        Self::Payload {
            event_type: event_type.to_owned(),
            schema_version,
            source,
        }
    }

    /// An unknown event name; for generated `EventSet::decode` impls.
    #[must_use]
    pub fn unknown_type(
        event_type: &str,
        schema_version: u32,
        known: &'static [&'static str],
    ) -> Self {
        Self::UnknownType {
            event_type: event_type.to_owned(),
            schema_version,
            known,
        }
    }

    /// The stored event type this error is about.
    #[must_use]
    pub fn event_type(&self) -> &str {
        match self {
            Self::UnknownType { event_type, .. }
            | Self::UnsupportedVersion { event_type, .. }
            | Self::MissingUpcaster { event_type, .. }
            | Self::Upcast { event_type, .. }
            | Self::Payload { event_type, .. } => event_type,
        }
    }
}
