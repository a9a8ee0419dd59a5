//! [`StreamQueue`]: commands on one stream inside one application run one at a time.
//!
//! Two commands on one aggregate that race each other to the store both load the same version
//! and both decide; one of them then loses the append and is decided again, and under load the
//! loser can lose again and again until its retries run out. Within one process that is a
//! conflict the process causes itself: the commands queue here instead, each loading the
//! version its predecessor wrote. Conflicts are then left to other processes, and those are
//! retried with back-off by the command path.
//!
//! The queue holds an entry only for streams with a command running or waiting: an entry is
//! removed by the last command to leave it, so memory follows the commands in flight, not the
//! streams ever touched.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::stream::StreamId;

/// The streams with a command running or waiting, and each one's turn. Keyed by foldhash,
/// seeded per process: the map holds only the commands in flight, so even a caller choosing
/// colliding ids slows nothing but its own commands.
type Turns = HashMap<StreamId, Arc<AsyncMutex<()>>, foldhash::fast::RandomState>;

/// Per-stream turns for the commands of one application.
#[derive(Debug, Default)]
pub(crate) struct StreamQueue {
    streams: Mutex<Turns>,
}

/// A command's turn on its stream: held while it loads, decides and appends.
pub(crate) struct Turn<'q> {
    // Dropped first (fields drop in order), so that `Place::drop` sees whether anyone else
    // still holds or waits for the stream.
    _turn: OwnedMutexGuard<()>,
    _place: Place<'q>,
}

/// A command's place in a stream's queue, from before it waits until after its turn.
struct Place<'q> {
    queue: &'q StreamQueue,
    stream_id: StreamId,
    turns: Arc<AsyncMutex<()>>,
}

impl StreamQueue {
    /// Waits for the turn of a command on `stream_id`: until every command that came before it
    /// on that stream in this application has finished. Cancel-safe: dropping the future gives
    /// up the place.
    pub(crate) async fn turn(&self, stream_id: &StreamId) -> Turn<'_> {
        let turns = Arc::clone(self.lock().entry(stream_id.clone()).or_default());
        let place = Place {
            queue: self,
            stream_id: stream_id.clone(),
            turns,
        };
        let turn = Arc::clone(&place.turns).lock_owned().await;
        Turn {
            _turn: turn,
            _place: place,
        }
    }

    // A panic while the map is locked cannot leave it inconsistent: every change is one call.
    fn lock(&self) -> std::sync::MutexGuard<'_, Turns> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut streams = self.queue.lock();
        // The map's reference and ours: nobody else holds or waits for this stream.
        if Arc::strong_count(&self.turns) == 2 {
            streams.remove(&self.stream_id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;

    fn stream(name: &str) -> StreamId {
        StreamId::new(name).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn commands_on_one_stream_take_turns() {
        let queue = Arc::new(StreamQueue::default());
        let inside = Arc::new(AtomicU32::new(0));
        let most = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (queue, inside, most) = (queue.clone(), inside.clone(), most.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        let _turn = queue.turn(&stream("order-1")).await;
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1, "two commands ran at once");
        assert_eq!(queue.len(), 0, "an entry outlived its commands");
    }

    #[tokio::test]
    async fn other_streams_do_not_wait() {
        let queue = StreamQueue::default();
        let _first = queue.turn(&stream("order-1")).await;
        let other = tokio::time::timeout(Duration::from_secs(5), queue.turn(&stream("order-2")))
            .await
            .expect("a command on another stream waited");
        assert_eq!(queue.len(), 2);
        drop(other);
        assert_eq!(queue.len(), 1);
    }

    #[tokio::test]
    async fn a_cancelled_wait_leaves_nothing_behind() {
        let queue = StreamQueue::default();
        let order = stream("order-1");
        let first = queue.turn(&order).await;
        let waiting = tokio::time::timeout(Duration::from_millis(20), queue.turn(&order));
        assert!(
            waiting.await.is_err(),
            "the second turn came while the first was held"
        );
        drop(first);
        assert_eq!(queue.len(), 0);
    }
}
