//! Checkpoints.

use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::store::log::EventFilter;
use crate::stream::LogPosition;

use super::helpers::{
    Ids, OrFail as _, append_any, checkpoint, move_checkpoint, numbered, read_log, stream,
};

/// A projection that never ran stands at the start of the log.
pub async fn checkpoint_starts_at_start<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("checkpoint_starts_at_start");
    assert_eq!(
        checkpoint(&store, "conformance.never-ran").await,
        LogPosition::START
    );
    append_any(
        &store,
        &stream("conformance-checkpoint-events"),
        numbered(ids, 1..=2),
    )
    .await;
    assert_eq!(
        checkpoint(&store, "conformance.never-ran").await,
        LogPosition::START
    );
}

/// Committing moves a projection's checkpoint, other projections keep theirs, and a reset
/// returns it to the start.
pub async fn checkpoint_commit_and_reset<S: EventStore + CheckpointStore>(store: S) {
    let ids = Ids::new("checkpoint_commit_and_reset");
    append_any(
        &store,
        &stream("conformance-checkpoint"),
        numbered(ids, 1..=4),
    )
    .await;
    let log = read_log(&store, EventFilter::All).await;
    let (second, fourth) = (log[1].log_position(), log[3].log_position());
    let mine = "conformance.summary 'quoted' \"twice\" ü";
    let theirs = "conformance.other";

    move_checkpoint(&store, mine, second).await;
    assert_eq!(checkpoint(&store, mine).await, second);
    assert_eq!(
        checkpoint(&store, theirs).await,
        LogPosition::START,
        "a checkpoint moved another projection's"
    );
    move_checkpoint(&store, theirs, fourth).await;
    move_checkpoint(&store, mine, fourth).await;
    assert_eq!(checkpoint(&store, mine).await, fourth);

    store
        .reset_checkpoint(mine)
        .await
        .or_fail("resetting a checkpoint");
    assert_eq!(
        checkpoint(&store, mine).await,
        LogPosition::START,
        "the reset did not return to the start"
    );
    assert_eq!(
        checkpoint(&store, theirs).await,
        fourth,
        "a reset moved another projection's checkpoint"
    );
    move_checkpoint(&store, mine, fourth).await;
    assert_eq!(
        checkpoint(&store, mine).await,
        fourth,
        "the checkpoint did not move after a reset"
    );
}
