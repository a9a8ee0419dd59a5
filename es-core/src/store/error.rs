//! Why a store call failed: the append and load errors and the back end's own.
use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;

use crate::codec::DecodeError;
use crate::event::EventId;
use crate::store::command_record::CommandRecord;
use crate::stream::{ExpectedVersion, InvalidStreamId, StreamId, StreamVersion};

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
