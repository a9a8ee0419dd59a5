//! The order service demo: runs a few commands on the in-memory store and prints the events,
//! the order's state and the `order_summary` read model.
//!
//! The HTTP service (axum, SQLite by default, PostgreSQL on request) replaces this demo.

use std::error::Error;
use std::io::Write as _;

use es_core::{MemoryStore, Registry};
use futures_util::TryStreamExt as _;
use order_service::domain::{AddItem, Order, PayOrder, PlaceOrder, ShipOrder};
use order_service::read_model::OrderSummary;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let summary = OrderSummary::new();
    let rows = summary.rows();
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Order>()
        .projection(summary)
        .build()
        .await?;

    let id = uuid::Uuid::now_v7();
    app.execute::<Order>(
        id,
        PlaceOrder {
            customer_id: "c1".into(),
        },
    )
    .await?;
    app.execute::<Order>(
        id,
        AddItem {
            sku: "apple".into(),
            quantity: 3,
            unit_price_cents: 40,
        },
    )
    .await?;
    app.execute::<Order>(
        id,
        AddItem {
            sku: "pear".into(),
            quantity: 1,
            unit_price_cents: 90,
        },
    )
    .await?;
    app.execute::<Order>(id, PayOrder { amount_cents: 210 })
        .await?;
    let shipped = app.execute::<Order>(id, ShipOrder).await?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "events of order {id}:")?;
    let stream_id = shipped.stream_id.clone();
    let events: Vec<_> =
        es_core::EventStore::load(app.store(), &stream_id, es_core::StreamVersion::INITIAL)
            .try_collect()
            .await?;
    for event in &events {
        writeln!(
            out,
            "  v{} {} {}",
            event.stream_version,
            event.event_type,
            event.payload.get()
        )?;
    }
    writeln!(
        out,
        "state at version {}: {}",
        shipped.version,
        serde_json::to_string(&shipped.state)?
    )?;

    app.catch_up().await?;
    let rows = rows.read().map_err(|_| "read model lock poisoned")?;
    writeln!(out, "order_summary: {}", serde_json::to_string(&*rows)?)?;
    Ok(())
}
