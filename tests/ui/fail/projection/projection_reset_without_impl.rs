use es_core::{EventEnvelope, HandlerError, Project, event};

#[event]
pub struct OrderPlaced;

#[derive(es_core::Projection)]
#[projection(events(OrderPlaced), reset)]
pub struct OrderSummary;

impl Project<OrderPlaced> for OrderSummary {
    async fn project(&mut self, _: EventEnvelope<OrderPlaced>, (): &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// What a store's runner asks of a projection it drives.
fn run<P: es_core::Dispatch<()>>(_: P) {}

const REGISTER: fn() = || run(OrderSummary);

fn main() {}
