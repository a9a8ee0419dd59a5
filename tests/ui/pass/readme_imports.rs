//! With the README's imports, and with every trait of the crate in scope at once, a user calls
//! their own handlers as methods: no two traits a user imports together share a method name.

use es_core::{event, Aggregate, Apply, Events, Handle, MemoryStore, Registry};

#[event]
pub struct Deposited {
    pub amount: u64,
}

#[event(name = "account.withdrawn", version = 1)]
pub struct Withdrawn {
    pub amount: u64,
}

#[derive(Clone)]
pub struct Deposit(pub u64);
#[derive(Clone)]
pub struct Withdraw(pub u64);
#[derive(Clone)]
pub struct DepositQuoted;

#[derive(Debug, PartialEq, thiserror::Error)]
#[error("balance {balance} is below {requested}")]
pub struct Insufficient {
    balance: u64,
    requested: u64,
}

/// What the async command asks: a quote.
#[derive(Default)]
pub struct Quotes(pub u64);

#[derive(Debug, Default, Aggregate)]
#[aggregate(name = "account", error = Insufficient, services = Quotes,
            events(Deposited, Withdrawn), commands(Deposit, Withdraw),
            async_commands(DepositQuoted))]
pub struct Account {
    balance: u64,
}

impl Apply<Deposited> for Account {
    fn apply(&mut self, e: &Deposited) {
        self.balance += e.amount;
    }
}
impl Apply<Withdrawn> for Account {
    fn apply(&mut self, e: &Withdrawn) {
        self.balance -= e.amount;
    }
}

impl Handle<Deposit> for Account {
    fn handle(&self, c: Deposit) -> Result<Events<Self>, Insufficient> {
        Ok(Events::one(Deposited { amount: c.0 }))
    }
}
impl Handle<Withdraw> for Account {
    fn handle(&self, c: Withdraw) -> Result<Events<Self>, Insufficient> {
        if c.0 > self.balance {
            return Err(Insufficient { balance: self.balance, requested: c.0 });
        }
        Ok(Events::one(Withdrawn { amount: c.0 }))
    }
}
impl es_core::HandleAsync<DepositQuoted> for Account {
    async fn handle_async(&self, _: DepositQuoted, quotes: &Quotes) -> Result<Events<Self>, Insufficient> {
        Ok(Events::one(Deposited { amount: quotes.0 }))
    }
}

/// The README's imports: `apply` and `handle` are the user's own methods.
fn with_readme_imports() -> Account {
    let mut state = Account::default();
    let e = Deposited { amount: 100 };
    state.apply(&e);
    let decided = state.handle(Withdraw(30)).expect("covered");
    assert_eq!(decided.len(), 1);
    state.apply(&Withdrawn { amount: 30 });
    assert_eq!(state.handle(Withdraw(500)), Err(Insufficient { balance: 70, requested: 500 }));
    let _: fn() -> MemoryStore = MemoryStore::new;
    let _ = Registry::new(MemoryStore::new()).aggregate::<Account>();
    state
}

/// Every trait of the crate in scope at once, the generated ones included: still one method
/// per name.
mod everything {
    use es_core::*;

    use super::{Account, AccountCommand, AccountEvent, DepositQuoted, Deposited, Quotes, Withdraw};

    #[derive(Default, es_core::Projection)]
    #[projection(name = "balances", events(Deposited), begin_batch, end_batch, reset)]
    pub struct Balances {
        seen: usize,
        total: u64,
    }

    impl Project<Deposited> for Balances {
        async fn project(&mut self, e: EventEnvelope<Deposited>, _: &mut ()) -> Result<(), HandlerError> {
            self.total += e.event.amount;
            Ok(())
        }
    }
    impl BeginBatch for Balances {
        async fn begin_batch(&mut self, events: &[RecordedEvent], _: &mut ()) -> Result<(), HandlerError> {
            self.seen += events.len();
            Ok(())
        }
    }
    impl EndBatch for Balances {
        async fn end_batch(&mut self, _: &mut ()) -> Result<(), HandlerError> {
            Ok(())
        }
    }
    impl Reset for Balances {
        async fn reset(&mut self, _: &mut ()) -> Result<(), HandlerError> {
            self.total = 0;
            Ok(())
        }
    }

    pub fn run(mut state: Account) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
        state.apply(&Deposited { amount: 5 });
        assert!(state.handle(Withdraw(1)).is_ok());
        let quoted = runtime.block_on(state.handle_async(DepositQuoted, &Quotes(7))).expect("accepted");
        for event in quoted.as_slice() {
            state.apply_event(event);
        }
        let decided = runtime
            .block_on(state.handle_command(AccountCommand::from(Withdraw(2)), &Quotes(0)))
            .expect("accepted");
        for event in decided {
            state.apply_event(&event);
        }
        state.apply_event(&AccountEvent::from(Deposited { amount: 0 }));
        assert_eq!(state.balance, 80);

        let mut balances = Balances::default();
        runtime.block_on(async {
            balances.begin_batch(&[], &mut ()).await.expect("begins");
            balances.end_batch(&mut ()).await.expect("ends");
            balances.reset(&mut ()).await.expect("resets");
            balances.run_begin_batch(&[], &mut ()).await.expect("begins");
            balances.run_end_batch(&mut ()).await.expect("ends");
            balances.run_reset(&mut ()).await.expect("resets");
        });
        assert_eq!((balances.seen, balances.total), (0, 0));
    }
}

fn main() {
    everything::run(with_readme_imports());
}
