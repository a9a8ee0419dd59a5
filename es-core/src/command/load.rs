//! Loading an aggregate: the latest usable snapshot, then the events after it.

use std::ops::ControlFlow;

use tracing::Instrument as _;

use crate::aggregate::{Aggregate, EventSet};
use crate::command::outcome::Loaded;
use crate::snapshot::SnapshotCodec;
use crate::store::command_log::CommandSession;
use crate::store::error::LoadError;
use crate::store::event_store::EventStore;
use crate::stream::{StreamId, StreamVersion};

/// Loads an aggregate: the latest usable snapshot, then the events after it.
///
/// `up_to` stops at that version (time travel); snapshots beyond it are not used.
pub(crate) async fn load<S: EventStore, A: Aggregate>(
    store: &S,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    let mut session = store.command_session();
    load_on(store, &mut session, stream_id, up_to).await
}

/// [`load`] through `session`.
pub(crate) async fn load_on<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    let span = tracing::debug_span!("load", aggregate = A::NAME, stream = %stream_id);
    // An instrumented future enters and leaves its span on every poll, once per row of a long
    // stream: skip the wrapper when nobody listens.
    if span.is_disabled() {
        return load_in_span(store, session, stream_id, up_to).await;
    }
    load_in_span(store, session, stream_id, up_to)
        .instrument(span)
        .await
}

async fn load_in_span<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    if let Some(snapshot) = usable_snapshot::<S, A>(store, session, stream_id, up_to).await? {
        let mut loaded = snapshot;
        // The snapshot's own last event is read too: a snapshot is trusted only if the stream
        // reaches its version. One left over from another life of the store (a log restored
        // from an older backup) would otherwise pass for the state, and every command would
        // then conflict with a version the stream never had.
        match fold_stream(
            session,
            stream_id,
            &mut loaded,
            up_to,
            Anchor::Verify,
            |_, _| {},
        )
        .await
        {
            Ok(()) => return Ok(loaded),
            Err(LoadError::SnapshotBeyondStream { stream_version, .. }) => tracing::warn!(
                stream = %stream_id,
                snapshot_version = %stream_version,
                "ignoring a snapshot beyond the end of its stream; replaying the stream"
            ),
            Err(error) => return Err(error),
        }
    }
    let mut loaded = Loaded {
        state: A::default(),
        version: StreamVersion::INITIAL,
    };
    fold_stream(
        session,
        stream_id,
        &mut loaded,
        up_to,
        Anchor::None,
        |_, _| {},
    )
    .await?;
    Ok(loaded)
}

/// The aggregate's latest snapshot of `stream_id`, decoded, if it has one that fits `up_to`.
pub(crate) async fn usable_snapshot<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Option<Loaded<A>>, LoadError> {
    let Some(snapshot_version) = <A::Snapshot as SnapshotCodec<A>>::VERSION else {
        return Ok(None);
    };
    // The snapshot is read on the store: the session holds nothing while it does.
    session.release();
    let Some(snapshot) = store.load_snapshot(stream_id).await? else {
        return Ok(None);
    };
    let usable = snapshot.schema_version == snapshot_version
        && snapshot.stream_version != StreamVersion::INITIAL
        && up_to.is_none_or(|limit| snapshot.stream_version <= limit);
    if !usable {
        return Ok(None);
    }
    match <A::Snapshot as SnapshotCodec<A>>::decode(&snapshot.state) {
        Ok(state) => Ok(Some(Loaded {
            state,
            version: snapshot.stream_version,
        })),
        // A snapshot that no longer decodes (the state type changed without a new snapshot
        // version) is ignored like an old one: replaying from the start is always correct, a
        // bad snapshot only costs time.
        Err(error) => {
            tracing::warn!(
                stream = %stream_id,
                version = %snapshot.stream_version,
                %error,
                "ignoring a snapshot that does not decode"
            );
            Ok(None)
        }
    }
}

/// Whether a fold starts at a version a snapshot claims.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// From `loaded.version` as it is.
    None,
    /// `loaded` comes from a snapshot: the stream's event at `loaded.version` must be read
    /// first (and is not applied again), or the fold fails with
    /// [`LoadError::SnapshotBeyondStream`].
    Verify,
}

/// Applies the stream's events after `loaded.version` (up to `up_to`) to `loaded`, checking that
/// versions have no holes; `visit` sees each event with its version after it is applied.
pub(crate) async fn fold_stream<A: Aggregate>(
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    loaded: &mut Loaded<A>,
    up_to: Option<StreamVersion>,
    anchor: Anchor,
    mut visit: impl FnMut(StreamVersion, &A::Event) + Send,
) -> Result<(), LoadError> {
    let snapshot_version = loaded.version;
    let (after, mut anchor_pending) = match anchor {
        Anchor::Verify => (
            StreamVersion(snapshot_version.get().saturating_sub(1)),
            true,
        ),
        Anchor::None => (snapshot_version, false),
    };
    session
        .fold_stream(stream_id, after, |stored| {
            if anchor_pending {
                if stored.stream_version != snapshot_version {
                    return Err(LoadError::VersionHole {
                        stream_id: stream_id.clone(),
                        expected: snapshot_version,
                        found: stored.stream_version,
                    });
                }
                anchor_pending = false;
                return Ok(ControlFlow::Continue(()));
            }
            if up_to.is_some_and(|limit| stored.stream_version > limit) {
                return Ok(ControlFlow::Break(()));
            }
            let expected = loaded.version.next();
            if stored.stream_version != expected {
                return Err(LoadError::VersionHole {
                    stream_id: stream_id.clone(),
                    expected,
                    found: stored.stream_version,
                });
            }
            let event = A::Event::decode(stored.event_type, stored.schema_version, stored.payload)
                .map_err(|source| LoadError::Decode {
                    stream_id: stream_id.clone(),
                    stream_version: stored.stream_version,
                    source,
                })?;
            loaded.state.apply_event(&event);
            loaded.version = expected;
            visit(expected, &event);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    if anchor_pending {
        return Err(LoadError::SnapshotBeyondStream {
            stream_id: stream_id.clone(),
            stream_version: snapshot_version,
        });
    }
    Ok(())
}
