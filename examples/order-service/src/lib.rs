//! The example order service: the `orders-v1` domain of the workload on `es-core`.
//!
//! [`domain`] holds the `Order` aggregate; [`read_model`] the `order_summary` projection.

pub mod domain;
pub mod read_model;
