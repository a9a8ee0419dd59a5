use es_core::{EventEnvelope, HandlerError, Project, event};

#[event]
pub struct OrderPlaced;

#[derive(es_core::Projection)]
#[projection(events(OrderPlaced), reset = true)]
pub struct OrderSummary;

impl Project<OrderPlaced> for OrderSummary {
    async fn project(&mut self, _: EventEnvelope<OrderPlaced>, (): &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
