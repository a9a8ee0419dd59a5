//! Projections: read models built from the global log.
//!
//! A projection is a type with `#[derive(Projection)]` and
//! `#[projection(name = "...", events(A, B, ...))]`, plus one [`Project`] impl per listed event.
//! The derive implements [`Projection`] (its name and the event names it consumes, so the store
//! returns only those and nothing else is decoded) and [`Dispatch`] (decode by name, call the
//! handler).
//!
//! Handlers receive the store's unit of work (`Tx`): on PostgreSQL a transaction in which the
//! runner also advances the checkpoint, which is what makes a projection exactly-once. In memory
//! the unit of work is `()`, the default.
//!
//! Two optional hooks frame each batch in that same unit of work, each enabled by a flag in the
//! attribute: [`BeginBatch`] (`begin_batch`) sees all the batch's events before any is
//! dispatched, so a projection can load in one query the rows its handlers will change;
//! [`EndBatch`] (`end_batch`) runs after the last one and before the commit, so a projection
//! can write what its handlers buffered in one statement.
//!
//! A third, [`Reset`] (`reset`), clears the read model for a rebuild
//! ([`App::rebuild`](crate::App::rebuild)): in one unit of work with the checkpoint's reset,
//! under the rebuild's lease, so no worker can write between the clearing and the replay. A
//! projection without it cannot be rebuilt.

use std::future::Future;

use crate::event::{Event, EventEnvelope, RecordedEvent};

pub mod error;

pub use error::{HandlerError, ProjectionError, ProjectionFailure};

/// A hook the runner calls before a batch's events are dispatched, given all of them, in the
/// same unit of work: for a projection that loads, in one query, the rows its handlers will
/// change. A handler that needs a row's current state would otherwise make one round trip per
/// event; with this hook the projection loads every row the batch touches at once and its
/// handlers work on what it loaded. Enabled by the `begin_batch` flag:
/// `#[projection(name = "...", events(...), begin_batch)]`.
///
/// It is called once per non-empty batch, with the batch's events in log order (only those of
/// the types the projection lists). If it fails, no event of the batch is dispatched, nothing of
/// it is committed, and the whole batch is retried: the hook sees the same events again.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` has the `begin_batch` flag but does not implement `BeginBatch<{Tx}>`",
    label = "this flag needs a `BeginBatch` impl on `{Self}`",
    note = "add `impl es_core::BeginBatch<{Tx}> for {Self} {{ async fn begin_batch(&mut self, events: &[es_core::RecordedEvent], tx: &mut {Tx}) -> Result<(), es_core::HandlerError> {{ .. }} }}`, or remove the flag"
)]
pub trait BeginBatch<Tx = ()>: Projection {
    /// Prepares for a batch before its events are dispatched, given all of them: for a
    /// projection that loads, in one query, the rows its handlers will change.
    fn begin_batch(
        &mut self,
        events: &[RecordedEvent],
        tx: &mut Tx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A hook the runner calls after a batch's events and before its commit, in the same unit of
/// work: for a projection that buffers rows in its handlers and writes them in bulk (one
/// multi-row statement per batch, which is what makes rebuilds fast). Enabled by the
/// `end_batch` flag: `#[projection(name = "...", events(...), end_batch)]`.
///
/// If it fails, the whole batch is retried (on a store whose unit of work cannot roll back, the
/// handlers see the batch's events again, so they should only buffer).
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` has the `end_batch` flag but does not implement `EndBatch<{Tx}>`",
    label = "this flag needs an `EndBatch` impl on `{Self}`",
    note = "add `impl es_core::EndBatch<{Tx}> for {Self} {{ async fn end_batch(&mut self, tx: &mut {Tx}) -> Result<(), es_core::HandlerError> {{ .. }} }}`, or remove the flag"
)]
pub trait EndBatch<Tx = ()>: Projection {
    /// Writes what the batch's handlers buffered.
    fn end_batch(&mut self, tx: &mut Tx) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A hook the runner calls when the projection is rebuilt, before it replays the log from the
/// start: clear the read model. It runs in the same unit of work that moves the checkpoint back
/// to the start, committed only while the rebuild holds the projection's lease, so the read
/// model and its checkpoint are reset together or not at all, and no worker that lost the
/// lease can write in between. Enabled by the `reset` flag:
/// `#[projection(name = "...", events(...), reset)]`.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` has the `reset` flag but does not implement `Reset<{Tx}>`",
    label = "this flag needs a `Reset` impl on `{Self}`",
    note = "add `impl es_core::Reset<{Tx}> for {Self} {{ async fn reset(&mut self, tx: &mut {Tx}) -> Result<(), es_core::HandlerError> {{ /* empty the read model */ }} }}`, or remove the flag"
)]
pub trait Reset<Tx = ()>: Projection {
    /// Empties the read model, for a rebuild.
    fn reset(&mut self, tx: &mut Tx) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// A read model's identity: its checkpoint name and the events it consumes.
pub trait Projection: Send + 'static {
    /// The stable name; the checkpoint is kept under it.
    const NAME: &'static str;
    /// The stable names of the consumed events.
    const EVENT_TYPES: &'static [&'static str];

    /// Whether every handler accepts any unit of work (they are generic over it), so that none
    /// writes through a store's transaction: the registry then refuses to keep the
    /// projection's checkpoint in a durable store. `#[derive(Projection)]` answers it for a
    /// projection that is not generic itself; `false` otherwise.
    #[doc(hidden)]
    #[must_use]
    fn __accepts_any_unit_of_work() -> bool {
        false
    }
}

/// How a projection handles event `E` inside the store's unit of work `Tx`.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` lists event `{E}` but does not implement `Project<{E}, {Tx}>`",
    label = "this event needs a `Project` impl on `{Self}`",
    note = "add `impl es_core::Project<{E}, {Tx}> for {Self} {{ async fn project(&mut self, event: es_core::EventEnvelope<{E}>, tx: &mut {Tx}) -> Result<(), es_core::HandlerError> {{ .. }} }}`"
)]
pub trait Project<E: Event, Tx = ()>: Projection {
    /// Updates the read model with one event.
    fn project(
        &mut self,
        event: EventEnvelope<E>,
        tx: &mut Tx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Decoding and dispatch of raw events to a projection's handlers; generated by the derive.
#[diagnostic::on_unimplemented(
    message = "projection `{Self}` cannot run on a store whose unit of work is `{Tx}`",
    label = "`{Self}` lacks a `Project<_, {Tx}>` impl for an event it lists (or a `BeginBatch<{Tx}>`, `EndBatch<{Tx}>` or `Reset<{Tx}>` impl for its `begin_batch`, `end_batch` or `reset` flag), or is not `#[derive(Projection)]`",
    note = "every event in `#[projection(events(...))]` needs `impl es_core::Project<Event, {Tx}> for {Self}`, the `begin_batch` flag `impl es_core::BeginBatch<{Tx}> for {Self}`, the `end_batch` flag `impl es_core::EndBatch<{Tx}> for {Self}`, and the `reset` flag `impl es_core::Reset<{Tx}> for {Self}`; the `help` lines name the missing one"
)]
pub trait Dispatch<Tx>: Projection {
    /// Decodes `event` and calls the matching [`Project`] handler. Events not listed are
    /// ignored (stores filter them out already).
    ///
    /// The hooks below are named `run_*` so they never shadow the user's [`BeginBatch`],
    /// [`EndBatch`] and [`Reset`] methods when both traits are in scope.
    fn dispatch<'a>(
        &'a mut self,
        event: &'a RecordedEvent,
        tx: &'a mut Tx,
    ) -> impl Future<Output = Result<(), ProjectionError>> + Send + 'a;

    /// Runs the projection's [`BeginBatch`] hook on a batch's `events` if it has one (the
    /// `begin_batch` flag); nothing otherwise.
    fn run_begin_batch<'a>(
        &'a mut self,
        events: &'a [RecordedEvent],
        tx: &'a mut Tx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        let _ = (events, tx);
        std::future::ready(Ok(()))
    }

    /// Whether the projection has a [`Reset`] hook (the `reset` flag), so it can be rebuilt.
    const RESETS: bool = false;

    /// Runs the projection's [`Reset`] hook if it has one (the `reset` flag); nothing otherwise.
    fn run_reset<'a>(
        &'a mut self,
        tx: &'a mut Tx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        let _ = tx;
        std::future::ready(Ok(()))
    }

    /// Runs the projection's [`EndBatch`] hook if it has one (the `end_batch` flag); nothing
    /// otherwise.
    fn run_end_batch<'a>(
        &'a mut self,
        tx: &'a mut Tx,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send + 'a {
        let _ = tx;
        std::future::ready(Ok(()))
    }
}
