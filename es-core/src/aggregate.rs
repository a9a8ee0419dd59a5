//! Aggregates: state rebuilt from events, deciding new events from commands.
//!
//! The user writes the state type, one [`Apply`] impl per event and one [`Handle`] impl per
//! command; `#[derive(Aggregate)]` writes the rest: the event and command sum types, both
//! dispatches and the [`Aggregate`] impl.
//!
//! # Why `handle(&self, command) -> Result<Events<Self>, Error>`
//!
//! Deciding is a pure function of the current state and the command, as in `cqrs-es` and
//! `esrs`: the handler cannot mutate state (only applied events do), so replay always equals
//! the decision, and a handler is unit-testable without a store. Unlike `cqrs-es`, services are
//! not forced on every handler: plain commands use the synchronous [`Handle`]; commands that
//! must await a service (a price lookup) are listed under `async_commands(...)` and implement
//! [`HandleAsync`], which receives the aggregate's `services`. `disintegrate`'s decision over a
//! query of several streams is more general but gives up the per-aggregate consistency boundary
//! that makes optimistic concurrency cheap; we keep the boundary.

use std::fmt;
use std::future::Future;

use serde_json::value::RawValue;

use crate::codec::{DecodeError, EncodeError};
use crate::snapshot::SnapshotCodec;

/// An aggregate: a consistency boundary whose state is a fold of its events.
///
/// Implemented by `#[derive(Aggregate)]`; see the crate docs for the attribute.
pub trait Aggregate: Default + Send + Sync + Sized + 'static {
    /// The stable name; stream ids are `"{NAME}-{id}"`.
    const NAME: &'static str;
    /// The sum of this aggregate's events (generated: `{Aggregate}Event`).
    type Event: EventSet;
    /// The sum of this aggregate's commands (generated: `{Aggregate}Command`).
    type Command: Send + 'static;
    /// The domain error commands are refused with.
    type Error: std::error::Error + Send + Sync + 'static;
    /// What async command handlers may call (a price list, a clock). `()` when unused.
    type Services: Send + Sync + 'static;
    /// How the state is snapshotted, if at all.
    type Snapshot: SnapshotCodec<Self>;

    /// Folds one event of the aggregate's event set into the state, by calling the [`Apply`]
    /// impl of the event it holds. Must not fail: events are facts.
    ///
    /// Named apart from [`Apply::apply`] so that `state.apply(&event)` on a user's event is
    /// never ambiguous when both traits are imported.
    fn apply_event(&mut self, event: &Self::Event);

    /// Decides the events one of the aggregate's commands produces, or refuses it, by calling
    /// the [`Handle`] or [`HandleAsync`] impl of the command it holds.
    fn handle_command<'a>(
        &'a self,
        command: Self::Command,
        services: &'a Self::Services,
    ) -> impl Future<Output = Result<Events<Self>, Self::Error>> + Send + 'a;
}

/// How an aggregate changes when event `E` happened. One impl per listed event.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists event `{E}` but does not implement `Apply<{E}>`",
    label = "this event needs an `Apply` impl on `{Self}`",
    note = "add `impl es_core::Apply<{E}> for {Self} {{ fn apply(&mut self, event: &{E}) {{ /* change the state */ }} }}`"
)]
pub trait Apply<E> {
    /// Folds `event` into the state.
    fn apply(&mut self, event: &E);
}

/// How an aggregate decides command `C`. One impl per command listed under `commands(...)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists command `{C}` but does not implement `Handle<{C}>`",
    label = "this command needs a `Handle` impl on `{Self}`",
    note = "add `impl es_core::Handle<{C}> for {Self} {{ fn handle(&self, command: {C}) -> Result<es_core::Events<Self>, Self::Error> {{ .. }} }}`, or list it under `async_commands(...)` and implement `HandleAsync<{C}>`"
)]
pub trait Handle<C>: Aggregate {
    /// Decides the events `command` produces from the current state, or refuses it.
    ///
    /// # Errors
    /// The aggregate's domain error when a rule refuses the command.
    fn handle(&self, command: C) -> Result<Events<Self>, Self::Error>;
}

/// How an aggregate decides command `C` with the help of its services (it may await).
/// One impl per command listed under `async_commands(...)`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` lists async command `{C}` but does not implement `HandleAsync<{C}>`",
    label = "this command needs a `HandleAsync` impl on `{Self}`",
    note = "add `impl es_core::HandleAsync<{C}> for {Self} {{ async fn handle_async(&self, command: {C}, services: &Self::Services) -> Result<es_core::Events<Self>, Self::Error> {{ .. }} }}`"
)]
pub trait HandleAsync<C>: Aggregate {
    /// Decides the events `command` produces, consulting `services`, or refuses it.
    ///
    /// Named apart from [`Handle::handle`] so that `state.handle(command)` is never ambiguous
    /// on an aggregate with both kinds of command.
    fn handle_async(
        &self,
        command: C,
        services: &Self::Services,
    ) -> impl Future<Output = Result<Events<Self>, Self::Error>> + Send;
}

/// The sum of an aggregate's events, generated by `#[derive(Aggregate)]`.
///
/// Encodes and decodes by each event's stable name and schema version, never by variant order.
pub trait EventSet: Clone + fmt::Debug + PartialEq + Send + Sync + Sized + 'static {
    /// The stable names of every member, in the order listed.
    const NAMES: &'static [&'static str];

    /// The stable name of this event.
    fn event_type(&self) -> &'static str;

    /// The schema version this event is written with.
    fn schema_version(&self) -> u32;

    /// The JSON payload of this event.
    ///
    /// # Errors
    /// [`EncodeError`] when the event's `Serialize` impl fails.
    fn encode(&self) -> Result<Box<RawValue>, EncodeError>;

    /// Decodes a stored event by its name and version.
    ///
    /// # Errors
    /// [`DecodeError`] for an unknown name or a payload that does not decode.
    fn decode(
        event_type: &str,
        schema_version: u32,
        payload: &RawValue,
    ) -> Result<Self, DecodeError>;
}

/// The events a command decided, in order. Empty is allowed: the command changes nothing.
pub struct Events<A: Aggregate> {
    events: Vec<A::Event>,
}

impl<A: Aggregate> Events<A> {
    /// No events.
    #[must_use]
    pub const fn none() -> Self {
        Self { events: Vec::new() }
    }

    /// Exactly one event.
    #[must_use]
    pub fn one(event: impl Into<A::Event>) -> Self {
        Self {
            events: vec![event.into()],
        }
    }

    /// These events followed by `event`.
    #[must_use]
    pub fn and(mut self, event: impl Into<A::Event>) -> Self {
        self.events.push(event.into());
        self
    }

    /// Appends `event`.
    pub fn push(&mut self, event: impl Into<A::Event>) {
        self.events.push(event.into());
    }

    /// How many events.
    #[must_use]
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// The events, in order.
    #[must_use]
    pub fn as_slice(&self) -> &[A::Event] {
        &self.events
    }

    /// The events, in order.
    #[must_use]
    pub fn into_vec(self) -> Vec<A::Event> {
        self.events
    }
}

impl<A: Aggregate> Default for Events<A> {
    fn default() -> Self {
        Self::none()
    }
}

impl<A: Aggregate> Clone for Events<A> {
    fn clone(&self) -> Self {
        Self {
            events: self.events.clone(),
        }
    }
}

impl<A: Aggregate> fmt::Debug for Events<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.events).finish()
    }
}

impl<A: Aggregate> PartialEq for Events<A> {
    fn eq(&self, other: &Self) -> bool {
        self.events == other.events
    }
}

impl<A: Aggregate> From<Vec<A::Event>> for Events<A> {
    fn from(events: Vec<A::Event>) -> Self {
        Self { events }
    }
}

impl<A: Aggregate> FromIterator<A::Event> for Events<A> {
    fn from_iter<I: IntoIterator<Item = A::Event>>(iter: I) -> Self {
        Self {
            events: iter.into_iter().collect(),
        }
    }
}

impl<A: Aggregate> IntoIterator for Events<A> {
    type Item = A::Event;
    type IntoIter = std::vec::IntoIter<A::Event>;
    fn into_iter(self) -> Self::IntoIter {
        self.events.into_iter()
    }
}

/// Replays `events` onto a default state: what loading an aggregate does, without a store.
pub fn fold<'a, A: Aggregate>(events: impl IntoIterator<Item = &'a A::Event>) -> A {
    let mut state = A::default();
    for event in events {
        state.apply_event(event);
    }
    state
}
