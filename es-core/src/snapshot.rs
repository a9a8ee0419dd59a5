//! Snapshots: a saved aggregate state, so loading reads only the events after it.
//!
//! An aggregate opts in with `#[aggregate(snapshot = N)]` (N is the snapshot's schema
//! version; the state must implement `Serialize` and `Deserialize`), and the registry decides
//! how often to take one ([`SnapshotPolicy`]). A snapshot whose schema version differs from the
//! aggregate's current one is ignored and the stream replayed from the start: a changed state
//! type is never misread.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::stream::StreamVersion;

/// A stored snapshot of one stream.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Snapshot {
    /// The stream version the state includes.
    pub stream_version: StreamVersion,
    /// The snapshot's schema version.
    pub schema_version: u32,
    /// The serialised state.
    pub state: Box<RawValue>,
}

impl Snapshot {
    /// A snapshot from its parts.
    #[must_use]
    pub const fn new(
        stream_version: StreamVersion,
        schema_version: u32,
        state: Box<RawValue>,
    ) -> Self {
        Self {
            stream_version,
            schema_version,
            state,
        }
    }
}

/// How an aggregate's state becomes a snapshot and back.
pub trait SnapshotCodec<A>: Send + Sync + 'static {
    /// The snapshot schema version, or `None` when the aggregate is never snapshotted.
    const VERSION: Option<u32>;

    /// Serialises the state.
    ///
    /// # Errors
    /// What serde said.
    fn encode(state: &A) -> Result<Box<RawValue>, serde_json::Error>;

    /// Restores the state.
    ///
    /// # Errors
    /// What serde said.
    fn decode(state: &RawValue) -> Result<A, serde_json::Error>;
}

/// The codec of aggregates without snapshots.
#[derive(Debug, Clone, Copy)]
pub struct NoSnapshots;

impl<A: Default> SnapshotCodec<A> for NoSnapshots {
    const VERSION: Option<u32> = None;

    fn encode(_: &A) -> Result<Box<RawValue>, serde_json::Error> {
        serde_json::value::to_raw_value(&())
    }

    fn decode(_: &RawValue) -> Result<A, serde_json::Error> {
        Ok(A::default())
    }
}

/// The JSON snapshot codec at schema version `V`.
#[derive(Debug, Clone, Copy)]
pub struct JsonSnapshot<const V: u32>(PhantomData<()>);

impl<A, const V: u32> SnapshotCodec<A> for JsonSnapshot<V>
where
    A: Serialize + DeserializeOwned,
{
    const VERSION: Option<u32> = Some(V);

    /// Refuses a state holding a NaN or infinite float, as events are refused (see
    /// [`codec`](crate::codec)): such a snapshot would be saved but never decode again.
    fn encode(state: &A) -> Result<Box<RawValue>, serde_json::Error> {
        crate::codec::to_checked_json(state).map_err(crate::codec::JsonFailure::into_serde)
    }

    fn decode(state: &RawValue) -> Result<A, serde_json::Error> {
        serde_json::from_str(state.get())
    }
}

/// When the command path saves a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SnapshotPolicy {
    /// Never.
    #[default]
    Never,
    /// Whenever an append crosses a multiple of this many events.
    Every(u64),
}

impl SnapshotPolicy {
    /// Whether an append that moved the stream from `before` to `after` should save one.
    #[must_use]
    pub const fn is_due(self, before: StreamVersion, after: StreamVersion) -> bool {
        match self {
            Self::Never => false,
            Self::Every(0) => false,
            Self::Every(n) => before.0 / n != after.0 / n,
        }
    }
}
