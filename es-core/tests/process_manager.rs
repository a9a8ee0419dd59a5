//! Process managers: a paid order creates a shipment once, with causation and correlation
//! ids carried through; replays and rebuilds do not create it twice.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::EventLog;
use es_core::process::Commands;
use es_core::{
    Aggregate, Apply, EventEnvelope, EventStore, Events, Handle, HandlerError, MemoryStore,
    Project, Registry, StreamId, StreamVersion, event,
};
use futures_util::TryStreamExt as _;
use uuid::Uuid;

#[event]
pub struct OrderPaid {
    pub order: String,
}

#[event]
pub struct ShipmentCreated {
    pub order: String,
}

#[derive(Clone)]
pub struct Pay(pub String);

#[derive(Clone)]
pub struct CreateShipment(pub String);

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refused {
    #[error("the shipment exists")]
    Exists,
    #[error("order {0} cannot be shipped")]
    Unshippable(String),
}

#[derive(Default, Aggregate)]
#[aggregate(name = "order", error = Refused, events(OrderPaid), commands(Pay))]
pub struct Order;

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, _: &OrderPaid) {}
}

impl Handle<Pay> for Order {
    fn handle(&self, command: Pay) -> Result<Events<Self>, Refused> {
        Ok(Events::one(OrderPaid { order: command.0 }))
    }
}

#[derive(Default, Aggregate)]
#[aggregate(name = "shipment", error = Refused, events(ShipmentCreated), commands(CreateShipment))]
pub struct Shipment {
    created: bool,
}

impl Apply<ShipmentCreated> for Shipment {
    fn apply(&mut self, _: &ShipmentCreated) {
        self.created = true;
    }
}

impl Handle<CreateShipment> for Shipment {
    /// Refuses a second shipment: only idempotency keeps a replay from failing here.
    fn handle(&self, command: CreateShipment) -> Result<Events<Self>, Refused> {
        if self.created {
            return Err(Refused::Exists);
        }
        if command.0 == "poison" {
            return Err(Refused::Unshippable(command.0));
        }
        Ok(Events::one(ShipmentCreated { order: command.0 }))
    }
}

#[derive(es_core::Projection)]
#[projection(name = "shipping", events(OrderPaid))]
pub struct Shipping;

impl<S: EventStore> Project<OrderPaid, Commands<S>> for Shipping {
    async fn project(
        &mut self,
        paid: EventEnvelope<OrderPaid>,
        commands: &mut Commands<S>,
    ) -> Result<(), HandlerError> {
        let order = paid.event.order;
        commands
            .execute::<Shipment>(&order, CreateShipment(order.clone()))
            .await?;
        Ok(())
    }
}

async fn app() -> es_core::App<MemoryStore> {
    Registry::new(MemoryStore::new())
        .aggregate::<Order>()
        .aggregate::<Shipment>()
        .process_manager(Shipping)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_paid_order_creates_one_shipment_with_causation_and_correlation() {
    let app = app().await;
    let correlation = Uuid::now_v7();
    let paid = app
        .execute::<Order>("o1", Pay("o1".into()))
        .correlation_id(correlation)
        .await
        .unwrap();
    app.execute::<Order>("o2", Pay("o2".into())).await.unwrap();
    app.catch_up().await.unwrap();

    let shipment = app.load::<Shipment>("o1").await.unwrap();
    assert!(shipment.state.created);
    assert_eq!(shipment.version, StreamVersion(1));
    let paid_event: Vec<_> = app
        .store()
        .load(&paid.stream_id, StreamVersion::INITIAL)
        .try_collect()
        .await
        .unwrap();
    let shipped: Vec<_> = app
        .store()
        .load(
            &StreamId::new("shipment-o1").unwrap(),
            StreamVersion::INITIAL,
        )
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        shipped[0].metadata.causation_id,
        Some(*paid_event[0].id.as_uuid())
    );
    assert_eq!(shipped[0].metadata.correlation_id, Some(correlation));

    // Replayed from the start: the shipments are not created again (the aggregate would refuse).
    let replayed = app.rebuild("shipping", |_| {}).await.unwrap();
    assert_eq!(replayed, 2);
    assert_eq!(
        app.load::<Shipment>("o1").await.unwrap().version,
        StreamVersion(1)
    );
    assert_eq!(
        app.load::<Shipment>("o2").await.unwrap().version,
        StreamVersion(1)
    );
}

#[tokio::test]
async fn a_refused_command_stops_the_process_manager_at_that_event() {
    let app = app().await;
    app.execute::<Order>("o1", Pay("o1".into())).await.unwrap();
    app.execute::<Order>("poison", Pay("poison".into()))
        .await
        .unwrap();
    app.execute::<Order>("o3", Pay("o3".into())).await.unwrap();
    let error = app.catch_up().await.unwrap_err();
    assert!(error.to_string().contains("shipping"), "{error}");
    let status = &app.projection_status()[0];
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("order poison cannot be shipped"),
        "{status:?}"
    );
    // Stopped at the poison event: the one before it ran, the one after it did not.
    assert!(app.load::<Shipment>("o1").await.unwrap().state.created);
    assert!(!app.load::<Shipment>("o3").await.unwrap().state.created);
    let report = app.projection_report().await.unwrap();
    assert_eq!(
        report[0].events_behind, 2,
        "the poison event is not skipped"
    );
}

/// Shipments counted by a projection registered *before* the process manager that creates
/// them.
#[derive(Clone, Default, es_core::Projection)]
#[projection(name = "shipments_seen", events(ShipmentCreated))]
pub struct ShipmentsSeen {
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Project<ShipmentCreated> for ShipmentsSeen {
    async fn project(
        &mut self,
        created: EventEnvelope<ShipmentCreated>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        self.seen.lock().unwrap().push(created.event.order);
        Ok(())
    }
}

#[tokio::test]
async fn one_catch_up_runs_until_nothing_moves_whatever_the_registration_order() {
    let seen = ShipmentsSeen::default();
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Order>()
        .aggregate::<Shipment>()
        .projection(seen.clone())
        .process_manager(Shipping)
        .build()
        .await
        .unwrap();
    app.execute::<Order>("o1", Pay("o1".into())).await.unwrap();
    app.execute::<Order>("o2", Pay("o2".into())).await.unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(
        *seen.seen.lock().unwrap(),
        ["o1", "o2"],
        "the projection missed the shipments the process manager created in the same catch-up"
    );
}

// A process manager whose batch hooks send commands too.

#[event]
pub struct Noted;

#[derive(Clone)]
pub struct Note;

#[derive(Default, Aggregate)]
#[aggregate(name = "notebook", error = Refused, events(Noted), commands(Note))]
pub struct Notebook {
    notes: u32,
}

impl Apply<Noted> for Notebook {
    fn apply(&mut self, _: &Noted) {
        self.notes += 1;
    }
}

impl Handle<Note> for Notebook {
    fn handle(&self, _: Note) -> Result<Events<Self>, Refused> {
        Ok(Events::one(Noted))
    }
}

/// Notes each batch's start and end, and each paid order, in three notebooks.
#[derive(es_core::Projection)]
#[projection(name = "audit", events(OrderPaid), begin_batch, end_batch)]
pub struct Audit;

impl<S: EventStore> es_core::BeginBatch<Commands<S>> for Audit {
    async fn begin_batch(
        &mut self,
        _: &[es_core::RecordedEvent],
        commands: &mut Commands<S>,
    ) -> Result<(), HandlerError> {
        commands.execute::<Notebook>("begin", Note).await?;
        Ok(())
    }
}

impl<S: EventStore> Project<OrderPaid, Commands<S>> for Audit {
    async fn project(
        &mut self,
        _: EventEnvelope<OrderPaid>,
        commands: &mut Commands<S>,
    ) -> Result<(), HandlerError> {
        commands.execute::<Notebook>("event", Note).await?;
        Ok(())
    }
}

impl<S: EventStore> es_core::EndBatch<Commands<S>> for Audit {
    async fn end_batch(&mut self, commands: &mut Commands<S>) -> Result<(), HandlerError> {
        commands.execute::<Notebook>("end", Note).await?;
        Ok(())
    }
}

/// A batch hook's commands take ids of their own, derived from the batch's first or last
/// event and the hook: they never collide with the handlers' commands of that event, and a
/// replay of the batch answers them from their records instead of sending them again.
#[tokio::test]
async fn a_process_managers_batch_hooks_send_their_commands_once_per_batch() {
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Order>()
        .aggregate::<Notebook>()
        .process_manager(Audit)
        .build()
        .await
        .unwrap();
    app.execute::<Order>("o1", Pay("o1".into())).await.unwrap();
    app.execute::<Order>("o2", Pay("o2".into())).await.unwrap();
    app.catch_up().await.unwrap();
    let notes = |app: es_core::App<MemoryStore>| async move {
        let mut notes = Vec::new();
        for book in ["begin", "event", "end"] {
            notes.push(app.load::<Notebook>(book).await.unwrap().state.notes);
        }
        notes
    };
    assert_eq!(notes(app.clone()).await, [1, 2, 1]);

    let replayed = app.rebuild("audit", |_| {}).await.unwrap();
    assert_eq!(replayed, 2);
    assert_eq!(
        notes(app.clone()).await,
        [1, 2, 1],
        "a replay sent commands again"
    );
}
