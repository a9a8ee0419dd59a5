//! Live notification: a watch wakes for new commits.

use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::stream::ExpectedVersion;

use super::helpers::{Ids, OrFail as _, WAIT, append_any, append_ok, numbered, stream};

/// A watch wakes after an append, again after the next one, and a watch taken later wakes too.
pub async fn watch_wakes_after_append<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("watch_wakes_after_append");
    let stream_id = stream("conformance-watch");
    let mut watch = store.watch();
    append_ok(&store, &stream_id, ExpectedVersion::Any, numbered(ids, [1])).await;
    tokio::time::timeout(WAIT, watch.changed())
        .await
        .or_fail("waiting for the watch to wake after an append");

    let mut later = store.watch();
    append_any(&store, &stream_id, numbered(ids, [2, 3])).await;
    tokio::time::timeout(WAIT, watch.changed())
        .await
        .or_fail("waiting for the watch to wake after a second append");
    tokio::time::timeout(WAIT, later.changed())
        .await
        .or_fail("waiting for a watch taken later to wake");
}
