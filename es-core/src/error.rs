//! The public error types, one per layer. Each names what failed and where; the cause is in
//! [`std::error::Error::source`].

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use uuid::Uuid;

use crate::codec::{DecodeError, EncodeError};
use crate::event::EventId;
use crate::store::CommandRecord;
use crate::stream::{ExpectedVersion, GlobalPosition, StreamId, StreamVersion};

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

/// What kind of failure a back end reported; lets callers decide whether to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The database could not be reached or dropped the connection; retrying may succeed.
    Unavailable,
    /// The database schema was written by a newer (or unknown) version of this framework.
    SchemaMismatch,
    /// The store holds data that breaks its own invariants.
    Corrupt,
    /// The request holds a value the back end cannot store (a version beyond `i64`, say).
    InvalidInput,
    /// A leased operation lost its lease to another worker.
    LeaseLost,
    /// Anything else the back end reported.
    Other,
}

impl fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Unavailable => "database unavailable",
            Self::SchemaMismatch => "schema version mismatch",
            Self::Corrupt => "stored data is corrupt",
            Self::InvalidInput => "invalid input",
            Self::LeaseLost => "lease lost",
            Self::Other => "database error",
        })
    }
}

/// A failure inside a store's back end, with the operation and object it concerned.
#[derive(Debug, thiserror::Error)]
#[error("{backend} store: {context}: {kind}")]
pub struct BackendError {
    backend: &'static str,
    kind: BackendErrorKind,
    context: Cow<'static, str>,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

impl BackendError {
    /// A back-end error; `context` says what was being done to what (`"append to stream x"`).
    #[must_use]
    pub fn new(
        backend: &'static str,
        kind: BackendErrorKind,
        context: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            backend,
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// Attaches the underlying error.
    #[must_use]
    pub fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    #[must_use]
    pub const fn kind(&self) -> BackendErrorKind {
        self.kind
    }

    /// The name of the back end (`"postgres"`, `"sqlite"`, `"memory"`).
    #[must_use]
    pub const fn backend(&self) -> &'static str {
        self.backend
    }
}

/// Why an append did not happen. Nothing was written in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The stream's version did not match the expected version.
    #[error(
        "version conflict on stream `{stream_id}`: expected {expected}, found version {actual}"
    )]
    Conflict {
        /// The stream appended to.
        stream_id: StreamId,
        /// What the caller expected.
        expected: ExpectedVersion,
        /// The stream's version at the time of the append.
        actual: StreamVersion,
    },
    /// The command id was already recorded by an earlier append.
    #[error(
        "command {} was already applied to stream `{}`", .0.command_id, .0.stream_id
    )]
    DuplicateCommand(CommandRecord),
    /// An event id is already stored.
    #[error("event id {event_id} is already stored (appending to stream `{stream_id}`)")]
    DuplicateEventId {
        /// The stream appended to.
        stream_id: StreamId,
        /// The id that exists.
        event_id: EventId,
    },
    /// The back end failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a stream, the global log or a snapshot could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// A stored event could not be decoded.
    #[error("cannot decode event at version {stream_version} of stream `{stream_id}`")]
    Decode {
        /// The stream read.
        stream_id: StreamId,
        /// The event's version.
        stream_version: StreamVersion,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A stream's stored versions have a hole or run backwards.
    #[error("stream `{stream_id}` is corrupt: expected version {expected} next, found {found}")]
    VersionHole {
        /// The stream read.
        stream_id: StreamId,
        /// The version that should have come next.
        expected: StreamVersion,
        /// The version that came.
        found: StreamVersion,
    },
    /// The aggregate id does not make a valid stream id.
    #[error("invalid stream id")]
    InvalidStreamId(#[from] InvalidStreamId),
    /// A snapshot claims a version the stream never reached (a log restored from an older
    /// backup, a left-over snapshot). Loads ignore such a snapshot and replay the stream; this
    /// error only says why.
    #[error(
        "the snapshot of stream `{stream_id}` is at version {stream_version}, beyond the stream's end"
    )]
    SnapshotBeyondStream {
        /// The stream read.
        stream_id: StreamId,
        /// The version the snapshot claims.
        stream_version: StreamVersion,
    },
    /// The back end failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// Why a projection batch failed; the batch was rolled back and will be retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// An event could not be decoded, its handler failed, or a batch hook failed.
    #[error(transparent)]
    Projection(ProjectionError),
    /// Reading the log failed.
    #[error("projection `{projection}` could not read the event log")]
    Read {
        /// The projection's name.
        projection: &'static str,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// The checkpoint or the unit of work failed.
    #[error("projection `{projection}` could not open, commit or checkpoint its batch")]
    Store {
        /// The projection's name.
        projection: &'static str,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// No projection of that name is registered.
    #[error("no projection named `{name}` is registered (registered: {registered})")]
    UnknownProjection {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// Another worker holds, took over or was handed the projection's lease: this one commits
    /// nothing more under it.
    #[error("projection `{projection}`: {loss}")]
    LeaseLost {
        /// The projection's name.
        projection: &'static str,
        /// How.
        loss: LeaseLoss,
    },
    /// A process manager's worker outlived its application (every `App` handle was dropped):
    /// it has no application to send its commands through, and stops.
    #[error("process manager `{projection}` ran after its application was dropped")]
    ApplicationDropped {
        /// The process manager's name.
        projection: &'static str,
    },
    /// A rebuild waited for the projection's lease longer than it was allowed to.
    #[error(
        "projection `{projection}` was not handed over within {} s: worker `{holder}` holds its lease; stop that worker, or rebuild with takeover",
        waited.as_secs()
    )]
    LeaseWait {
        /// The projection's name.
        projection: &'static str,
        /// The worker holding the lease when the wait ended.
        holder: String,
        /// How long the rebuild waited.
        waited: std::time::Duration,
    },
    /// The projection has no reset hook, so a rebuild cannot clear its read model.
    #[error(
        "projection `{projection}` cannot be rebuilt: it has no reset hook to clear its read model; add the `reset` flag to its #[projection(...)] and implement es_core::Reset"
    )]
    NoReset {
        /// The projection's name.
        projection: &'static str,
    },
    /// The projection's reset hook failed; nothing was cleared or reset.
    #[error("the reset hook of projection `{projection}` failed; nothing was cleared")]
    Reset {
        /// The projection's name.
        projection: &'static str,
        /// What the hook returned.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Catching up went on pass after pass: process managers kept issuing commands whose events
    /// they (or each other) consume.
    #[error("catching up did not settle after {passes} passes over the projections")]
    Unsettled {
        /// The passes made.
        passes: u32,
    },
}

/// How a worker lost (or never had) a projection's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// Another worker holds it.
    HeldBy {
        /// The worker holding it.
        owner: String,
    },
    /// Another worker took it over: the epoch moved on.
    TakenOver,
    /// Another worker (a rebuild) asked for it, and this one released it.
    HandedOver {
        /// Who asked.
        to: String,
    },
}

impl fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeldBy { owner } => write!(f, "leased by another worker, `{owner}`"),
            Self::TakenOver => f.write_str("the lease was taken over by another worker"),
            Self::HandedOver { to } => write!(f, "the lease was handed over to `{to}`"),
        }
    }
}

/// Why a command did not take effect. Nothing was written in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// The aggregate refused the command: a domain rule.
    #[error(transparent)]
    Rejected(E),
    /// The stream moved on: the caller's expected version did not match, or every retry lost
    /// the race to another writer.
    #[error(
        "version conflict on stream `{stream_id}`: expected {expected}, found version {actual} (after {attempts} attempt(s))"
    )]
    Conflict {
        /// The aggregate's stream.
        stream_id: StreamId,
        /// What the command expected.
        expected: ExpectedVersion,
        /// The version found.
        actual: StreamVersion,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// The command requires an existing aggregate and the stream has no events.
    #[error("aggregate stream `{stream_id}` does not exist")]
    NotFound {
        /// The aggregate's stream.
        stream_id: StreamId,
    },
    /// The command id was used before for a different stream.
    #[error(
        "command id {command_id} was already used for stream `{recorded_stream}`, not `{stream_id}`"
    )]
    CommandIdReused {
        /// The id sent twice.
        command_id: Uuid,
        /// The stream this command addressed.
        stream_id: StreamId,
        /// The stream the id was first used for.
        recorded_stream: StreamId,
    },
    /// The command id was recorded on this stream for a different command (another value or
    /// command type): an id answers only the command it was made for. Nothing was appended.
    #[error(
        "command id {command_id} was already used on stream `{stream_id}` for a different command"
    )]
    FingerprintMismatch {
        /// The id sent twice.
        command_id: Uuid,
        /// The stream both commands addressed.
        stream_id: StreamId,
    },
    /// The command id was recorded for a refused command, and the command, decided again on
    /// the state it was refused on, was not refused this time (an async handler whose services
    /// answer differently now). The first refusal cannot be reproduced; nothing was appended.
    #[error(
        "command id {command_id} was refused at version {version} of stream `{stream_id}`, but deciding it again there no longer refuses it"
    )]
    ReplayDiverged {
        /// The id sent again.
        command_id: Uuid,
        /// The aggregate's stream.
        stream_id: StreamId,
        /// The version the command was first refused at.
        version: StreamVersion,
    },
    /// The command could not be fingerprinted for its command id (its `Serialize` impl
    /// failed).
    #[error("cannot fingerprint the command sent to aggregate `{aggregate}`")]
    Fingerprint {
        /// The aggregate's name.
        aggregate: &'static str,
        /// Why.
        #[source]
        source: crate::fingerprint::FingerprintError,
    },
    /// The aggregate id does not make a valid stream id.
    #[error("invalid id for aggregate `{aggregate}`")]
    InvalidId {
        /// The aggregate's name.
        aggregate: &'static str,
        /// What is wrong with the id.
        #[source]
        source: InvalidStreamId,
    },
    /// The aggregate type was not registered with the registry.
    #[error("aggregate `{aggregate}` is not registered")]
    NotRegistered {
        /// The aggregate's name.
        aggregate: &'static str,
    },
    /// The aggregate could not be loaded.
    #[error("loading aggregate stream `{stream_id}` failed")]
    Load {
        /// The aggregate's stream.
        stream_id: StreamId,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// An event the aggregate decided could not be encoded.
    #[error("encoding an event decided for stream `{stream_id}` failed")]
    Encode {
        /// The aggregate's stream.
        stream_id: StreamId,
        /// Why.
        #[source]
        source: EncodeError,
    },
    /// The append failed for a reason other than a conflict.
    #[error("appending to stream `{stream_id}` failed")]
    Append {
        /// The aggregate's stream.
        stream_id: StreamId,
        /// Why.
        #[source]
        source: AppendError,
    },
}

impl<E> CommandError<E> {
    /// The domain error, when the aggregate refused the command.
    pub const fn rejection(&self) -> Option<&E> {
        match self {
            Self::Rejected(error) => Some(error),
            _ => None,
        }
    }
}

/// A registry that cannot be built: two registrations would make events or streams ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The same aggregate name was registered twice.
    #[error("aggregate `{name}` is registered twice")]
    DuplicateAggregate {
        /// The name.
        name: &'static str,
    },
    /// Two aggregates list an event with the same stable name.
    #[error(
        "event type `{event_type}` is claimed by both aggregate `{first}` and aggregate `{second}`"
    )]
    EventTypeClaimedTwice {
        /// The event's stable name.
        event_type: &'static str,
        /// The aggregate registered first.
        first: &'static str,
        /// The aggregate registered second.
        second: &'static str,
    },
    /// An aggregate name that cannot begin a stream id: empty, or holding a `-` (stream ids
    /// are `{name}-{id}` and split at the first `-`), whitespace or a control character.
    /// `#[derive(Aggregate)]` refuses these at compile time; this catches hand-written impls.
    #[error(
        "aggregate name `{name}` {reason}; stream ids are `{{name}}-{{id}}`, split at the first `-`"
    )]
    InvalidAggregateName {
        /// The name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two projections share a name (and would share a checkpoint).
    #[error("projection `{name}` is registered twice")]
    DuplicateProjection {
        /// The name.
        name: &'static str,
    },
    /// A projection whose handlers accept any unit of work (so its state lives outside the
    /// store) was registered to keep its checkpoint in a durable store: after a restart it would
    /// start empty, yet believe itself up to date.
    #[error(
        "projection `{name}` keeps its state outside the store (its handlers accept any unit of work), but its checkpoint would be stored durably: after a restart it would start empty yet skip every event already seen. Register it with `Registry::in_memory_projection` (its checkpoint then lives in memory with its state, and it replays the log at each start), or make its handlers write through the store's transaction"
    )]
    ProjectionStateOutsideStore {
        /// The projection's name.
        name: &'static str,
    },
}

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
    pub fn decode(
        projection: &'static str,
        event: &crate::RecordedEvent,
        source: DecodeError,
    ) -> Self {
        Self::at(
            projection,
            event,
            ProjectionFailure::Decode,
            Box::new(source),
        )
    }

    /// A handler failure at `event`.
    #[must_use]
    pub fn handler(
        projection: &'static str,
        event: &crate::RecordedEvent,
        source: HandlerError,
    ) -> Self {
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
        first_event: &crate::RecordedEvent,
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
        last_event: &crate::RecordedEvent,
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
        event: &crate::RecordedEvent,
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
