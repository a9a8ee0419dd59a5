//! Procedural macros for `es-core`: `#[event]`, `#[derive(Aggregate)]` and
//! `#[derive(Projection)]`.
//!
//! Depend on `es-core`, which re-exports these macros (feature `derive`, on by default); this
//! crate is its implementation detail. What follows is the reference of every attribute key,
//! each with an example that runs as a test (through `es-core`, a dev-dependency).
//!
//! Each macro runs the same pipeline: the attribute is parsed (`internals::args`), checked
//! together with the annotated item into a model (`internals::check`, `internals::ast`), and
//! the model becomes code (`expand`). Every mistake is reported on the token that caused it,
//! all of them at once, and the names the macro declares are still emitted next to the errors.
//! Generated code names everything by absolute path (`::core::...`, `::es_core::...` or the
//! `crate = path` override), so it compiles whatever the user's crate has in scope.

mod expand;
mod internals;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;
use syn::{DeriveInput, parse_macro_input};

/// Makes a struct an event: serde, `Clone`, `Debug`, `PartialEq`, a stable name and a schema
/// version.
///
/// ```
/// use es_core::{Event, event};
/// use es_core::upcast::UpcastError;
/// use serde_json::{Value, json};
///
/// #[event]                                   // name "item_added", version 1
/// pub struct ItemAdded { pub sku: String, pub quantity: u32 }
///
/// /// Version 1 stored cents as `amount`.
/// fn paid_v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
///     let cents = payload.get("amount").cloned().ok_or(UpcastError::missing_field("amount"))?;
///     payload["amount_cents"] = cents;
///     Ok(payload)
/// }
///
/// #[event(name = "order.paid", version = 2, upcast(paid_v1_to_v2))]
/// pub struct OrderPaid { pub amount_cents: u64 }
///
/// assert_eq!((ItemAdded::NAME, ItemAdded::VERSION), ("item_added", 1));
/// assert_eq!((OrderPaid::NAME, OrderPaid::VERSION), ("order.paid", 2));
/// let stored = serde_json::value::to_raw_value(&json!({ "amount": 120 })).unwrap();
/// let paid: OrderPaid = es_core::codec::decode(1, &stored).unwrap();
/// assert_eq!(paid, OrderPaid { amount_cents: 120 });
/// ```
///
/// Keys, all optional:
///
/// - `name = "..."`: the stable name stored with every event (default: the type name in
///   `snake_case`). Not empty, no whitespace or control characters. Renaming the Rust type
///   later does not change it.
/// - `version = N`: the schema version, from 1 (the default).
/// - `upcast(f, g, ...)`: one `fn(serde_json::Value) -> Result<Value, UpcastError>` per step
///   from version 1 to `N`, oldest first: exactly `N - 1` of them.
/// - `crate = path`: where `es-core` is, for crates that rename it (default `::es_core`).
///
/// The struct must not be generic and must not derive the traits above itself. Write
/// `#[event]` above the struct's own `#[derive(...)]`: a derive written above it is applied
/// after the macro and is out of its sight, so a duplicate there is only reported by the
/// compiler as conflicting implementations.
#[proc_macro_attribute]
pub fn event(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::event::expand(TokenStream2::from(args), TokenStream2::from(item))
        .into_tokens()
        .into()
}

/// Generates an aggregate's event and command enums and its `Aggregate` impl.
///
/// ```
/// use es_core::{Aggregate, Apply, Events, Handle, HandleAsync, event};
///
/// #[event] pub struct OrderPlaced;
/// #[event] pub struct OrderPaid { pub cents: u64 }
///
/// #[derive(Clone)] pub struct PlaceOrder;
/// #[derive(Clone)] pub struct PriceOrder;
///
/// /// What the async handler asks for prices.
/// #[derive(Default)]
/// pub struct Pricing { pub cents: u64 }
///
/// #[derive(Debug, thiserror::Error)]
/// #[error("the order is already placed")]
/// pub struct OrderError;
///
/// #[derive(Default, Aggregate)]
/// #[aggregate(error = OrderError, events(OrderPlaced, OrderPaid),
///             commands(PlaceOrder), async_commands(PriceOrder), services = Pricing)]
/// pub struct Order { placed: bool, paid_cents: u64 }
///
/// impl Apply<OrderPlaced> for Order { fn apply(&mut self, _: &OrderPlaced) { self.placed = true } }
/// impl Apply<OrderPaid> for Order { fn apply(&mut self, e: &OrderPaid) { self.paid_cents += e.cents } }
///
/// impl Handle<PlaceOrder> for Order {
///     fn handle(&self, _: PlaceOrder) -> Result<Events<Self>, OrderError> {
///         if self.placed { return Err(OrderError) }
///         Ok(Events::one(OrderPlaced))
///     }
/// }
///
/// impl HandleAsync<PriceOrder> for Order {
///     async fn handle_async(&self, _: PriceOrder, pricing: &Pricing) -> Result<Events<Self>, OrderError> {
///         Ok(Events::one(OrderPaid { cents: pricing.cents }))
///     }
/// }
///
/// // Generated: the `OrderEvent` and `OrderCommand` enums, with `From` for each listed type.
/// let placed: OrderEvent = OrderPlaced.into();
/// let _: OrderCommand = PriceOrder.into();
/// assert_eq!(<Order as Aggregate>::NAME, "order");
/// let state = es_core::aggregate::fold::<Order>([&placed]);
/// assert!(state.placed);
/// ```
///
/// Keys:
///
/// - `error = Type` (required): the error commands are refused with.
/// - `events(A, B, ...)` (required, not empty): the events; each needs `impl Apply<A>`.
/// - `commands(X, ...)`: commands decided by `impl Handle<X>`; and/or
///   `async_commands(Z, ...)`: commands decided by `impl HandleAsync<Z>`, which may await the
///   services. At least one command in all.
/// - `name = "..."`: the stable name; stream ids are `"{name}-{id}"` (default: `snake_case`).
/// - `services = Type`: what async handlers receive (default `()`).
/// - `snapshot = N`: snapshot the state as JSON at schema version `N` (from 1; the state must
///   implement serde); absent: no snapshots.
/// - `crate = path`: where `es-core` is (default `::es_core`).
///
/// Generates `{Name}Event` and `{Name}Command` (same visibility as the struct) with
/// `From` impls for each listed type. A listed event or command without its impl is an error
/// reported under its name in the list. The struct may be generic; the enums are not.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::aggregate::expand(&input).into_tokens().into()
}

/// Implements `Projection` and `Dispatch` for a read model.
///
/// ```
/// use es_core::{EventEnvelope, HandlerError, Project, Projection, Reset, event};
///
/// #[event] pub struct OrderPlaced;
/// #[event] pub struct OrderPaid { pub cents: u64 }
///
/// #[derive(Projection)]
/// #[projection(name = "order_summary", events(OrderPlaced, OrderPaid), reset)]
/// pub struct OrderSummary { orders: u64, cents: u64 }
///
/// // In memory the unit of work is `()`; a SQL store hands its transaction instead.
/// impl Project<OrderPlaced> for OrderSummary {
///     async fn project(&mut self, _: EventEnvelope<OrderPlaced>, (): &mut ()) -> Result<(), HandlerError> {
///         self.orders += 1;
///         Ok(())
///     }
/// }
///
/// impl Project<OrderPaid> for OrderSummary {
///     async fn project(&mut self, paid: EventEnvelope<OrderPaid>, (): &mut ()) -> Result<(), HandlerError> {
///         self.cents += paid.event.cents;
///         Ok(())
///     }
/// }
///
/// // The `reset` flag: how a rebuild clears the read model.
/// impl Reset for OrderSummary {
///     async fn reset(&mut self, (): &mut ()) -> Result<(), HandlerError> {
///         *self = OrderSummary { orders: 0, cents: 0 };
///         Ok(())
///     }
/// }
///
/// assert_eq!(OrderSummary::NAME, "order_summary");
/// assert_eq!(OrderSummary::EVENT_TYPES, ["order_placed", "order_paid"]);
/// ```
///
/// Keys: `events(A, B, ...)` (required, not empty), `name = "..."` (the checkpoint's stable
/// name; default `snake_case`), the flags `begin_batch` (the runner hands each batch's events
/// to the projection's `BeginBatch` impl before dispatching them), `end_batch` (it calls the
/// `EndBatch` impl before each commit) and `reset` (a rebuild clears the read model through
/// the `Reset` impl), `crate = path`. The projection dispatches in a unit of work `Tx` for
/// which every listed event has an `impl Project<A, Tx>`, and each flag its
/// `impl BeginBatch<Tx>`, `impl EndBatch<Tx>` or `impl Reset<Tx>`.
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::projection::expand(&input).into_tokens().into()
}
