//! Why a projection or process manager worker stopped.
use std::error::Error as StdError;
use std::fmt;

use crate::projection::error::ProjectionError;
use crate::store::error::{BackendError, LoadError};

/// Why a projection batch failed; the batch was rolled back and will be retried.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunnerError {
    /// An event could not be decoded, its handler failed, or a batch hook failed.
    #[error(transparent)]
    Projection(ProjectionError),
    /// Reading the log failed.
    #[error("projection `{projection}` could not read the event log")]
    Read {
        /// The projection's name.
        projection: &'static str,
        /// Why.
        #[source]
        source: LoadError,
    },
    /// The checkpoint or the unit of work failed.
    #[error("projection `{projection}` could not open, commit or checkpoint its batch")]
    Store {
        /// The projection's name.
        projection: &'static str,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// No projection of that name is registered.
    #[error("no projection named `{name}` is registered (registered: {registered})")]
    UnknownProjection {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        registered: String,
    },
    /// Another worker holds, took over or was handed the projection's lease: this one commits
    /// nothing more under it.
    #[error("projection `{projection}`: {loss}")]
    LeaseLost {
        /// The projection's name.
        projection: &'static str,
        /// How.
        loss: LeaseLoss,
    },
    /// A rebuild waited for the projection's lease longer than it was allowed to.
    #[error(
        "projection `{projection}` was not handed over within {} s: worker `{holder}` holds its lease; stop that worker, or rebuild with takeover",
        waited.as_secs()
    )]
    LeaseWait {
        /// The projection's name.
        projection: &'static str,
        /// The worker holding the lease when the wait ended.
        holder: String,
        /// How long the rebuild waited.
        waited: std::time::Duration,
    },
    /// The projection has no reset hook, so a rebuild cannot clear its read model.
    #[error(
        "projection `{projection}` cannot be rebuilt: it has no reset hook to clear its read model; add the `reset` flag to its #[projection(...)] and implement es_core::Reset"
    )]
    NoReset {
        /// The projection's name.
        projection: &'static str,
    },
    /// The projection's reset hook failed; nothing was cleared or reset.
    #[error("the reset hook of projection `{projection}` failed; nothing was cleared")]
    Reset {
        /// The projection's name.
        projection: &'static str,
        /// What the hook returned.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// Catching up went on pass after pass: process managers kept issuing commands whose events
    /// they (or each other) consume.
    #[error("catching up did not settle after {passes} passes over the projections")]
    Unsettled {
        /// The passes made.
        passes: u32,
    },
}

/// How a worker lost (or never had) a projection's lease.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseLoss {
    /// Another worker holds it.
    HeldBy {
        /// The worker holding it.
        owner: String,
    },
    /// Another worker took it over: the epoch moved on.
    TakenOver,
    /// Another worker (a rebuild) asked for it, and this one released it.
    HandedOver {
        /// Who asked.
        to: String,
    },
}

impl fmt::Display for LeaseLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::HeldBy { owner } => write!(f, "leased by another worker, `{owner}`"),
            Self::TakenOver => f.write_str("the lease was taken over by another worker"),
            Self::HandedOver { to } => write!(f, "the lease was handed over to `{to}`"),
        }
    }
}
