//! [`RowsError`]: what went wrong with a [`TableRows`](super::TableRows).

use std::fmt;

/// What went wrong with a [`TableRows`](crate::TableRows), naming the table (and the row, where there is one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RowsError {
    /// A handler asked for a row the batch did not load.
    #[error(
        "row {key} of {table} was not loaded for this batch: load every key the handlers read \
         in the projection's `begin_batch` hook (`TableRows::load`)"
    )]
    NotLoaded {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it.
        key: String,
    },
    /// The table does not exist (or is not visible on the connection's search path).
    #[error("table {table} does not exist")]
    NoSuchTable {
        /// The table.
        table: String,
    },
    /// The key column, or a field of a row, is not a column of the table.
    #[error("{table} has no column `{column}`")]
    NoSuchColumn {
        /// The table.
        table: String,
        /// The column a row or the key named.
        column: String,
    },
    /// The key column has no unique index of its own, which the upsert needs (an index that
    /// is deferrable, partial or not yet valid does not count: `ON CONFLICT` cannot use it).
    #[error(
        "{table} has no unique index on `{column}` alone: declare it `PRIMARY KEY` or `UNIQUE` \
         (not deferrable), the rows are written with `ON CONFLICT ({column})`"
    )]
    KeyNotUnique {
        /// The table.
        table: String,
        /// The key column.
        column: String,
    },
    /// The key column is a generated column, whose values cannot be written.
    #[error("the key column `{column}` of {table} is generated: its values cannot be written")]
    KeyGenerated {
        /// The table.
        table: String,
        /// The key column.
        column: String,
    },
    /// A row or a key could not be serialised.
    #[error("cannot serialise row {key} of {table}")]
    Encode {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it (`(the batch)` for the batch's keys).
        key: String,
        /// The serialisation error.
        #[source]
        source: serde_json::Error,
    },
    /// A row does not serialise as a JSON object.
    #[error(
        "row {key} of {table} does not serialise as a JSON object: a row type is a struct (or \
         a map) whose fields are the table's columns"
    )]
    NotAnObject {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it.
        key: String,
    },
    /// A stored row could not be deserialised into the row type.
    #[error("cannot read row {key} of {table} into the row type")]
    Decode {
        /// The table.
        table: String,
        /// The key, as `Debug` prints it.
        key: String,
        /// The decoding error.
        #[source]
        source: sqlx::Error,
    },
    /// The database refused a statement.
    #[error("{action} {table} failed")]
    Database {
        /// The table.
        table: String,
        /// What was being done: "reading the columns of", "loading rows of", ...
        action: &'static str,
        /// The database error.
        #[source]
        source: sqlx::Error,
    },
}

/// The error for a row of `table` the batch does not hold.
pub(super) fn not_loaded<Q: fmt::Debug + ?Sized>(table: &str, key: &Q) -> RowsError {
    RowsError::NotLoaded {
        table: table.to_owned(),
        key: format!("{key:?}"),
    }
}
