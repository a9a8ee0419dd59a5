//! Why a command did not take effect.

use uuid::Uuid;

use crate::codec::EncodeError;
use crate::store::error::{AppendError, LoadError};
use crate::stream::{ExpectedVersion, InvalidStreamId, StreamId, StreamVersion};

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
