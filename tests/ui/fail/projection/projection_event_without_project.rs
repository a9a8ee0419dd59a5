use es_core::{EventEnvelope, HandlerError, Project, event};

#[event]
pub struct OrderPlaced;

#[event]
pub struct OrderPaid {
    pub cents: u64,
}

/// The unit of work of some store.
pub struct Transaction;

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

impl Project<OrderPlaced, Transaction> for OrderSummary {
    async fn project(&mut self, _: EventEnvelope<OrderPlaced>, _: &mut Transaction) -> Result<(), HandlerError> {
        Ok(())
    }
}

/// What a store's runner asks of a projection it drives in `Transaction`s.
fn run_in_transactions<P: es_core::Dispatch<Transaction>>(_: P) {}

const REGISTER: fn() = || run_in_transactions(OrderSummary);

fn main() {}
