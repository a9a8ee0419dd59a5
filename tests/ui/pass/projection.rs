//! A projection dispatching stored events to its handlers, in the default unit of work `()`
//! and in a store's own unit of work.

use es_core::{
    Dispatch, EventEnvelope, HandlerError, Project, Projection, ProjectionError, RecordedEvent,
    event,
};
use serde_json::json;

#[event(name = "order.placed")]
pub struct OrderPlaced {
    pub customer: String,
}

#[event(version = 2, upcast(cents))]
pub struct OrderPaid {
    pub cents: u64,
}

fn cents(mut payload: serde_json::Value) -> Result<serde_json::Value, es_core::upcast::UpcastError> {
    payload["cents"] = json!(payload["euros"].as_u64().unwrap_or(0) * 100);
    Ok(payload)
}

#[derive(Default, es_core::Projection)]
#[projection(events(OrderPlaced, OrderPaid))]
pub struct OrderSummary {
    customers: Vec<String>,
    cents: u64,
}

impl Project<OrderPlaced> for OrderSummary {
    async fn project(
        &mut self,
        event: EventEnvelope<OrderPlaced>,
        _: &mut (),
    ) -> Result<(), HandlerError> {
        self.customers.push(event.event.customer);
        Ok(())
    }
}

impl Project<OrderPaid> for OrderSummary {
    async fn project(&mut self, event: EventEnvelope<OrderPaid>, _: &mut ()) -> Result<(), HandlerError> {
        if event.event.cents == 0 {
            return Err(HandlerError::msg("free orders are not allowed"));
        }
        self.cents += event.event.cents;
        Ok(())
    }
}

/// A store's unit of work: what the handlers write.
#[derive(Default)]
pub struct Batch {
    rows: Vec<String>,
}

impl Project<OrderPlaced, Batch> for OrderSummary {
    async fn project(&mut self, event: EventEnvelope<OrderPlaced>, tx: &mut Batch) -> Result<(), HandlerError> {
        tx.rows.push(format!("placed by {}", event.event.customer));
        Ok(())
    }
}

impl Project<OrderPaid, Batch> for OrderSummary {
    async fn project(&mut self, event: EventEnvelope<OrderPaid>, tx: &mut Batch) -> Result<(), HandlerError> {
        tx.rows.push(format!("paid {}", event.event.cents));
        Ok(())
    }
}

fn recorded(position: u64, event_type: &str, version: u32, payload: serde_json::Value) -> RecordedEvent {
    serde_json::from_value(json!({
        "id": "0190b3f5-7c1e-7000-8000-000000000001",
        "stream_id": "order-1",
        "stream_version": position,
        "position": position,
        "transaction": position,
        "event_type": event_type,
        "schema_version": version,
        "payload": payload,
        "metadata": {},
        "recorded_at": "2026-01-01T00:00:00Z",
    }))
    .expect("a recorded event")
}

fn main() {
    assert_eq!(OrderSummary::NAME, "order_summary");
    assert_eq!(OrderSummary::EVENT_TYPES, ["order.placed", "order_paid"]);

    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let events = [
        recorded(1, "order.placed", 1, json!({ "customer": "ada" })),
        recorded(2, "order_paid", 1, json!({ "euros": 3 })),
        recorded(3, "order_paid", 2, json!({ "cents": 50 })),
        recorded(4, "not_listed", 1, json!(null)),
    ];
    let mut summary = OrderSummary::default();
    let mut batch = Batch::default();
    for event in &events {
        runtime.block_on(summary.dispatch(event, &mut ())).expect("projected");
        runtime
            .block_on(Dispatch::<Batch>::dispatch(&mut summary, event, &mut batch))
            .expect("projected");
    }
    assert_eq!(summary.customers, ["ada"]);
    assert_eq!(summary.cents, 350);
    assert_eq!(batch.rows, ["placed by ada", "paid 300", "paid 50"]);

    // A payload that does not decode, and a handler that refuses: typed errors naming both.
    let corrupt = recorded(5, "order_paid", 2, json!({ "cents": "many" }));
    let error: ProjectionError =
        runtime.block_on(summary.dispatch(&corrupt, &mut ())).expect_err("corrupt");
    assert!(error.to_string().contains("order_summary"), "{error}");
    let refused = recorded(6, "order_paid", 2, json!({ "cents": 0 }));
    let error = runtime.block_on(summary.dispatch(&refused, &mut ())).expect_err("refused");
    assert!(error.to_string().contains("order_paid"), "{error}");

    // Both hooks, reached through `Dispatch` as the runner reaches them.
    let mut framed = framed::CachedOrders::default();
    let placed = &events[..1];
    runtime.block_on(framed.run_begin_batch(placed, &mut ())).expect("begun");
    runtime.block_on(framed.dispatch(&placed[0], &mut ())).expect("projected");
    runtime.block_on(framed.run_end_batch(&mut ())).expect("ended");
    assert_eq!(framed.log, ["load order-1", "place ada", "write order-1"]);
}

/// A projection that buffers rows and writes them once per batch.
mod bulk {
    use es_core::{EndBatch, EventEnvelope, HandlerError, Project, Reset};

    use super::OrderPlaced;

    #[derive(Default, es_core::Projection)]
    #[projection(name = "bulk_orders", events(OrderPlaced), end_batch, reset)]
    pub struct BulkOrders {
        buffered: Vec<String>,
        written: Vec<String>,
    }

    impl Project<OrderPlaced> for BulkOrders {
        async fn project(
            &mut self,
            event: EventEnvelope<OrderPlaced>,
            (): &mut (),
        ) -> Result<(), HandlerError> {
            self.buffered.push(event.stream_id.to_string());
            Ok(())
        }
    }

    impl EndBatch for BulkOrders {
        async fn end_batch(&mut self, (): &mut ()) -> Result<(), HandlerError> {
            self.written.append(&mut self.buffered);
            Ok(())
        }
    }

    impl Reset for BulkOrders {
        async fn reset(&mut self, (): &mut ()) -> Result<(), HandlerError> {
            self.written.clear();
            Ok(())
        }
    }

    fn runs<P: es_core::Dispatch<()>>(_: P) {
        assert!(P::RESETS, "the reset flag makes the projection rebuildable");
    }

    pub const CHECK: fn() = || runs(BulkOrders::default());
}

/// A projection that loads the rows a batch touches before its events, and writes them after.
mod framed {
    use es_core::{BeginBatch, EndBatch, EventEnvelope, HandlerError, Project, RecordedEvent};

    use super::OrderPlaced;

    #[derive(Default, es_core::Projection)]
    #[projection(name = "cached_orders", events(OrderPlaced), begin_batch, end_batch)]
    pub struct CachedOrders {
        pub log: Vec<String>,
    }

    impl BeginBatch for CachedOrders {
        async fn begin_batch(&mut self, events: &[RecordedEvent], (): &mut ()) -> Result<(), HandlerError> {
            for event in events {
                self.log.push(format!("load {}", event.stream_id));
            }
            Ok(())
        }
    }

    impl Project<OrderPlaced> for CachedOrders {
        async fn project(
            &mut self,
            event: EventEnvelope<OrderPlaced>,
            (): &mut (),
        ) -> Result<(), HandlerError> {
            self.log.push(format!("place {}", event.event.customer));
            Ok(())
        }
    }

    impl EndBatch for CachedOrders {
        async fn end_batch(&mut self, (): &mut ()) -> Result<(), HandlerError> {
            self.log.push("write order-1".to_owned());
            Ok(())
        }
    }
}
