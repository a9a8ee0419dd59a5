//! Stream identity and the numbers that order events: per-stream versions and global positions.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// The longest stream id accepted, in bytes.
///
/// Ids are keys in every back end's indexes; a bound keeps a hostile or buggy caller from
/// writing megabyte-long keys.
pub const MAX_STREAM_ID_LEN: usize = 512;

/// The name of one event stream: `"{aggregate name}-{aggregate id}"` for aggregates.
///
/// Validated on construction: not empty, at most [`MAX_STREAM_ID_LEN`] bytes, no control
/// characters (NUL included). Cheap to clone.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StreamId(Arc<str>);

impl Serialize for StreamId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl StreamId {
    /// Checks `id` and wraps it.
    ///
    /// # Errors
    /// [`InvalidStreamId`] when the id is empty, too long or holds a control character.
    pub fn new(id: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let id = id.into();
        check(&id)?;
        Ok(Self(id.into()))
    }

    /// The stream id of aggregate `id` in category `aggregate` (the aggregate's name).
    ///
    /// # Errors
    /// [`InvalidStreamId`] for an empty `id`, and as for [`StreamId::new`].
    pub fn for_aggregate(aggregate: &str, id: impl fmt::Display) -> Result<Self, InvalidStreamId> {
        let id = format!("{aggregate}-{id}");
        if id.len() == aggregate.len() + 1 {
            return Err(InvalidStreamId::Empty);
        }
        Self::new(id)
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The aggregate type and id this stream was named from (`"account-alice"` is
    /// `("account", "alice")`): split at the first `-`, which no aggregate name contains. `None`
    /// for a stream id without a `-` or with nothing on either side of it.
    #[must_use]
    pub fn aggregate_parts(&self) -> Option<(&str, &str)> {
        self.0
            .split_once('-')
            .filter(|(name, id)| !name.is_empty() && !id.is_empty())
    }
}

/// Why `name` cannot be an aggregate's name, if it cannot: stream ids are `{name}-{id}` and
/// are split back at the first `-`.
#[must_use]
pub(crate) fn aggregate_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.contains('-') {
        Some("contains `-`")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace or a control character")
    } else {
        None
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::new(raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Checks a stream id as [`StreamId::new`] documents.
fn check(id: &str) -> Result<(), InvalidStreamId> {
    if id.is_empty() {
        return Err(InvalidStreamId::Empty);
    }
    if id.len() > MAX_STREAM_ID_LEN {
        return Err(InvalidStreamId::TooLong {
            len: id.len(),
            max: MAX_STREAM_ID_LEN,
        });
    }
    // Stores check every id they read back, so the common case is a byte scan: printable ASCII
    // holds no control character. Other text is checked by character (C1 controls are
    // multi-byte).
    let printable_ascii = id.bytes().all(|byte| (0x20..0x7f).contains(&byte));
    if !printable_ascii && let Some((index, _)) = id.char_indices().find(|(_, c)| c.is_control()) {
        return Err(InvalidStreamId::ControlCharacter { index });
    }
    Ok(())
}

/// Checks `value` and copies it once, into the id's shared buffer (no intermediate `String`).
impl TryFrom<&str> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(value: &str) -> Result<Self, Self::Error> {
        check(value)?;
        Ok(Self(value.into()))
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

/// How many events a stream holds; the version of its last event.
///
/// Versions start at 1 and have no holes; [`StreamVersion::INITIAL`] (0) is a stream with no
/// events. Back ends that store signed 64-bit integers reject versions above `i64::MAX`.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct StreamVersion(pub u64);

impl StreamVersion {
    /// The version of a stream with no events.
    pub const INITIAL: Self = Self(0);

    /// The version after this one.
    #[must_use]
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }

    /// The version `count` events later.
    #[must_use]
    pub const fn advanced_by(self, count: u64) -> Self {
        Self(self.0 + count)
    }

    /// The number as `u64`.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for StreamVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An event's place in the global log: unique, increasing in the order positions were taken.
///
/// Positions may have holes (a rolled-back append consumes numbers) and, on stores with
/// concurrent writers, may become visible out of order; readers therefore follow a
/// [`LogPosition`], never the bare number.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GlobalPosition(pub u64);

impl GlobalPosition {
    /// The position before the first event.
    pub const START: Self = Self(0);

    /// The number as `u64`.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for GlobalPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Where a reader of the global log stands: the pair (commit order, position).
///
/// Readers of the global log see events ordered by this pair, and a store guarantees that an event
/// which becomes visible later sorts after every event already visible. That is what lets a
/// projection keep one checkpoint and never skip an event:
/// - stores that serialise their writers (in memory, SQLite) set `transaction` to the position,
///   so the order is plain position order;
/// - PostgreSQL sets `transaction` to the writing transaction's id (`xid8`) and only shows rows
///   whose transaction is older than every transaction still running.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
)]
pub struct LogPosition {
    /// The store's commit-order key for the event's transaction.
    pub transaction: u64,
    /// The event's global position.
    pub position: GlobalPosition,
}

impl LogPosition {
    /// Before the first event of the log.
    pub const START: Self = Self {
        transaction: 0,
        position: GlobalPosition::START,
    };

    /// A log position made of its two parts.
    #[must_use]
    pub const fn new(transaction: u64, position: GlobalPosition) -> Self {
        Self {
            transaction,
            position,
        }
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.position, self.transaction)
    }
}

/// What an append expects the stream's version to be: the optimistic concurrency check.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ExpectedVersion {
    /// No check: append after whatever is there.
    Any,
    /// The stream must have no events.
    NoStream,
    /// The stream must have at least one event.
    StreamExists,
    /// The stream's version must be exactly this.
    Exact(StreamVersion),
}

impl ExpectedVersion {
    /// Whether a stream at `actual` satisfies this expectation.
    #[must_use]
    pub const fn is_satisfied_by(self, actual: StreamVersion) -> bool {
        match self {
            Self::Any => true,
            Self::NoStream => actual.0 == 0,
            Self::StreamExists => actual.0 > 0,
            Self::Exact(expected) => expected.0 == actual.0,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream => f.write_str("no stream"),
            Self::StreamExists => f.write_str("an existing stream"),
            Self::Exact(version) => write!(f, "version {version}"),
        }
    }
}

/// A stream id that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidStreamId {
    /// The id is empty.
    #[error("stream id is empty")]
    Empty,
    /// The id is longer than the stores accept.
    #[error("stream id is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The id holds a control character (NUL, newline, ...).
    #[error("stream id holds a control character at byte {index}")]
    ControlCharacter {
        /// Byte offset of the first one.
        index: usize,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id with dashes of its own (a UUID) comes back whole: no aggregate name has a `-`.
    #[test]
    fn a_stream_id_splits_back_into_the_aggregate_and_the_id_it_was_named_from()
    -> Result<(), InvalidStreamId> {
        let id = "0190e4a1-7c2b-7d00-8000-000000000001";
        let stream = StreamId::for_aggregate("order", id)?;
        assert_eq!(stream.aggregate_parts(), Some(("order", id)));
        for raw in ["audit", "-x", "x-", "-"] {
            let stream = StreamId::new(raw)?;
            assert_eq!(stream.aggregate_parts(), None, "{raw:?}");
        }
        assert_eq!(aggregate_name_problem("order"), None);
        assert_eq!(aggregate_name_problem("order-line"), Some("contains `-`"));
        assert_eq!(aggregate_name_problem(""), Some("is empty"));
        assert!(aggregate_name_problem("order line").is_some());
        Ok(())
    }

    #[test]
    fn stream_id_rejects_empty_long_and_control_characters() {
        assert_eq!(StreamId::new(""), Err(InvalidStreamId::Empty));
        assert!(matches!(
            StreamId::new("x".repeat(MAX_STREAM_ID_LEN + 1)),
            Err(InvalidStreamId::TooLong { .. })
        ));
        assert_eq!(
            StreamId::new("ab\0c"),
            Err(InvalidStreamId::ControlCharacter { index: 2 })
        );
        assert!(StreamId::new("order-'; DROP TABLE events; --").is_ok());
    }

    /// The byte scan only skips the per-character check for printable ASCII: every control
    /// character is still found, in either constructor, at its byte index.
    #[test]
    fn both_constructors_find_every_kind_of_control_character() {
        for (id, index) in [
            ("a\tb", 1),
            ("ab\u{7f}", 2),
            ("\u{1f}x", 0),
            ("é-\u{85}", 3),
            ("order-\u{9f}", 6),
        ] {
            let expected = Err(InvalidStreamId::ControlCharacter { index });
            assert_eq!(StreamId::new(id), expected, "{id:?}");
            assert_eq!(StreamId::try_from(id), expected, "{id:?}");
        }
        for id in ["order-1", "café-ü-\u{a0}", "~ !"] {
            assert_eq!(StreamId::try_from(id), StreamId::new(id), "{id:?}");
            assert_eq!(
                StreamId::try_from(id).map(|s| s.as_str().to_owned()),
                Ok(id.to_owned())
            );
        }
        assert_eq!(StreamId::try_from(""), Err(InvalidStreamId::Empty));
    }

    #[test]
    fn log_positions_order_by_transaction_then_position() {
        let a = LogPosition::new(5, GlobalPosition(9));
        let b = LogPosition::new(6, GlobalPosition(2));
        assert!(a < b);
        assert!(LogPosition::START < a);
    }

    #[test]
    fn expected_version_checks() {
        let v = StreamVersion(3);
        assert!(ExpectedVersion::Any.is_satisfied_by(v));
        assert!(!ExpectedVersion::NoStream.is_satisfied_by(v));
        assert!(ExpectedVersion::StreamExists.is_satisfied_by(v));
        assert!(!ExpectedVersion::StreamExists.is_satisfied_by(StreamVersion::INITIAL));
        assert!(ExpectedVersion::Exact(StreamVersion(3)).is_satisfied_by(v));
        assert!(!ExpectedVersion::Exact(StreamVersion(2)).is_satisfied_by(v));
    }
}
