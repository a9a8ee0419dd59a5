//! Process managers (policies): handlers that react to events by executing commands on other
//! aggregates.
//!
//! A process manager is a `#[derive(Projection)]` type whose `Project` impls take
//! [`Commands`] as their unit of work, registered with
//! [`Registry::process_manager`](crate::Registry::process_manager). The runner drives it like
//! any projection: from its checkpoint, in batches, under its lease. Each command it executes
//! carries an idempotency id derived from the event's id (and the command's place among the
//! commands for that event), the event's id as causation id, and the event's correlation id
//! (or its id). So a replay after a crash between a command and the checkpoint, or a rebuild,
//! returns the first result (or the first refusal) instead of executing twice: exactly once
//! per event. These ids name their command by construction, so they are recorded without a
//! fingerprint: a process manager whose code changed between the first run and a replay still
//! replays, instead of being told the id was used for another command.
//!
//! ```
//! use es_core::{event, Aggregate, Apply, Events, Handle, HandlerError, MemoryStore, Project};
//! use es_core::{EventEnvelope, EventStore, Registry, process::Commands};
//!
//! #[event] pub struct OrderPaid { pub order: String }
//! #[event] pub struct ShipmentCreated { pub order: String }
//!
//! #[derive(Clone)] pub struct Pay { pub order: String }
//! #[derive(Clone)] pub struct CreateShipment { pub order: String }
//!
//! #[derive(Debug, thiserror::Error)] #[error("never")] pub struct Never;
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(name = "order", error = Never, events(OrderPaid), commands(Pay))]
//! pub struct Order;
//! impl Apply<OrderPaid> for Order { fn apply(&mut self, _: &OrderPaid) {} }
//! impl Handle<Pay> for Order {
//!     fn handle(&self, c: Pay) -> Result<Events<Self>, Never> { Ok(Events::one(OrderPaid { order: c.order })) }
//! }
//!
//! #[derive(Default, Aggregate)]
//! #[aggregate(name = "shipment", error = Never, events(ShipmentCreated), commands(CreateShipment))]
//! pub struct Shipment { created: bool }
//! impl Apply<ShipmentCreated> for Shipment { fn apply(&mut self, _: &ShipmentCreated) { self.created = true } }
//! impl Handle<CreateShipment> for Shipment {
//!     fn handle(&self, c: CreateShipment) -> Result<Events<Self>, Never> {
//!         Ok(if self.created { Events::none() } else { Events::one(ShipmentCreated { order: c.order }) })
//!     }
//! }
//!
//! /// When an order is paid, a shipment is created.
//! #[derive(es_core::Projection)]
//! #[projection(name = "shipping", events(OrderPaid))]
//! pub struct Shipping;
//!
//! impl<S: EventStore> Project<OrderPaid, Commands<S>> for Shipping {
//!     async fn project(&mut self, paid: EventEnvelope<OrderPaid>, commands: &mut Commands<S>)
//!         -> Result<(), HandlerError>
//!     {
//!         let order = paid.event.order;
//!         commands.execute::<Shipment>(&order, CreateShipment { order: order.clone() }).await?;
//!         Ok(())
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let app = Registry::new(MemoryStore::new())
//!     .aggregate::<Order>()
//!     .aggregate::<Shipment>()
//!     .process_manager(Shipping)
//!     .build()
//!     .await?;
//! app.execute::<Order>("o1", Pay { order: "o1".into() }).await?;
//! app.catch_up().await?;
//! assert!(app.load::<Shipment>("o1").await?.state.created);
//! # Ok(()) }
//! ```

use std::fmt;

use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::app::App;
use crate::command::error::CommandError;
use crate::command::outcome::Executed;
use crate::runner::batch::{BatchStep, CheckpointKeeper};
use crate::store::checkpoint::CheckpointStore;
use crate::store::error::BackendError;
use crate::store::event_store::EventStore;
use crate::store::lease::Lease;
use crate::stream::LogPosition;

/// What a process manager's handlers receive: the application's command path, with each
/// command's idempotency, causation and correlation ids taken from the event being handled.
pub struct Commands<S> {
    app: App<S>,
    process: &'static str,
    event_id: Uuid,
    correlation_id: Uuid,
    /// Which step of the batch issues the commands: `""` for an event's handler,
    /// `"begin_batch/"` or `"end_batch/"` for a batch hook, so a hook's commands never take
    /// the ids of its event's handler's.
    step: &'static str,
    issued: u32,
}

impl<S> fmt::Debug for Commands<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Commands")
            .field("process", &self.process)
            .field("event_id", &self.event_id)
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

impl<S> Commands<S> {
    /// The command path of `process`, before it is pointed at an event: commands sent then
    /// (from a reset hook) get ids of their own (a fresh UUID v7 to derive them from), never
    /// another batch's.
    fn new(app: App<S>, process: &'static str) -> Self {
        let unique = Uuid::now_v7();
        Self {
            app,
            process,
            event_id: unique,
            correlation_id: unique,
            step: "",
            issued: 0,
        }
    }

    /// Points the commands that follow at the event of `step`: their causation, correlation
    /// and idempotency ids come from it (and from the step, for a batch hook's).
    fn point_at(&mut self, step: BatchStep<'_>) {
        let (event, step) = match step {
            BatchStep::Begin(event) => (event, "begin_batch/"),
            BatchStep::Event(event) => (event, ""),
            BatchStep::End(event) => (event, "end_batch/"),
        };
        let event_id = *event.id.as_uuid();
        self.event_id = event_id;
        self.correlation_id = event.metadata.correlation_id.unwrap_or(event_id);
        self.step = step;
        self.issued = 0;
    }
}

impl<S: EventStore> Commands<S> {
    /// Executes `command` on aggregate `id` of type `A`, exactly once for this event: the
    /// `n`-th command a handler issues for an event always gets the same idempotency id, so
    /// on a replay it returns the first result.
    ///
    /// # Errors
    /// The command's [`CommandError`]; return it from the handler (`?`) and the event is
    /// retried with back-off.
    pub async fn execute<A: Aggregate>(
        &mut self,
        id: impl fmt::Display,
        command: impl Into<A::Command> + Clone + Send + 'static,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let command_id = self.next_command_id();
        self.app
            .execute::<A>(id, command)
            .command_id_by_construction(command_id)
            .causation_id(self.event_id)
            .correlation_id(self.correlation_id)
            .await
    }

    /// The application, for reads (loading aggregates) inside a handler.
    #[must_use]
    pub const fn app(&self) -> &App<S> {
        &self.app
    }

    /// A name-based (version 5) UUID of the process, the event, the step and the command's
    /// place. An event handler's ids are those of earlier releases (`"{process}/{n}"`).
    fn next_command_id(&mut self) -> Uuid {
        let name = format!("{}/{}{}", self.process, self.step, self.issued);
        self.issued += 1;
        Uuid::new_v5(&self.event_id, name.as_bytes())
    }
}

/// Where a process manager's unit of work and checkpoint live: its unit of work is the
/// application's command path ([`Commands`]), pointed at each event before it is dispatched;
/// its checkpoint is kept in the store under its lease. The commands commit as they are
/// executed, so nothing rolls back: after a failed event, the checkpoint of the events before
/// it is committed (their commands already took effect, and their ids would answer a replay
/// from their records anyway).
#[derive(Debug, Default)]
pub(crate) struct ProcessKeeper;

impl<S: CheckpointStore> CheckpointKeeper<App<S>> for ProcessKeeper {
    type Transaction = Commands<S>;
    const ROLLS_BACK: bool = false;
    const LEASED: bool = true;
    /// A process manager has no read model: a rebuild replays its events, and its commands
    /// answer from their records (the first result or refusal), so nothing runs twice.
    const REPLAYS: bool = true;
    const ISSUES_COMMANDS: bool = true;

    async fn checkpoint(
        &self,
        app: &App<S>,
        projection: &'static str,
    ) -> Result<LogPosition, BackendError> {
        app.store().checkpoint(projection).await
    }

    async fn begin(
        &self,
        app: &App<S>,
        projection: &'static str,
    ) -> Result<Commands<S>, BackendError> {
        Ok(Commands::new(app.clone(), projection))
    }

    async fn commit(
        &mut self,
        app: &App<S>,
        _: Commands<S>,
        projection: &'static str,
        at: LogPosition,
        lease: &Lease,
    ) -> Result<(), BackendError> {
        let store = app.store();
        let unit = store.begin(projection).await?;
        store.commit_fenced(unit, projection, at, lease).await
    }

    fn before(commands: &mut Commands<S>, step: BatchStep<'_>) {
        commands.point_at(step);
    }
}
