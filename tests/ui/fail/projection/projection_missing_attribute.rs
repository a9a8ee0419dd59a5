use es_core::{EventEnvelope, HandlerError, Project, event};

#[event]
pub struct OrderPlaced;

#[event]
pub struct OrderPaid {
    pub cents: u64,
}

#[derive(es_core::Projection)]
pub struct OrderSummary;

impl Project<OrderPlaced> for OrderSummary {
    async fn project(&mut self, _: EventEnvelope<OrderPlaced>, (): &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
