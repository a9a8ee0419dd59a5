//! Every rule of the `Order` aggregate, given/when/then, plus a property test that random
//! command sequences through the in-memory store give the state a fold of their events gives.
#![allow(clippy::expect_used)] // test code: a failed setup step should stop the test

use es_core::EventLog;
use es_core::testing::given;
use es_core::{Aggregate, MemoryStore, Registry, StreamVersion};
use futures_util::TryStreamExt as _;
use order_service::domain::*;
use proptest::prelude::*;

fn placed() -> OrderEvent {
    OrderPlaced {
        customer_id: "c1".into(),
    }
    .into()
}

fn added(sku: &str, quantity: u32, unit_price_cents: u64) -> OrderEvent {
    ItemAdded {
        sku: sku.into(),
        quantity,
        unit_price_cents,
    }
    .into()
}

fn paid(amount_cents: u64) -> OrderEvent {
    OrderPaid { amount_cents }.into()
}

fn cancelled() -> OrderEvent {
    OrderCancelled {
        reason: "changed mind".into(),
    }
    .into()
}

fn add(sku: &str, quantity: u32, unit_price_cents: u64) -> AddItem {
    AddItem {
        sku: sku.into(),
        quantity,
        unit_price_cents,
    }
}

// PlaceOrder: only on a new stream.

#[test]
fn place_order_on_a_new_stream_records_order_placed() {
    let state = given::<Order>([])
        .when(PlaceOrder {
            customer_id: "c1".into(),
        })
        .then([OrderPlaced {
            customer_id: "c1".into(),
        }]);
    assert_eq!(state.status, OrderStatus::Placed);
    assert_eq!(state.customer_id, "c1");
}

#[test]
fn place_order_twice_is_refused() {
    given::<Order>([placed()])
        .when(PlaceOrder {
            customer_id: "c2".into(),
        })
        .then_error(OrderError::AlreadyPlaced);
}

// AddItem: placed, not paid, not cancelled; quantity > 0.

#[test]
fn add_item_to_a_placed_order() {
    let state = given::<Order>([placed()])
        .when(add("apple", 2, 50))
        .then([ItemAdded {
            sku: "apple".into(),
            quantity: 2,
            unit_price_cents: 50,
        }]);
    assert_eq!(state.total_cents(), 100);
    assert_eq!(state.units(), 2);
}

#[test]
fn adding_the_same_sku_again_adds_to_its_quantity() {
    let state = given::<Order>([placed(), added("apple", 2, 50)])
        .when(add("apple", 1, 70))
        .then([added("apple", 1, 70)]);
    assert_eq!(state.units(), 3);
    assert_eq!(state.total_cents(), 170);
}

#[test]
fn add_item_before_placing_is_refused() {
    given::<Order>([])
        .when(add("apple", 1, 1))
        .then_error(OrderError::NotPlaced);
}

#[test]
fn add_item_to_a_paid_order_is_refused() {
    given::<Order>([placed(), added("apple", 1, 10), paid(10)])
        .when(add("pear", 1, 1))
        .then_error(OrderError::AlreadyPaid);
}

#[test]
fn add_item_to_a_cancelled_order_is_refused() {
    given::<Order>([placed(), cancelled()])
        .when(add("pear", 1, 1))
        .then_error(OrderError::Cancelled);
}

#[test]
fn add_item_with_zero_quantity_is_refused() {
    given::<Order>([placed()])
        .when(add("apple", 0, 10))
        .then_error(OrderError::ZeroQuantity);
}

#[test]
fn add_item_whose_amount_overflows_is_refused() {
    given::<Order>([placed()])
        .when(add("gold", u32::MAX, u64::MAX))
        .then_error(OrderError::TooLarge);
    given::<Order>([placed(), added("gold", 1, u64::MAX)])
        .when(add("silver", 1, 1))
        .then_error(OrderError::TooLarge);
}

// RemoveItem: the sku is in the order (and the order is open).

#[test]
fn remove_an_item_in_the_order() {
    let state = given::<Order>([placed(), added("apple", 2, 50), added("pear", 1, 30)])
        .when(RemoveItem {
            sku: "apple".into(),
        })
        .then([ItemRemoved {
            sku: "apple".into(),
        }]);
    assert_eq!(state.total_cents(), 30);
}

#[test]
fn remove_an_item_not_in_the_order_is_refused() {
    given::<Order>([placed(), added("apple", 2, 50)])
        .when(RemoveItem { sku: "kiwi".into() })
        .then_error(OrderError::UnknownSku { sku: "kiwi".into() });
}

#[test]
fn remove_an_item_from_a_paid_order_is_refused() {
    given::<Order>([placed(), added("apple", 2, 50), paid(100)])
        .when(RemoveItem {
            sku: "apple".into(),
        })
        .then_error(OrderError::AlreadyPaid);
}

// PayOrder: amount equals the total; at least one item.

#[test]
fn pay_the_exact_total() {
    let state = given::<Order>([placed(), added("apple", 2, 50), added("pear", 1, 30)])
        .when(PayOrder { amount_cents: 130 })
        .then([OrderPaid { amount_cents: 130 }]);
    assert_eq!(state.status, OrderStatus::Paid);
}

#[test]
fn pay_the_wrong_amount_is_refused() {
    given::<Order>([placed(), added("apple", 2, 50)])
        .when(PayOrder { amount_cents: 99 })
        .then_error(OrderError::WrongAmount {
            total_cents: 100,
            paid_cents: 99,
        });
}

#[test]
fn pay_an_empty_order_is_refused() {
    given::<Order>([placed()])
        .when(PayOrder { amount_cents: 0 })
        .then_error(OrderError::Empty);
    given::<Order>([
        placed(),
        added("apple", 1, 5),
        ItemRemoved {
            sku: "apple".into(),
        }
        .into(),
    ])
    .when(PayOrder { amount_cents: 0 })
    .then_error(OrderError::Empty);
}

#[test]
fn pay_twice_or_after_cancelling_is_refused() {
    given::<Order>([placed(), added("apple", 1, 5), paid(5)])
        .when(PayOrder { amount_cents: 5 })
        .then_error(OrderError::AlreadyPaid);
    given::<Order>([placed(), added("apple", 1, 5), cancelled()])
        .when(PayOrder { amount_cents: 5 })
        .then_error(OrderError::Cancelled);
}

// ShipOrder: paid, not shipped.

#[test]
fn ship_a_paid_order() {
    let state = given::<Order>([placed(), added("apple", 1, 5), paid(5)])
        .when(ShipOrder)
        .then([OrderShipped]);
    assert_eq!(state.status, OrderStatus::Shipped);
}

#[test]
fn ship_an_unpaid_order_is_refused() {
    given::<Order>([placed(), added("apple", 1, 5)])
        .when(ShipOrder)
        .then_error(OrderError::NotPaid);
    given::<Order>([])
        .when(ShipOrder)
        .then_error(OrderError::NotPlaced);
}

#[test]
fn ship_twice_is_refused() {
    given::<Order>([placed(), added("apple", 1, 5), paid(5), OrderShipped.into()])
        .when(ShipOrder)
        .then_error(OrderError::AlreadyShipped);
}

// CancelOrder: not shipped.

#[test]
fn cancel_a_placed_or_paid_order() {
    for history in [
        vec![placed()],
        vec![placed(), added("apple", 1, 5), paid(5)],
    ] {
        let state = given::<Order>(history)
            .when(CancelOrder {
                reason: "changed mind".into(),
            })
            .then([cancelled()]);
        assert_eq!(state.status, OrderStatus::Cancelled);
    }
}

#[test]
fn cancel_a_shipped_order_is_refused() {
    given::<Order>([placed(), added("apple", 1, 5), paid(5), OrderShipped.into()])
        .when(CancelOrder {
            reason: "late".into(),
        })
        .then_error(OrderError::AlreadyShipped);
}

#[test]
fn cancel_twice_or_before_placing_is_refused() {
    given::<Order>([placed(), cancelled()])
        .when(CancelOrder {
            reason: "again".into(),
        })
        .then_error(OrderError::Cancelled);
    given::<Order>([])
        .when(CancelOrder {
            reason: "never".into(),
        })
        .then_error(OrderError::NotPlaced);
}

// Replay through a store equals folding the decided events.

#[derive(Clone, Debug)]
enum AnyCommand {
    Place(PlaceOrder),
    Add(AddItem),
    Remove(RemoveItem),
    Pay { exact: bool, amount_cents: u64 },
    Ship,
    Cancel(CancelOrder),
}

fn any_command() -> impl Strategy<Value = AnyCommand> {
    let sku = prop::sample::select(vec!["apple", "pear", "kiwi"]).prop_map(String::from);
    prop_oneof![
        "[a-c]{1,2}".prop_map(|customer_id| AnyCommand::Place(PlaceOrder { customer_id })),
        (sku.clone(), 0u32..4, 0u64..1_000).prop_map(|(sku, quantity, unit_price_cents)| {
            AnyCommand::Add(AddItem {
                sku,
                quantity,
                unit_price_cents,
            })
        }),
        sku.prop_map(|sku| AnyCommand::Remove(RemoveItem { sku })),
        (any::<bool>(), 0u64..2_000).prop_map(|(exact, amount_cents)| AnyCommand::Pay {
            exact,
            amount_cents
        }),
        Just(AnyCommand::Ship),
        "[a-z]{0,8}".prop_map(|reason| AnyCommand::Cancel(CancelOrder { reason })),
    ]
}

async fn replay_matches_fold(commands: Vec<AnyCommand>) {
    let app = Registry::new(MemoryStore::new())
        .aggregate::<Order>()
        .build()
        .await
        .expect("registry builds");
    let id = "prop";
    let mut decided: Vec<OrderEvent> = Vec::new();
    for command in commands {
        let result = match command {
            AnyCommand::Place(c) => app.execute::<Order>(id, c).await,
            AnyCommand::Add(c) => app.execute::<Order>(id, c).await,
            AnyCommand::Remove(c) => app.execute::<Order>(id, c).await,
            AnyCommand::Pay {
                exact,
                amount_cents,
            } => {
                let amount_cents = if exact {
                    app.load::<Order>(id)
                        .await
                        .expect("loads")
                        .state
                        .total_cents()
                } else {
                    amount_cents
                };
                app.execute::<Order>(id, PayOrder { amount_cents }).await
            }
            AnyCommand::Ship => app.execute::<Order>(id, ShipOrder).await,
            AnyCommand::Cancel(c) => app.execute::<Order>(id, c).await,
        };
        match result {
            Ok(executed) => decided.extend(executed.events),
            Err(error) => assert!(
                error.rejection().is_some(),
                "only domain rejections are expected, got {error}"
            ),
        }
    }
    let folded: Order = es_core::aggregate::fold(&decided);
    let loaded = app.load::<Order>(id).await.expect("loads");
    assert_eq!(loaded.state, folded);
    assert_eq!(loaded.version, StreamVersion(decided.len() as u64));
    let stream_id = es_core::StreamId::for_aggregate(Order::NAME, id).expect("valid id");
    let stored: Vec<_> = app
        .store()
        .load(&stream_id, StreamVersion::INITIAL)
        .try_collect()
        .await
        .expect("stream loads");
    let versions: Vec<u64> = stored.iter().map(|e| e.stream_version.get()).collect();
    assert_eq!(versions, (1..=decided.len() as u64).collect::<Vec<_>>());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn random_command_sequences_replay_to_the_folded_state(commands in prop::collection::vec(any_command(), 0..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        runtime.block_on(replay_matches_fold(commands));
    }
}

/// `OrderError::CODES` (what the OpenAPI document lists) holds every refusal's code, once.
#[test]
fn every_refusal_code_is_listed() {
    let every = [
        OrderError::AlreadyPlaced,
        OrderError::NotPlaced,
        OrderError::AlreadyPaid,
        OrderError::Cancelled,
        OrderError::ZeroQuantity,
        OrderError::UnknownSku { sku: "a".into() },
        OrderError::Empty,
        OrderError::WrongAmount {
            total_cents: 1,
            paid_cents: 2,
        },
        OrderError::NotPaid,
        OrderError::AlreadyShipped,
        OrderError::TooLarge,
    ];
    // Fails to compile when a variant is added, so this list stays whole.
    for refusal in &every {
        match refusal {
            OrderError::AlreadyPlaced
            | OrderError::NotPlaced
            | OrderError::AlreadyPaid
            | OrderError::Cancelled
            | OrderError::ZeroQuantity
            | OrderError::UnknownSku { .. }
            | OrderError::Empty
            | OrderError::WrongAmount { .. }
            | OrderError::NotPaid
            | OrderError::AlreadyShipped
            | OrderError::TooLarge => {}
        }
    }
    let mut codes: Vec<&str> = every.iter().map(OrderError::code).collect();
    codes.sort_unstable();
    let mut listed = OrderError::CODES.to_vec();
    listed.sort_unstable();
    assert_eq!(codes, listed);
}
