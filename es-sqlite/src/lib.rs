//! The embedded SQLite event store (work in progress).
