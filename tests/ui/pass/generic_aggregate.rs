//! An aggregate generic over its services: the impls carry the struct's generics and bounds,
//! the generated enums do not.

use std::marker::PhantomData;

use es_core::{Aggregate, Apply, EventSet, Events, HandleAsync, event};

#[event]
pub struct Counted {
    pub by: u32,
}

pub struct CountBy;

/// Decides how far one `CountBy` counts.
pub trait Step: Send + Sync + 'static {
    fn step(&self) -> u32;
}

pub struct Fixed(pub u32);

impl Step for Fixed {
    fn step(&self) -> u32 {
        self.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
pub struct Never;

#[derive(es_core::Aggregate)]
#[aggregate(error = Never, events(Counted), async_commands(CountBy), services = S)]
pub struct Counter<S>
where
    S: Step,
{
    total: u32,
    step: PhantomData<fn() -> S>,
}

impl<S: Step> Default for Counter<S> {
    fn default() -> Self {
        Self { total: 0, step: PhantomData }
    }
}

impl<S: Step> Apply<Counted> for Counter<S> {
    fn apply(&mut self, event: &Counted) {
        self.total += event.by;
    }
}

impl<S: Step> HandleAsync<CountBy> for Counter<S> {
    async fn handle_async(&self, _: CountBy, services: &S) -> Result<Events<Self>, Never> {
        Ok(Events::one(Counted { by: services.step() }))
    }
}

fn main() {
    assert_eq!(<Counter<Fixed> as Aggregate>::NAME, "counter");
    assert_eq!(CounterEvent::NAMES, ["counted"]);
    let mut counter = Counter::<Fixed>::default();
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    for _ in 0..3 {
        let events = runtime
            .block_on(Aggregate::handle_command(&counter, CounterCommand::from(CountBy), &Fixed(5)))
            .expect("accepted");
        for event in events {
            Aggregate::apply_event(&mut counter, &event);
        }
    }
    assert_eq!(counter.total, 15);
}
