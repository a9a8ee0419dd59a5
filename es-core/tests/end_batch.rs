//! The batch hooks. End of batch: handlers buffer, the hook writes once per batch before the
//! commit; a failing hook retries the whole batch and nothing is written twice. Beginning of
//! batch: the hook sees exactly the batch's events before any is dispatched, and never an empty
//! batch; a failing hook dispatches none of them and the batch is retried whole. A failing hook
//! is reported as that hook's failure, not as a handler's.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
use std::sync::{Arc, Mutex};

use es_core::ProjectionFailure;
use es_core::{
    AppendRequest, BeginBatch, CheckpointStore as _, EndBatch, EventEnvelope, EventFilter,
    ExpectedVersion, HandlerError, LogPosition, MemoryStore, NewEvent, Project, ProjectionError,
    RecordedEvent, Registry, RunnerError, RunnerSettings, StreamId, event,
};

#[event]
pub struct Tick {
    pub n: u64,
}

#[derive(Default)]
pub struct Written {
    rows: Vec<u64>,
    flushes: usize,
    fail_next_flush: bool,
}

#[derive(Clone, es_core::Projection)]
#[projection(name = "ticks", events(Tick), end_batch)]
pub struct BulkTicks {
    buffered: Vec<u64>,
    written: Arc<Mutex<Written>>,
}

impl Project<Tick> for BulkTicks {
    async fn project(
        &mut self,
        event: EventEnvelope<Tick>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.buffered.push(event.event.n);
        Ok(())
    }
}

impl EndBatch for BulkTicks {
    async fn end_batch(&mut self, (): &mut ()) -> Result<(), HandlerError> {
        // Taken first: on failure the batch is handed over again, so the buffer starts empty.
        let rows = std::mem::take(&mut self.buffered);
        let mut written = self.written.lock().unwrap();
        if std::mem::take(&mut written.fail_next_flush) {
            return Err(HandlerError::msg("the bulk insert failed"));
        }
        written.rows.extend(rows);
        written.flushes += 1;
        Ok(())
    }
}

async fn append_ticks(store: &MemoryStore, range: std::ops::Range<u64>) {
    for n in range {
        let payload = serde_json::value::to_raw_value(&Tick { n }).unwrap();
        let event = NewEvent::new("tick", 1, payload, es_core::Metadata::new());
        store
            .append(AppendRequest::new(
                StreamId::new(format!("clock-{}", n % 2)).unwrap(),
                ExpectedVersion::Any,
                vec![event],
            ))
            .await
            .unwrap();
    }
}

/// An event of a type no projection here consumes.
async fn append_tock(store: &MemoryStore) {
    let tock = NewEvent::new(
        "tock",
        1,
        serde_json::value::to_raw_value(&serde_json::json!({})).unwrap(),
        es_core::Metadata::new(),
    );
    store
        .append(AppendRequest::new(
            StreamId::new("clock-0").unwrap(),
            ExpectedVersion::Any,
            vec![tock],
        ))
        .await
        .unwrap();
}

/// The recorded `tick` event numbered `n`.
async fn recorded_tick(store: &MemoryStore, n: u64) -> RecordedEvent {
    store
        .read_all(
            LogPosition::START,
            usize::MAX,
            EventFilter::Types(&["tick"]),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|event| serde_json::from_str::<Tick>(event.payload.get()).unwrap().n == n)
        .expect("the tick was appended")
}

/// The projection failure a failed batch reports.
fn projection_error(error: &RunnerError) -> &ProjectionError {
    match error {
        RunnerError::Projection(error) => error,
        other => panic!("expected a projection failure, got {other:?}"),
    }
}

#[tokio::test]
async fn the_hook_writes_once_per_batch_and_a_failed_hook_retries_the_batch() {
    let store = MemoryStore::new();
    let written = Arc::new(Mutex::new(Written::default()));
    let app = Registry::new(store.clone())
        .projection(BulkTicks {
            buffered: Vec::new(),
            written: Arc::clone(&written),
        })
        .runner_settings(RunnerSettings::default().batch_size(3))
        .build()
        .await
        .unwrap();
    append_ticks(&store, 0..7).await;
    app.catch_up().await.unwrap();
    {
        let written = written.lock().unwrap();
        assert_eq!(written.rows, (0..7).collect::<Vec<_>>());
        assert_eq!(written.flushes, 3, "batches of 3, 3 and 1");
    }

    append_ticks(&store, 7..9).await;
    written.lock().unwrap().fail_next_flush = true;
    let error = app.catch_up().await.unwrap_err();
    assert!(error.to_string().contains("ticks"), "{error}");
    // The hook failed, not a handler; the error names the batch's last event.
    let failure = projection_error(&error);
    assert_eq!(failure.reason, ProjectionFailure::EndBatch, "{error}");
    assert_eq!(failure.event_id, recorded_tick(&store, 8).await.id);
    let status = &app.projection_status()[0];
    let last_error = status.last_error.as_deref().unwrap_or_default();
    assert!(last_error.contains("bulk insert failed"), "{last_error}");
    assert!(
        last_error.contains("the `end_batch` hook failed on the batch ending at this event"),
        "{last_error}"
    );
    app.catch_up().await.unwrap();
    let written = written.lock().unwrap();
    assert_eq!(
        written.rows,
        (0..9).collect::<Vec<_>>(),
        "each event written once"
    );
}

/// What the framed projection saw, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    /// `begin_batch`, with the ticks of the events it was given.
    Begin(Vec<u64>),
    Project(u64),
    End,
}

#[derive(Default)]
pub struct Seen {
    steps: Vec<Step>,
    /// How many of the next `begin_batch` calls fail.
    failing_begins: usize,
}

#[derive(Clone, es_core::Projection)]
#[projection(name = "framed_ticks", events(Tick), begin_batch, end_batch)]
pub struct FramedTicks {
    seen: Arc<Mutex<Seen>>,
}

impl FramedTicks {
    fn steps(&self) -> Vec<Step> {
        std::mem::take(&mut self.seen.lock().unwrap().steps)
    }
}

impl BeginBatch for FramedTicks {
    async fn begin_batch(
        &mut self,
        events: &[RecordedEvent],
        (): &mut (),
    ) -> Result<(), HandlerError> {
        let ticks = events
            .iter()
            .map(|event| {
                assert_eq!(event.event_type, "tick");
                serde_json::from_str::<Tick>(event.payload.get()).unwrap().n
            })
            .collect();
        let mut seen = self.seen.lock().unwrap();
        seen.steps.push(Step::Begin(ticks));
        if seen.failing_begins > 0 {
            seen.failing_begins -= 1;
            return Err(HandlerError::msg("loading the batch's rows failed"));
        }
        Ok(())
    }
}

impl Project<Tick> for FramedTicks {
    async fn project(
        &mut self,
        event: EventEnvelope<Tick>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.seen
            .lock()
            .unwrap()
            .steps
            .push(Step::Project(event.event.n));
        Ok(())
    }
}

impl EndBatch for FramedTicks {
    async fn end_batch(&mut self, (): &mut ()) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().steps.push(Step::End);
        Ok(())
    }
}

async fn framed_app(
    store: &MemoryStore,
    batch_size: usize,
) -> (es_core::App<MemoryStore>, FramedTicks) {
    let projection = FramedTicks {
        seen: Arc::default(),
    };
    let app = Registry::new(store.clone())
        .projection(projection.clone())
        .runner_settings(RunnerSettings::default().batch_size(batch_size))
        .build()
        .await
        .unwrap();
    (app, projection)
}

/// The batch's events, then their handlers, then the end of the batch.
fn batch(ticks: std::ops::Range<u64>) -> Vec<Step> {
    let mut steps = vec![Step::Begin(ticks.clone().collect())];
    steps.extend(ticks.map(Step::Project));
    steps.push(Step::End);
    steps
}

#[tokio::test]
async fn the_begin_hook_sees_each_batch_whole_before_its_events_are_dispatched() {
    let store = MemoryStore::new();
    let (app, projection) = framed_app(&store, 3).await;
    append_ticks(&store, 0..4).await;
    // An event of a type the projection does not list is not handed to the hook.
    append_tock(&store).await;
    append_ticks(&store, 4..7).await;
    app.catch_up().await.unwrap();
    let expected: Vec<Step> = [batch(0..3), batch(3..6), batch(6..7)].concat();
    assert_eq!(projection.steps(), expected, "batches of 3, 3 and 1");

    // Caught up: no empty batch is begun.
    app.catch_up().await.unwrap();
    assert_eq!(projection.steps(), []);
}

#[tokio::test]
async fn only_events_the_projection_does_not_consume_begin_no_batch_but_move_the_checkpoint() {
    let store = MemoryStore::new();
    let (app, projection) = framed_app(&store, 3).await;
    append_ticks(&store, 0..2).await;
    app.catch_up().await.unwrap();
    assert_eq!(projection.steps(), batch(0..2));

    // After the checkpoint there are events, but none the projection consumes: the batch is
    // empty, so no hook runs, yet the checkpoint moves past them to the head.
    append_tock(&store).await;
    append_tock(&store).await;
    let head = store.head().await.unwrap().expect("the log is not empty");
    let before = store.checkpoint("framed_ticks").await.unwrap();
    assert!(before < head, "the tocks lie after the checkpoint");
    app.catch_up().await.unwrap();
    assert_eq!(projection.steps(), []);
    assert_eq!(store.checkpoint("framed_ticks").await.unwrap(), head);
    let status = &app.projection_status()[0];
    assert_eq!(status.checkpoint, head);
    assert_eq!(status.caught_up_to, Some(head));
    assert_eq!(status.events_applied, 2);

    // The next event it consumes is a batch of its own, as usual.
    append_ticks(&store, 2..3).await;
    app.catch_up().await.unwrap();
    assert_eq!(projection.steps(), batch(2..3));
}

#[tokio::test]
async fn a_failed_begin_hook_dispatches_nothing_and_the_batch_is_retried_whole() {
    let store = MemoryStore::new();
    let (app, projection) = framed_app(&store, 3).await;
    append_ticks(&store, 0..5).await;
    projection.seen.lock().unwrap().failing_begins = 2;

    for attempt in 1..=2 {
        let error = app.catch_up().await.unwrap_err();
        assert!(error.to_string().contains("framed_ticks"), "{error}");
        // The hook failed, not a handler; the error names the batch's first event.
        let failure = projection_error(&error);
        assert_eq!(failure.reason, ProjectionFailure::BeginBatch, "{error}");
        assert_eq!(failure.event_id, recorded_tick(&store, 0).await.id);
        let status = &app.projection_status()[0];
        let last_error = status.last_error.as_deref().unwrap_or_default();
        assert!(
            last_error.contains("loading the batch's rows failed"),
            "{status:?}"
        );
        assert!(
            last_error
                .contains("the `begin_batch` hook failed on the batch starting at this event"),
            "{status:?}"
        );
        assert_eq!(status.consecutive_failures, attempt);
        assert_eq!(status.events_applied, 0);
        assert_eq!(status.checkpoint, es_core::LogPosition::START);
        // The hook saw the batch; no handler ran and nothing was committed.
        assert_eq!(projection.steps(), [Step::Begin(vec![0, 1, 2])]);
    }

    // Once the hook stops failing, the same batch goes through, then the rest.
    app.catch_up().await.unwrap();
    let expected: Vec<Step> = [batch(0..3), batch(3..5)].concat();
    assert_eq!(projection.steps(), expected);
    assert_eq!(app.projection_status()[0].events_applied, 5);
}
