//! Test support: given/when/then fixtures for aggregates, and the store conformance suite.
//!
//! The fixtures need no store. [`Given::when`] needs no async runtime either: it polls the
//! decision on the calling thread, which suits every synchronous [`Handle`](crate::Handle) and
//! any async handler that awaits only plain futures. A handler that awaits tokio timers, I/O or
//! spawned tasks needs [`Given::when_async`] inside a `#[tokio::test]` instead.
//!
//! ```text
//! use es_core::testing::given;
//!
//! given::<Order>([OrderPlaced { customer_id: "c1".into() }.into()])
//!     .when(AddItem { sku: "apple".into(), quantity: 2, unit_price_cents: 50 })
//!     .then([ItemAdded { sku: "apple".into(), quantity: 2, unit_price_cents: 50 }]);
//! ```

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

use crate::aggregate::{Aggregate, Events};

pub mod conformance;

/// Starts a fixture from the events already in the aggregate's stream.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A>
where
    A::Services: Default,
{
    given_with_services(A::Services::default(), events)
}

/// Starts a fixture with explicit services (for aggregates with async commands).
pub fn given_with_services<A: Aggregate>(
    services: A::Services,
    events: impl IntoIterator<Item = A::Event>,
) -> Given<A> {
    Given {
        history: events.into_iter().collect(),
        services,
    }
}

/// The history of a fixture; call [`Given::when`] with a command.
pub struct Given<A: Aggregate> {
    history: Vec<A::Event>,
    services: A::Services,
}

impl<A: Aggregate> Given<A> {
    /// The state the history folds to.
    #[must_use]
    pub fn state(&self) -> A {
        crate::aggregate::fold(&self.history)
    }

    /// Decides `command` against the history, polling the decision on this thread.
    pub fn when(self, command: impl Into<A::Command>) -> When<A> {
        let state = self.state();
        let outcome = block_on(state.handle_command(command.into(), &self.services));
        When { state, outcome }
    }

    /// Decides `command` against the history on the caller's async runtime.
    pub async fn when_async(self, command: impl Into<A::Command>) -> When<A> {
        let state = self.state();
        let outcome = state.handle_command(command.into(), &self.services).await;
        When { state, outcome }
    }
}

/// The outcome of a fixture's command; assert on it with `then*`.
pub struct When<A: Aggregate> {
    state: A,
    outcome: Result<Events<A>, A::Error>,
}

impl<A: Aggregate> When<A> {
    /// Asserts the command was accepted with exactly these events (all of one type; see
    /// [`When::then_events`] for several types); returns the state after them.
    ///
    /// # Panics
    /// When the command was refused or decided other events.
    #[track_caller]
    pub fn then<E: Into<A::Event>>(self, expected: impl IntoIterator<Item = E>) -> A {
        self.then_events(expected.into_iter().map(Into::into))
    }

    /// Asserts the command was accepted and decided no events; returns the state.
    ///
    /// # Panics
    /// When the command was refused or decided events.
    #[track_caller]
    pub fn then_nothing(self) -> A {
        self.then_events([])
    }

    /// Asserts the command was accepted with exactly these events, given as the aggregate's
    /// event type (`[placed.into(), added.into()]`), and that each of them can be stored (it
    /// encodes to JSON that decodes back: see [`codec`](crate::codec)); returns the state after
    /// them.
    ///
    /// # Panics
    /// When the command was refused, decided other events, or decided an event the command path
    /// would refuse to store.
    #[track_caller]
    pub fn then_events(self, expected: impl IntoIterator<Item = A::Event>) -> A {
        let expected: Vec<A::Event> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => {
                let events = events.into_vec();
                assert!(
                    events == expected,
                    "the command decided other events\n  expected: {expected:?}\n   decided: {events:?}"
                );
                for event in &events {
                    if let Err(error) = crate::aggregate::EventSet::encode(event) {
                        panic!(
                            "the command decided an event that cannot be stored\n   event: {event:?}\n   error: {error}"
                        );
                    }
                }
                let mut state = self.state;
                for event in &events {
                    state.apply_event(event);
                }
                state
            }
            Err(error) => panic!(
                "the command was refused, but events were expected\n  expected: {expected:?}\n     error: {error}"
            ),
        }
    }

    /// Asserts the command was refused with `expected`.
    ///
    /// # Panics
    /// When the command was accepted or refused with another error.
    #[track_caller]
    pub fn then_error(self, expected: A::Error)
    where
        A::Error: PartialEq,
    {
        match self.outcome {
            Ok(events) => panic!(
                "the command was accepted, but an error was expected\n  expected: {expected:?}\n   decided: {events:?}"
            ),
            Err(error) => assert!(
                error == expected,
                "the command was refused with another error\n  expected: {expected:?}\n     found: {error:?}"
            ),
        }
    }

    /// Asserts the command was refused with an error matching `predicate`.
    ///
    /// # Panics
    /// When the command was accepted or `predicate` returns false.
    #[track_caller]
    pub fn then_error_matches(self, predicate: impl FnOnce(&A::Error) -> bool) {
        match self.outcome {
            Ok(events) => {
                panic!("the command was accepted, but an error was expected\n  decided: {events:?}")
            }
            Err(error) => assert!(predicate(&error), "the error does not match: {error:?}"),
        }
    }

    /// The raw outcome, for assertions of your own.
    ///
    /// # Errors
    /// The domain error the command was refused with.
    pub fn outcome(self) -> Result<Vec<A::Event>, A::Error> {
        self.outcome.map(Events::into_vec)
    }
}

impl<A: Aggregate + fmt::Debug> fmt::Debug for When<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("When")
            .field("state", &self.state)
            .field("outcome", &self.outcome.as_ref().map(Events::as_slice))
            .finish()
    }
}

/// Polls `future` to completion on this thread. Fixtures stay usable from plain `#[test]`s.
fn block_on<F: Future>(future: F) -> F::Output {
    struct ThreadWaker(Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
            return output;
        }
        std::thread::park();
    }
}
