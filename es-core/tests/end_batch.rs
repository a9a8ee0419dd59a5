//! The end-of-batch hook: handlers buffer, the hook writes once per batch before the commit; a
//! failing hook retries the whole batch and nothing is written twice.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use std::sync::{Arc, Mutex};

use es_core::{
    AppendRequest, EndBatch, EventEnvelope, EventStore as _, ExpectedVersion, HandlerError,
    MemoryStore, NewEvent, Project, Registry, RunnerSettings, StreamId, event,
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
    let status = &app.projection_status()[0];
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("bulk insert failed")
    );
    app.catch_up().await.unwrap();
    let written = written.lock().unwrap();
    assert_eq!(
        written.rows,
        (0..9).collect::<Vec<_>>(),
        "each event written once"
    );
}
