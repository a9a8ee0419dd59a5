//! The PostgreSQL event store for `es-core`.

mod sql;
mod store;

pub use store::{DEFAULT_SCHEMA, PgTransaction, PostgresOptions, PostgresStore};
