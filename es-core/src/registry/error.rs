//! Why a registry cannot be built.

/// A registry that cannot be built: two registrations would make events or streams ambiguous.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The same aggregate name was registered twice.
    #[error("aggregate `{name}` is registered twice")]
    DuplicateAggregate {
        /// The name.
        name: &'static str,
    },
    /// Two aggregates list an event with the same stable name.
    #[error(
        "event type `{event_type}` is claimed by both aggregate `{first}` and aggregate `{second}`"
    )]
    EventTypeClaimedTwice {
        /// The event's stable name.
        event_type: &'static str,
        /// The aggregate registered first.
        first: &'static str,
        /// The aggregate registered second.
        second: &'static str,
    },
    /// An aggregate name that cannot begin a stream id: empty, or holding a `-` (stream ids
    /// are `{name}-{id}` and split at the first `-`), whitespace or a control character.
    /// `#[derive(Aggregate)]` refuses these at compile time; this catches hand-written impls.
    #[error(
        "aggregate name `{name}` {reason}; stream ids are `{{name}}-{{id}}`, split at the first `-`"
    )]
    InvalidAggregateName {
        /// The name.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Two projections share a name (and would share a checkpoint).
    #[error("projection `{name}` is registered twice")]
    DuplicateProjection {
        /// The name.
        name: &'static str,
    },
    /// A projection whose handlers accept any unit of work (so its state lives outside the
    /// store) was registered to keep its checkpoint in a durable store: after a restart it would
    /// start empty, yet believe itself up to date.
    #[error(
        "projection `{name}` keeps its state outside the store (its handlers accept any unit of work), but its checkpoint would be stored durably: after a restart it would start empty yet skip every event already seen. Register it with `Registry::in_memory_projection` (its checkpoint then lives in memory with its state, and it replays the log at each start), or make its handlers write through the store's transaction"
    )]
    ProjectionStateOutsideStore {
        /// The projection's name.
        name: &'static str,
    },
}
