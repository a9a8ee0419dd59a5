use es_core::{EventEnvelope, HandlerError, Project, event};

#[event]
pub struct OrderPlaced;

#[event(name = "order_placed")]
pub struct OrderPaid {
    pub cents: u64,
}

#[derive(es_core::Projection)]
#[projection(events(OrderPlaced, OrderPaid))]
pub struct OrderSummary;

impl Project<OrderPlaced> for OrderSummary {
    async fn project(&mut self, _: EventEnvelope<OrderPlaced>, (): &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

impl Project<OrderPaid> for OrderSummary {
    async fn project(&mut self, _: EventEnvelope<OrderPaid>, (): &mut ()) -> Result<(), HandlerError> {
        Ok(())
    }
}

fn main() {}
