//! The in-memory store. PLACEHOLDER: being written.

/// An in-memory event store.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore;
