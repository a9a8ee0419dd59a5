//! Encoding events to stored JSON and decoding them back, through the upcaster chain.
//!
//! # Nothing is stored that cannot be read back
//!
//! [`encode`] refuses an event whose JSON would not decode back into its type, before anything
//! is stored: a stream holding such a payload could never be loaded again, and every later
//! command on its aggregate would fail. The check has two parts.
//!
//! - **Always: a structural check while serialising.** serde_json writes a NaN or an infinite
//!   `f32`/`f64` as `null`, which never decodes back into the float (and silently becomes
//!   `None` in an `Option<f64>`). That is the one way a value, rather than the type, makes a
//!   payload unreadable, so it is the one a test suite cannot be relied on to find. `encode`
//!   serialises through a wrapper that fails on such a float and names the field
//!   ([`EncodeError::NotRepresentable`]). It costs a branch per float: no second pass over
//!   the payload, no allocation. (Map keys that are not strings already fail in serde_json.)
//! - **In debug builds: a full round trip.** With `debug_assertions` on, as in `cargo test`
//!   and `cargo run`, `encode` also decodes every payload it wrote into the event type
//!   ([`EncodeError::RoundTrip`]). That finds a `Serialize` and a `Deserialize` that disagree
//!   (a `#[serde(skip_serializing)]` field without a default, a hand-written impl): the type
//!   decides those, not the value, so the first test or development run that writes the event
//!   finds them. Release builds skip it: decoding every payload again is a measurable share of a
//!   batch append (the es-bench README has the figures), spent on a class of mistake that
//!   cannot depend on data.
//!
//! Why not the full round trip everywhere: its only gain in release builds would be the
//! type-level mistakes above, which the debug check already surfaces on first use, while the
//! structural check keeps the data-dependent one out at no measurable cost (see the es-bench
//! README for `orders-v1` before and after).

use serde_json::value::RawValue;

use crate::event::Event;
use crate::upcast::UpcastError;

mod representable;

pub(crate) use representable::{Checked, Trail};

/// Serialises `event` to its stored JSON payload, refusing a payload that would not decode back
/// into `E` (see the [module docs](self)).
///
/// # Errors
/// [`EncodeError::NotRepresentable`] for a NaN or infinite float,
/// [`EncodeError::Serialize`] when the event's `Serialize` impl fails (a map with non-string
/// keys, say), and in debug builds [`EncodeError::RoundTrip`] when the payload does not decode.
pub fn encode<E: Event>(event: &E) -> Result<Box<RawValue>, EncodeError> {
    let payload = to_checked_json(event).map_err(|failure| failure.into_error(E::NAME))?;
    #[cfg(debug_assertions)]
    if let Err(source) = serde_json::from_str::<E>(payload.get()) {
        return Err(EncodeError::RoundTrip {
            event_type: E::NAME,
            source,
        });
    }
    Ok(payload)
}

/// Why a value could not become JSON that reads back.
pub(crate) enum JsonFailure {
    /// A value JSON cannot hold, and where.
    NotRepresentable(representable::Unrepresentable),
    /// What serde_json said.
    Serialize(serde_json::Error),
}

impl JsonFailure {
    fn into_error(self, event_type: &'static str) -> EncodeError {
        match self {
            Self::NotRepresentable(found) => EncodeError::NotRepresentable {
                event_type,
                field: found.field,
                value: found.value,
            },
            Self::Serialize(source) => EncodeError::Serialize { event_type, source },
        }
    }

    /// As a serde_json error, for codecs whose error type is serde_json's.
    pub(crate) fn into_serde(self) -> serde_json::Error {
        match self {
            Self::NotRepresentable(found) => serde::ser::Error::custom(format_args!(
                "{found} cannot be written as JSON (it would be stored as null and never decode back)"
            )),
            Self::Serialize(error) => error,
        }
    }
}

/// `value` as JSON, through the structural check (see the [module docs](self)).
pub(crate) fn to_checked_json<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<Box<RawValue>, JsonFailure> {
    let trail = Trail::default();
    let checked = Checked {
        value,
        trail: &trail,
    };
    serde_json::value::to_raw_value(&checked).map_err(|error| match trail.take() {
        Some(found) => JsonFailure::NotRepresentable(found),
        None => JsonFailure::Serialize(error),
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

/// An event that could not become a payload that reads back; nothing was stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A value JSON cannot hold: a NaN or infinite float, which serde_json would write as
    /// `null`, so the payload would never decode back into the event.
    #[error(
        "event `{event_type}` cannot be stored: {value} at {} is not a number JSON can hold (it would be written as null and the stream would never load again)",
        field_or_event(field)
    )]
    NotRepresentable {
        /// The event's stable name.
        event_type: &'static str,
        /// Where the value sits: `amount`, `lines[2].price`, `rates[..]` (a map entry); empty
        /// when the event itself is the value.
        field: String,
        /// How Rust prints it: `NaN`, `inf`, `-inf`.
        value: String,
    },
    /// The event's `Serialize` impl failed (a map with keys that are not strings, say).
    #[error("cannot serialise event `{event_type}`")]
    Serialize {
        /// The event's stable name.
        event_type: &'static str,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
    /// Debug builds only: the payload does not decode back into the event type, so its
    /// `Serialize` and `Deserialize` disagree (a `#[serde(skip_serializing)]` field without a
    /// default, a hand-written impl).
    #[error(
        "event `{event_type}` does not decode from the JSON it serialises to: its `Serialize` and `Deserialize` disagree"
    )]
    RoundTrip {
        /// The event's stable name.
        event_type: &'static str,
        /// What serde said when decoding, with the field.
        #[source]
        source: serde_json::Error,
    },
}

impl EncodeError {
    /// The stable name of the event that could not be encoded.
    #[must_use]
    pub const fn event_type(&self) -> &'static str {
        match self {
            Self::NotRepresentable { event_type, .. }
            | Self::Serialize { event_type, .. }
            | Self::RoundTrip { event_type, .. } => event_type,
        }
    }
}

fn field_or_event(field: &str) -> String {
    if field.is_empty() {
        "the event itself".to_owned()
    } else {
        format!("field `{field}`")
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Measured {
        label: String,
        readings: Vec<f64>,
        average: Option<f64>,
    }

    impl Event for Measured {
        const NAME: &'static str = "measured";
        const VERSION: u32 = 1;
    }

    fn measured(readings: Vec<f64>, average: Option<f64>) -> Measured {
        Measured {
            label: "probe".into(),
            readings,
            average,
        }
    }

    #[test]
    fn finite_events_encode_as_serde_json_writes_them() {
        let event = measured(vec![1.5, -0.0, 1e300], Some(2.0));
        let payload = encode(&event).unwrap();
        assert_eq!(payload.get(), serde_json::to_string(&event).unwrap());
        assert_eq!(decode::<Measured>(1, &payload).unwrap(), event);
    }

    #[test]
    fn a_nan_is_refused_with_the_event_type_and_field() {
        let error = encode(&measured(vec![1.0, f64::NAN], None)).unwrap_err();
        let EncodeError::NotRepresentable {
            event_type,
            field,
            value,
        } = &error
        else {
            panic!("expected NotRepresentable, got {error:?}");
        };
        assert_eq!(
            (*event_type, field.as_str(), value.as_str()),
            ("measured", "readings[1]", "NaN")
        );
        assert_eq!(
            error.to_string(),
            "event `measured` cannot be stored: NaN at field `readings[1]` is not a number JSON \
             can hold (it would be written as null and the stream would never load again)"
        );
    }

    #[test]
    fn an_infinity_in_an_option_is_refused_too() {
        // serde_json would write `null`, which decodes as `None`: readable, but not the event.
        let error = encode(&measured(Vec::new(), Some(f64::INFINITY))).unwrap_err();
        assert!(
            matches!(&error, EncodeError::NotRepresentable { field, value, .. } if field == "average" && value == "inf"),
            "{error:?}"
        );
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Lopsided {
        kept: u32,
        #[serde(skip_serializing)]
        dropped: u32,
    }

    impl Event for Lopsided {
        const NAME: &'static str = "lopsided";
        const VERSION: u32 = 1;
    }

    #[test]
    #[cfg(debug_assertions)]
    fn debug_builds_refuse_a_payload_that_does_not_decode() {
        let error = encode(&Lopsided {
            kept: 1,
            dropped: 2,
        })
        .unwrap_err();
        assert!(
            matches!(
                error,
                EncodeError::RoundTrip {
                    event_type: "lopsided",
                    ..
                }
            ),
            "{error:?}"
        );
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains("missing field `dropped`"), "{source}");
    }
}
