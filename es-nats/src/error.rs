//! The errors of this crate. Each says what failed and where (publisher, event id, log position,
//! subject, stream); the cause is in [`std::error::Error::source`].

use async_nats::jetstream::context::{CreateStreamError, GetStreamError, PublishError};
use es_core::{BackendError, EventId, LoadError, LogPosition};

/// A publisher that cannot be built: its configuration would publish nowhere sensible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The subject prefix is not a valid, wildcard-free NATS subject.
    #[error("subject prefix `{prefix}` is not a valid NATS subject: {reason}")]
    InvalidSubjectPrefix {
        /// The prefix given.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The JetStream stream name is empty or holds whitespace, `.`, `*`, `>`, `/` or `\`.
    #[error(
        "`{name}` is not a valid JetStream stream name (it must be non-empty, without whitespace, `.`, `*`, `>`, `/` or `\\`)"
    )]
    InvalidStreamName {
        /// The name given.
        name: String,
    },
    /// The checkpoint name is empty.
    #[error("the publisher's checkpoint name is empty")]
    EmptyCheckpointName,
}

/// Why publishing stopped. Nothing past the last acknowledged event was checkpointed, so
/// publishing again resumes without losing an event.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublisherError {
    /// The publisher's checkpoint could not be read.
    #[error("NATS publisher `{publisher}` could not read its checkpoint")]
    Checkpoint {
        /// The publisher's checkpoint name.
        publisher: String,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// The event log could not be read.
    #[error("NATS publisher `{publisher}` could not read the event log after {after}")]
    Read {
        /// The publisher's checkpoint name.
        publisher: String,
        /// Where the read started.
        after: LogPosition,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// A message could not be handed to the NATS connection (a full or closed connection, a
    /// time-out).
    #[error(
        "NATS publisher `{publisher}` could not send event {event_id} (position {position}) on subject `{subject}`"
    )]
    Send {
        /// The publisher's checkpoint name.
        publisher: String,
        /// The event's id.
        event_id: EventId,
        /// The event's place in the log.
        position: LogPosition,
        /// The subject it was sent on.
        subject: String,
        /// Why.
        #[source]
        source: PublishError,
    },
    /// JetStream did not acknowledge a message: no stream takes the subject, the stream refused
    /// it, or the acknowledgement did not come in time (NATS down or restarting).
    #[error(
        "JetStream did not acknowledge event {event_id} (position {position}) on subject `{subject}` for NATS publisher `{publisher}`"
    )]
    Ack {
        /// The publisher's checkpoint name.
        publisher: String,
        /// The event's id.
        event_id: EventId,
        /// The event's place in the log.
        position: LogPosition,
        /// The subject it was sent on.
        subject: String,
        /// Why.
        #[source]
        source: PublishError,
    },
    /// The checkpoint could not be moved past acknowledged events; they will be published again
    /// (and de-duplicated by JetStream).
    #[error("NATS publisher `{publisher}` could not commit its checkpoint at {position}")]
    Commit {
        /// The publisher's checkpoint name.
        publisher: String,
        /// The checkpoint it tried to commit.
        position: LogPosition,
        /// Why.
        #[source]
        source: BackendError,
    },
}

/// A JetStream stream that could not be created or updated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamSetupError {
    /// Looking the stream up failed.
    #[error("looking up JetStream stream `{stream}` failed")]
    Lookup {
        /// The stream's name.
        stream: String,
        /// Why.
        #[source]
        source: GetStreamError,
    },
    /// Creating the stream failed.
    #[error("creating JetStream stream `{stream}` failed")]
    Create {
        /// The stream's name.
        stream: String,
        /// Why.
        #[source]
        source: CreateStreamError,
    },
    /// Updating the existing stream's subjects or duplicate window failed.
    #[error("updating JetStream stream `{stream}` failed")]
    Update {
        /// The stream's name.
        stream: String,
        /// Why.
        #[source]
        source: CreateStreamError,
    },
}

/// The NATS server could not be reached.
#[derive(Debug, thiserror::Error)]
#[error("connecting to NATS at `{address}` failed")]
pub struct ConnectError {
    /// The address dialled.
    pub address: String,
    #[source]
    source: async_nats::ConnectError,
}

impl ConnectError {
    pub(crate) const fn new(address: String, source: async_nats::ConnectError) -> Self {
        Self { address, source }
    }
}
