//! Events: the [`Event`] trait the `#[event]` macro implements, and the envelopes events travel in.

use std::borrow::Cow;
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::metadata::Metadata;
use crate::stream::{GlobalPosition, LogPosition, StreamId, StreamVersion};
use crate::upcast::Upcaster;

/// A domain event: a fact, named and versioned so that stored rows outlive the Rust type.
///
/// Implemented by `#[event]`; the name is what is stored, never the Rust path, so a type may be
/// renamed or moved freely. A new incompatible shape bumps [`Event::VERSION`] and supplies
/// [`Event::UPCASTERS`] that turn each older stored version into the next.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an event",
    label = "not an event",
    note = "add `#[es_core::event]` to the struct `{Self}`"
)]
pub trait Event:
    Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync + 'static
{
    /// The stable name stored with every event of this type.
    const NAME: &'static str;
    /// The current schema version, starting at 1.
    const VERSION: u32;
    /// `UPCASTERS[i]` turns a stored payload of version `i + 1` into version `i + 2`.
    ///
    /// Either empty (old versions fail to load with a typed error) or exactly `VERSION - 1` long;
    /// `#[event]` checks the length at compile time.
    const UPCASTERS: &'static [Upcaster] = &[];
}

/// The unique id of one stored event: a UUID v7, so ids sort roughly by creation time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A fresh id (UUID v7).
    #[must_use]
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }

    /// The id as a UUID.
    #[must_use]
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An event on its way into a store: encoded, but without the numbers the store assigns.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewEvent {
    /// The event's unique id.
    pub id: EventId,
    /// The event's stable name ([`Event::NAME`]).
    pub event_type: Cow<'static, str>,
    /// The payload's schema version ([`Event::VERSION`]).
    pub schema_version: u32,
    /// The payload as JSON.
    pub payload: Box<RawValue>,
    /// Correlation, causation, headers.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event with a fresh id from its parts.
    #[must_use]
    pub fn new(
        event_type: impl Into<Cow<'static, str>>,
        schema_version: u32,
        payload: Box<RawValue>,
        metadata: Metadata,
    ) -> Self {
        Self {
            id: EventId::new(),
            event_type: event_type.into(),
            schema_version,
            payload,
            metadata,
        }
    }

    /// Replaces the id (for callers that derive ids, such as process managers).
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }
}

/// An event as a store returns it: raw payload plus everything the store assigned.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RecordedEvent {
    /// The event's unique id.
    pub id: EventId,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version within the stream (1, 2, 3, ...).
    pub stream_version: StreamVersion,
    /// Its global position.
    pub position: GlobalPosition,
    /// The store's commit-order key (see [`LogPosition`]).
    pub transaction: u64,
    /// The event's stable name.
    pub event_type: String,
    /// The schema version the payload was written with.
    pub schema_version: u32,
    /// The payload as stored.
    pub payload: Box<RawValue>,
    /// Correlation, causation, headers.
    pub metadata: Metadata,
    /// When the store recorded it.
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
}

// By hand: `RawValue` has no `PartialEq`; payloads compare by their JSON text.
impl PartialEq for RecordedEvent {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.stream_id == other.stream_id
            && self.stream_version == other.stream_version
            && self.position == other.position
            && self.transaction == other.transaction
            && self.event_type == other.event_type
            && self.schema_version == other.schema_version
            && self.payload.get() == other.payload.get()
            && self.metadata == other.metadata
            && self.recorded_at == other.recorded_at
    }
}

impl RecordedEvent {
    /// Builds a recorded event; for store implementations.
    #[allow(clippy::too_many_arguments)] // mirrors the stored columns one to one
    #[must_use]
    pub fn new(
        id: EventId,
        stream_id: StreamId,
        stream_version: StreamVersion,
        log_position: LogPosition,
        event_type: String,
        schema_version: u32,
        payload: Box<RawValue>,
        metadata: Metadata,
        recorded_at: OffsetDateTime,
    ) -> Self {
        Self {
            id,
            stream_id,
            stream_version,
            position: log_position.position,
            transaction: log_position.transaction,
            event_type,
            schema_version,
            payload,
            metadata,
            recorded_at,
        }
    }

    /// Where this event stands in the global log, for checkpoints.
    #[must_use]
    pub const fn log_position(&self) -> LogPosition {
        LogPosition::new(self.transaction, self.position)
    }
}

/// A decoded event with its envelope: what projections and process managers receive.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct EventEnvelope<E> {
    /// The event's unique id.
    pub id: EventId,
    /// The stream it belongs to.
    pub stream_id: StreamId,
    /// Its version within the stream.
    pub stream_version: StreamVersion,
    /// Where it stands in the global log.
    pub log_position: LogPosition,
    /// Correlation, causation, headers.
    pub metadata: Metadata,
    /// When the store recorded it.
    pub recorded_at: OffsetDateTime,
    /// The event itself, upcast to the current version.
    pub event: E,
}

impl<E> EventEnvelope<E> {
    /// Wraps `event` in the envelope of `recorded`.
    #[must_use]
    pub fn from_recorded(recorded: &RecordedEvent, event: E) -> Self {
        Self {
            id: recorded.id,
            stream_id: recorded.stream_id.clone(),
            stream_version: recorded.stream_version,
            log_position: recorded.log_position(),
            metadata: recorded.metadata.clone(),
            recorded_at: recorded.recorded_at,
            event,
        }
    }

    /// The event's global position.
    #[must_use]
    pub const fn position(&self) -> GlobalPosition {
        self.log_position.position
    }

    /// The type of the aggregate whose stream holds the event, as its `name` (`"account"` for
    /// stream `"account-alice"`); `None` for a stream not named `{aggregate}-{id}`.
    #[must_use]
    pub fn aggregate_type(&self) -> Option<&str> {
        self.stream_id.aggregate_parts().map(|(name, _)| name)
    }

    /// The id of that aggregate as the command was sent to it (`"alice"` for stream
    /// `"account-alice"`, from `app.execute::<Account>("alice", ..)`); `None` for a stream not
    /// named `{aggregate}-{id}`.
    #[must_use]
    pub fn aggregate_id(&self) -> Option<&str> {
        self.stream_id.aggregate_parts().map(|(_, id)| id)
    }
}
