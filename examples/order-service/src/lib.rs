//! The example order service: the `orders-v1` domain of the workload on `es-core`, served over
//! HTTP with `axum`, stored in an SQLite file by default or in PostgreSQL.
//!
//! - [`domain`]: the `Order` aggregate; [`product`]: the `Product` catalogue with stock.
//! - [`read_model`]: the `order_summary` projection in memory; [`summary_table`]: the same read
//!   model as SQL tables, written in the projection runner's transaction.
//! - [`shipment`]: the `Shipment` aggregate and the `shipping` process manager (a paid order
//!   gets a shipment, exactly once).
//! - [`backend`]: opening SQLite or PostgreSQL and wiring the aggregate and projection.
//! - [`http`]: the routes; [`server`]: serving them with timeouts, a connection cap and a
//!   bounded shutdown.

pub mod backend;
pub mod domain;
pub mod http;
pub mod product;
pub mod read_model;
pub mod server;
pub mod shipment;
pub mod summary_table;
