//! Why a projection handler or batch failed.
use std::error::Error as StdError;
use std::fmt;

use crate::codec::DecodeError;
use crate::event::{EventId, RecordedEvent};
use crate::stream::GlobalPosition;

/// What a projection handler returns on failure; any error converts into it with `?`.
///
/// Deliberately not `std::error::Error` itself (as with `anyhow::Error`), which is what allows
/// the blanket conversion from every error type.
pub struct HandlerError(Box<dyn StdError + Send + Sync>);

impl HandlerError {
    /// An error from a plain message.
    #[must_use]
    pub fn msg(message: impl fmt::Display) -> Self {
        Self(message.to_string().into())
    }

    /// The underlying error.
    #[must_use]
    pub fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.0
    }

    pub(crate) fn into_inner(self) -> Box<dyn StdError + Send + Sync> {
        self.0
    }
}

impl<E: StdError + Send + Sync + 'static> From<E> for HandlerError {
    fn from(error: E) -> Self {
        Self(Box::new(error))
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// A projection stopped at an event; the event was not applied and the checkpoint did not move.
///
/// When a batch hook failed ([`ProjectionFailure::BeginBatch`] or
/// [`ProjectionFailure::EndBatch`]), the event is the batch's first or last one, and the whole
/// batch is retried.
#[derive(Debug, thiserror::Error)]
#[error(
    "projection `{projection}` failed at event {event_id} (`{event_type}`, position {position}): {reason}"
)]
pub struct ProjectionError {
    /// The projection's name.
    pub projection: &'static str,
    /// The event's position.
    pub position: GlobalPosition,
    /// The event's id.
    pub event_id: EventId,
    /// The event's stable name.
    pub event_type: String,
    /// What went wrong, in one line.
    pub reason: ProjectionFailure,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

/// Which step of projecting an event, or of its batch, failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProjectionFailure {
    /// The payload did not decode.
    Decode,
    /// The user's handler returned an error.
    Handler,
    /// The projection's [`BeginBatch`](crate::BeginBatch) hook returned an error before any
    /// event of the batch was dispatched; the event is the batch's first.
    BeginBatch,
    /// The projection's [`EndBatch`](crate::EndBatch) hook returned an error after the batch's
    /// events were dispatched; the event is the batch's last.
    EndBatch,
}

impl fmt::Display for ProjectionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Decode => "the event does not decode",
            Self::Handler => "the handler failed",
            Self::BeginBatch => "the `begin_batch` hook failed on the batch starting at this event",
            Self::EndBatch => "the `end_batch` hook failed on the batch ending at this event",
        })
    }
}

impl ProjectionError {
    /// A decode failure at `event`.
    #[must_use]
    pub fn decode(projection: &'static str, event: &RecordedEvent, source: DecodeError) -> Self {
        Self::at(
            projection,
            event,
            ProjectionFailure::Decode,
            Box::new(source),
        )
    }

    /// A handler failure at `event`.
    #[must_use]
    pub fn handler(projection: &'static str, event: &RecordedEvent, source: HandlerError) -> Self {
        Self::at(
            projection,
            event,
            ProjectionFailure::Handler,
            source.into_inner(),
        )
    }

    /// A failure of the projection's [`BeginBatch`](crate::BeginBatch) hook on the batch that
    /// starts at `first_event`.
    #[must_use]
    pub fn begin_batch(
        projection: &'static str,
        first_event: &RecordedEvent,
        source: HandlerError,
    ) -> Self {
        Self::at(
            projection,
            first_event,
            ProjectionFailure::BeginBatch,
            source.into_inner(),
        )
    }

    /// A failure of the projection's [`EndBatch`](crate::EndBatch) hook on the batch that ends
    /// at `last_event`.
    #[must_use]
    pub fn end_batch(
        projection: &'static str,
        last_event: &RecordedEvent,
        source: HandlerError,
    ) -> Self {
        Self::at(
            projection,
            last_event,
            ProjectionFailure::EndBatch,
            source.into_inner(),
        )
    }

    fn at(
        projection: &'static str,
        event: &RecordedEvent,
        reason: ProjectionFailure,
        source: Box<dyn StdError + Send + Sync>,
    ) -> Self {
        Self {
            projection,
            position: event.position,
            event_id: event.id,
            event_type: event.event_type.clone(),
            reason,
            source: Some(source),
        }
    }
}
