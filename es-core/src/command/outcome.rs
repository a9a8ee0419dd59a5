//! What a load and a command give back.

use crate::aggregate::Aggregate;
use crate::stream::{StreamId, StreamVersion};

/// A loaded aggregate: its state and the version it reflects.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Loaded<A> {
    /// The state after the events up to `version`.
    pub state: A,
    /// The version of the last event applied ([`StreamVersion::INITIAL`] for a new aggregate).
    pub version: StreamVersion,
}

/// What an executed command did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Executed<A: Aggregate> {
    /// The aggregate's stream.
    pub stream_id: StreamId,
    /// The version before the command's events.
    pub version_before: StreamVersion,
    /// The version after them.
    pub version: StreamVersion,
    /// The events the command appended (empty for a no-op).
    pub events: Vec<A::Event>,
    /// The state after the events.
    pub state: A,
    /// Whether this is the stored result of an earlier command with the same id.
    pub replayed: bool,
}
