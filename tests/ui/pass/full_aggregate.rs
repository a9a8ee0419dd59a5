//! A complete aggregate: events (one versioned, with upcasters), commands, an async command
//! that uses the aggregate's services, and JSON snapshots; run, not only compiled.

use es_core::codec::DecodeError;
use es_core::snapshot::SnapshotCodec;
use es_core::upcast::UpcastError;
use es_core::{Aggregate, Apply, Event, EventSet, Events, Handle, HandleAsync, event};
use serde_json::{Value, json};

#[event]
pub struct OrderPlaced {
    pub customer: String,
}

#[event(name = "order.item_added")]
pub struct ItemAdded {
    pub sku: String,
    pub quantity: u32,
}

/// v1 stored whole units under `amount`; v2 stores cents.
fn paid_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let units = payload
        .get("amount")
        .and_then(Value::as_u64)
        .ok_or(UpcastError::missing_field("amount"))?;
    payload["amount_cents"] = json!(units * 100);
    Ok(payload)
}

/// v3 adds the currency; everything before was in euros.
fn paid_v2_to_v3(mut payload: Value) -> Result<Value, UpcastError> {
    payload["currency"] = json!("EUR");
    Ok(payload)
}

#[event(name = "order.paid", version = 3, upcast(paid_v1_to_v2, paid_v2_to_v3))]
pub struct OrderPaid {
    pub amount_cents: u64,
    pub currency: String,
}

#[event]
pub struct OrderCancelled;

#[event(version = 2)]
pub struct ItemPriced(pub String, pub u64);

pub struct PlaceOrder {
    pub customer: String,
}

pub struct AddItem {
    pub sku: String,
    pub quantity: u32,
}

pub struct PayOrder {
    pub amount_cents: u64,
}

pub struct PriceItem {
    pub sku: String,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub enum OrderError {
    #[error("the order is already placed")]
    AlreadyPlaced,
    #[error("the order is not placed")]
    NotPlaced,
}

/// What `PriceItem` asks for a price.
pub struct Pricing {
    pub cents_per_item: u64,
}

#[derive(Default, Debug, PartialEq, serde::Serialize, serde::Deserialize, es_core::Aggregate)]
#[aggregate(
    name = "order",
    error = OrderError,
    events(OrderPlaced, ItemAdded, OrderPaid, OrderCancelled, ItemPriced),
    commands(PlaceOrder, AddItem, PayOrder),
    async_commands(PriceItem),
    services = Pricing,
    snapshot = 1,
)]
pub struct Order {
    placed: bool,
    items: u32,
    paid_cents: u64,
    cancelled: bool,
    last_price: u64,
}

impl Apply<OrderPlaced> for Order {
    fn apply(&mut self, _: &OrderPlaced) {
        self.placed = true;
    }
}

impl Apply<ItemAdded> for Order {
    fn apply(&mut self, event: &ItemAdded) {
        self.items += event.quantity;
    }
}

impl Apply<OrderPaid> for Order {
    fn apply(&mut self, event: &OrderPaid) {
        self.paid_cents += event.amount_cents;
    }
}

impl Apply<OrderCancelled> for Order {
    fn apply(&mut self, _: &OrderCancelled) {
        self.cancelled = true;
    }
}

impl Apply<ItemPriced> for Order {
    fn apply(&mut self, event: &ItemPriced) {
        self.last_price = event.1;
    }
}

impl Handle<PlaceOrder> for Order {
    fn handle(&self, command: PlaceOrder) -> Result<Events<Self>, OrderError> {
        if self.placed {
            return Err(OrderError::AlreadyPlaced);
        }
        Ok(Events::one(OrderPlaced {
            customer: command.customer,
        }))
    }
}

impl Handle<AddItem> for Order {
    fn handle(&self, command: AddItem) -> Result<Events<Self>, OrderError> {
        if !self.placed {
            return Err(OrderError::NotPlaced);
        }
        Ok(Events::one(ItemAdded {
            sku: command.sku,
            quantity: command.quantity,
        }))
    }
}

impl Handle<PayOrder> for Order {
    fn handle(&self, command: PayOrder) -> Result<Events<Self>, OrderError> {
        Ok(Events::one(OrderPaid {
            amount_cents: command.amount_cents,
            currency: "EUR".to_owned(),
        })
        .and(OrderCancelled))
    }
}

impl HandleAsync<PriceItem> for Order {
    async fn handle_async(
        &self,
        command: PriceItem,
        services: &Pricing,
    ) -> Result<Events<Self>, OrderError> {
        tokio::task::yield_now().await;
        Ok(Events::one(ItemPriced(command.sku, services.cents_per_item)))
    }
}

fn decide(order: &Order, command: impl Into<OrderCommand>) -> Result<Vec<OrderEvent>, OrderError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let pricing = Pricing { cents_per_item: 250 };
    runtime
        .block_on(Aggregate::handle_command(order, command.into(), &pricing))
        .map(Events::into_vec)
}

fn main() {
    assert_eq!(<Order as Aggregate>::NAME, "order");
    assert_eq!(
        OrderEvent::NAMES,
        ["order_placed", "order.item_added", "order.paid", "order_cancelled", "item_priced"]
    );
    assert_eq!(<OrderPaid as Event>::VERSION, 3);
    assert_eq!(<OrderPaid as Event>::UPCASTERS.len(), 2);
    assert_eq!(<ItemPriced as Event>::UPCASTERS.len(), 0);

    // Decide and apply.
    let mut order = Order::default();
    for command in [
        OrderCommand::from(PlaceOrder { customer: "ada".to_owned() }),
        AddItem { sku: "book".to_owned(), quantity: 2 }.into(),
        PriceItem { sku: "book".to_owned() }.into(),
        PayOrder { amount_cents: 500 }.into(),
    ] {
        for event in decide(&order, command).expect("accepted") {
            Aggregate::apply_event(&mut order, &event);
        }
    }
    assert_eq!(
        order,
        Order { placed: true, items: 2, paid_cents: 500, cancelled: true, last_price: 250 }
    );
    assert_eq!(
        decide(&order, PlaceOrder { customer: "bob".to_owned() }),
        Err(OrderError::AlreadyPlaced)
    );

    // Encoding by stable name and version.
    let paid = OrderEvent::from(OrderPaid { amount_cents: 700, currency: "EUR".to_owned() });
    assert_eq!(paid.event_type(), "order.paid");
    assert_eq!(paid.schema_version(), 3);
    let payload = paid.encode().expect("encodes");
    let decoded = OrderEvent::decode("order.paid", 3, &payload).expect("decodes");
    assert_eq!(decoded, paid);
    let tuple = OrderEvent::from(ItemPriced("pen".to_owned(), 3));
    let payload = tuple.encode().expect("encodes");
    assert_eq!(payload.get(), r#"["pen",3]"#);
    assert_eq!(OrderEvent::decode("item_priced", 2, &payload).expect("decodes"), tuple);

    // Version 1 rows are upcast through both steps.
    let v1 = serde_json::value::to_raw_value(&json!({ "amount": 2 })).expect("json");
    assert_eq!(
        OrderEvent::decode("order.paid", 1, &v1).expect("upcasts"),
        OrderEvent::OrderPaid(OrderPaid { amount_cents: 200, currency: "EUR".to_owned() })
    );
    let unknown = OrderEvent::decode("order.refunded", 1, &v1);
    assert!(matches!(unknown, Err(DecodeError::UnknownType { .. })), "{unknown:?}");

    // Serde: tagged by name and version.
    let json = serde_json::to_value(&paid).expect("serialises");
    assert_eq!(
        json,
        json!({ "type": "order.paid", "version": 3,
                "payload": { "amount_cents": 700, "currency": "EUR" } })
    );
    let back: OrderEvent = serde_json::from_value(json).expect("deserialises");
    assert_eq!(back, paid);
    let old: OrderEvent = serde_json::from_value(
        json!({ "type": "order.paid", "version": 1, "payload": { "amount": 1 } }),
    )
    .expect("deserialises old versions");
    assert_eq!(
        old,
        OrderEvent::OrderPaid(OrderPaid { amount_cents: 100, currency: "EUR".to_owned() })
    );

    // Snapshots: JSON at schema version 1.
    type Snapshots = <Order as Aggregate>::Snapshot;
    assert_eq!(<Snapshots as SnapshotCodec<Order>>::VERSION, Some(1));
    let state = <Snapshots as SnapshotCodec<Order>>::encode(&order).expect("snapshot");
    assert_eq!(<Snapshots as SnapshotCodec<Order>>::decode(&state).expect("restore"), order);
}
