//! [`TableRows`]: a read-model table's rows that one projection batch touches, loaded in one
//! query before the batch and written back in one statement after it.

mod error;
mod shape;
mod table;

pub use error::RowsError;
pub use table::TableRows;
