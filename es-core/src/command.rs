//! The command path: load the aggregate, decide, append with an optimistic check, retry.
//!
//! A command is decided against the state loaded at version `v` and appended with
//! `ExpectedVersion::Exact(v)`.
//!
//! # Queues and retries
//!
//! Commands on one stream inside one [`App`](crate::App) take turns: each waits for the ones
//! before it on that stream, then loads the version they wrote, so commands of one process
//! never conflict with each other. If a writer in another process got there first, the store
//! refuses the append and the command is decided again on the fresh state after a short random
//! pause (exponential back-off with full jitter, [`AggregateSettings::retry_backoff`]), up to
//! [`AggregateSettings::max_attempts`] times. A caller that sends its own expected version (an
//! HTTP `If-Match`) gets the conflict back at once instead: the state it saw is gone. (A
//! handler that awaits a command on its own stream would wait for itself: don't.)
//!
//! # Idempotent commands
//!
//! A command id ([`Execute::command_id`](crate::Execute::command_id)) is bound to the command it
//! was made for, as an idempotency key is to its request in Stripe's API:
//!
//! - The id is stored atomically with the command's events, with a fingerprint of the command
//!   (its aggregate, its type and its value: [`CommandFingerprint`](crate::CommandFingerprint)). The same id with the same
//!   command again returns the first result ([`Executed::replayed`]) without deciding again,
//!   however the stream moved since.
//! - The same id with another command (another value, another command type, another
//!   aggregate or aggregate id) is refused with [`CommandError::FingerprintMismatch`] or
//!   [`CommandError::CommandIdReused`], and nothing is appended: never another command's
//!   answer. (Stripe answers such a request with an error too.)
//! - A command the aggregate refused is recorded as refused, with its fingerprint and the
//!   version it was decided at: the same id and command again are refused again, with the same
//!   error (decided anew on the state it was first refused on; a handler whose services answer
//!   differently now gets [`CommandError::ReplayDiverged`]). Like Stripe, which saves the result
//!   of any request that began executing, a refusal is an answer.
//! - Not recorded, so the id stays free for a retry, as Stripe does for requests that failed
//!   validation or conflicted with another: an invalid aggregate id, a missing aggregate
//!   ([`CommandError::NotFound`]), a version conflict, an event that cannot be encoded, and a
//!   store failure.
//! - Unlike Stripe's keys, ids never expire: the record lives as long as the store.

pub mod error;
pub(crate) mod load;
pub(crate) mod outcome;
pub(crate) mod queue;
pub(crate) mod run;
pub(crate) mod settings;

pub use error::CommandError;
pub use outcome::{Executed, Loaded};
pub use settings::{
    AggregateSettings, CommandOptions, DEFAULT_MAX_ATTEMPTS, DEFAULT_RETRY_BACKOFF,
};
