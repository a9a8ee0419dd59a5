//! Generated dispatch and (de)serialisation against the handwritten equivalent.
//!
//! `cargo bench -p es-core --bench dispatch`. Each pair runs the same work on the same data: the
//! generated side through `Aggregate::apply_event` / `EventSet::{encode, decode}`, the handwritten
//! side through a `match` over a hand-written enum and plain `serde_json` calls.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)] // a benchmark binary

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use es_core::{Aggregate, Apply, EventSet, Events, Handle, event};
use serde_json::value::RawValue;

#[event]
pub struct Placed {
    pub customer_id: String,
}

#[event]
pub struct Added {
    pub sku: String,
    pub quantity: u32,
    pub unit_price_cents: u64,
}

#[event]
pub struct Paid {
    pub amount_cents: u64,
}

#[derive(Clone)]
pub struct Noop;

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(Default, Aggregate)]
#[aggregate(name = "bench_order", error = Never, events(Placed, Added, Paid), commands(Noop))]
pub struct Generated {
    units: u64,
    total: u64,
    paid: bool,
}

impl Apply<Placed> for Generated {
    fn apply(&mut self, _: &Placed) {}
}
impl Apply<Added> for Generated {
    fn apply(&mut self, e: &Added) {
        self.units += u64::from(e.quantity);
        self.total += u64::from(e.quantity) * e.unit_price_cents;
    }
}
impl Apply<Paid> for Generated {
    fn apply(&mut self, _: &Paid) {
        self.paid = true;
    }
}
impl Handle<Noop> for Generated {
    fn handle(&self, _: Noop) -> Result<Events<Self>, Never> {
        Ok(Events::none())
    }
}

/// The handwritten side: an enum, a `match`, plain serde.
#[derive(Clone)]
enum Hand {
    Placed(Placed),
    Added(Added),
    Paid(Paid),
}

#[derive(Default)]
struct HandState {
    units: u64,
    total: u64,
    paid: bool,
}

impl HandState {
    fn apply(&mut self, event: &Hand) {
        match event {
            Hand::Placed(_) => {}
            Hand::Added(e) => {
                self.units += u64::from(e.quantity);
                self.total += u64::from(e.quantity) * e.unit_price_cents;
            }
            Hand::Paid(_) => self.paid = true,
        }
    }
}

fn hand_encode(event: &Hand) -> Box<RawValue> {
    match event {
        Hand::Placed(e) => serde_json::value::to_raw_value(e),
        Hand::Added(e) => serde_json::value::to_raw_value(e),
        Hand::Paid(e) => serde_json::value::to_raw_value(e),
    }
    .unwrap()
}

fn hand_decode(name: &str, payload: &RawValue) -> Hand {
    match name {
        "placed" => Hand::Placed(serde_json::from_str(payload.get()).unwrap()),
        "added" => Hand::Added(serde_json::from_str(payload.get()).unwrap()),
        "paid" => Hand::Paid(serde_json::from_str(payload.get()).unwrap()),
        other => panic!("unknown {other}"),
    }
}

fn history() -> Vec<Hand> {
    let mut events = vec![Hand::Placed(Placed {
        customer_id: "customer-1".into(),
    })];
    for i in 0..1_000u64 {
        events.push(Hand::Added(Added {
            sku: format!("sku-{}", i % 17),
            quantity: 2,
            unit_price_cents: 125 + i,
        }));
    }
    events.push(Hand::Paid(Paid { amount_cents: 1 }));
    events
}

fn generated_of(hand: &Hand) -> GeneratedEvent {
    match hand.clone() {
        Hand::Placed(e) => e.into(),
        Hand::Added(e) => e.into(),
        Hand::Paid(e) => e.into(),
    }
}

fn benches(c: &mut Criterion) {
    let hand = history();
    let generated: Vec<GeneratedEvent> = hand.iter().map(generated_of).collect();
    let stored: Vec<(&'static str, Box<RawValue>)> = generated
        .iter()
        .map(|e| (e.event_type(), e.encode().unwrap()))
        .collect();

    let mut group = c.benchmark_group("apply_1002_events");
    group.bench_function("generated", |b| {
        b.iter(|| {
            let mut state = Generated::default();
            for event in black_box(&generated) {
                state.apply_event(event);
            }
            black_box((state.units, state.total, state.paid))
        });
    });
    group.bench_function("handwritten", |b| {
        b.iter(|| {
            let mut state = HandState::default();
            for event in black_box(&hand) {
                state.apply(event);
            }
            black_box((state.units, state.total, state.paid))
        });
    });
    group.finish();

    let mut group = c.benchmark_group("encode_1002_events");
    group.bench_function("generated", |b| {
        b.iter(|| {
            for event in black_box(&generated) {
                black_box(event.encode().unwrap());
            }
        });
    });
    group.bench_function("handwritten", |b| {
        b.iter(|| {
            for event in black_box(&hand) {
                black_box(hand_encode(event));
            }
        });
    });
    group.finish();

    let mut group = c.benchmark_group("decode_1002_events");
    group.bench_function("generated", |b| {
        b.iter(|| {
            for (name, payload) in black_box(&stored) {
                black_box(GeneratedEvent::decode(name, 1, payload).unwrap());
            }
        });
    });
    group.bench_function("handwritten", |b| {
        b.iter(|| {
            for (name, payload) in black_box(&stored) {
                black_box(hand_decode(name, payload));
            }
        });
    });
    group.finish();
}

criterion_group!(dispatch, benches);
criterion_main!(dispatch);
