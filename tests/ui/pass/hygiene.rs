//! Generated code compiles warning-free under strict lints, with private items, and with the
//! prelude's names (and `core`, `std`, `serde`, `es_core`) shadowed by the user's own.
#![deny(warnings, missing_docs, unsafe_code, unreachable_pub, rust_2018_idioms)]
#![deny(clippy::all, clippy::pedantic)]
#![allow(clippy::struct_field_names)] // (a shadowing type below is named `String`)

/// Shadows `Result`.
pub struct Result;
/// Shadows `Option`.
pub struct Option;
/// Shadows `Vec`.
pub struct Vec;
/// Shadows `Box`.
pub struct Box;
/// Shadows `String`.
pub struct String;
/// Shadows `Some` (as a unit struct, in both namespaces).
pub struct Some;
/// Shadows `Ok`.
pub struct Ok;
/// Shadows `Err`.
pub struct Err;
/// Shadows the traits generated code implements or derives.
pub trait Clone {}
/// Shadows `Debug`.
pub trait Debug {}
/// Shadows `PartialEq`.
pub trait PartialEq {}
/// Shadows `From`.
pub trait From {}
/// Shadows `Send`.
pub trait Send {}
/// Shadows `Future`.
pub trait Future {}
/// Shadows `Default`.
pub trait Default {}
/// Shadows the crate names generated code reaches by absolute path.
pub mod core {}
/// Shadows `std`.
pub mod std {}
/// Shadows `serde`.
pub mod serde {}
/// Shadows `serde_json`.
pub mod serde_json {}
/// Shadows `es_core` (generated code must use `::es_core`).
pub mod es_core {}

/// Placed.
#[::es_core::event]
struct Placed {
    n: u32,
}

/// Paid.
#[::es_core::event(version = 2, upcast(paid_upcast))]
struct Paid(u64);

fn paid_upcast(
    payload: ::serde_json::Value,
) -> ::core::result::Result<::serde_json::Value, ::es_core::upcast::UpcastError> {
    if payload.is_u64() {
        ::core::result::Result::Ok(payload)
    } else {
        ::core::result::Result::Err(::es_core::upcast::UpcastError::invalid_field("0", "not a count"))
    }
}

/// Place.
struct Place;

/// Pay.
struct Pay(u64);

/// Why a command is refused.
#[derive(::core::fmt::Debug)]
struct Refused;

impl ::core::fmt::Display for Refused {
    fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
        f.write_str("refused")
    }
}

impl ::std::error::Error for Refused {}

/// A private aggregate: its generated enums must not warn as unused.
#[derive(::core::default::Default, ::es_core::Aggregate)]
#[aggregate(error = Refused, events(Placed, Paid), commands(Place), async_commands(Pay))]
struct Tab {
    total: u64,
}

impl ::es_core::Apply<Placed> for Tab {
    fn apply(&mut self, event: &Placed) {
        self.total += u64::from(event.n);
    }
}

impl ::es_core::Apply<Paid> for Tab {
    fn apply(&mut self, event: &Paid) {
        self.total += event.0;
    }
}

impl ::es_core::Handle<Place> for Tab {
    fn handle(
        &self,
        _: Place,
    ) -> ::core::result::Result<::es_core::Events<Self>, Refused> {
        ::core::result::Result::Ok(::es_core::Events::one(Placed { n: 1 }))
    }
}

impl ::es_core::HandleAsync<Pay> for Tab {
    async fn handle_async(
        &self,
        command: Pay,
        (): &(),
    ) -> ::core::result::Result<::es_core::Events<Self>, Refused> {
        if command.0 == 0 {
            return ::core::result::Result::Err(Refused);
        }
        ::core::result::Result::Ok(::es_core::Events::one(Paid(command.0)))
    }
}

/// A private read model.
#[derive(::es_core::Projection)]
#[projection(events(Placed, Paid))]
struct Totals;

impl ::es_core::Project<Placed> for Totals {
    async fn project(
        &mut self,
        _: ::es_core::EventEnvelope<Placed>,
        (): &mut (),
    ) -> ::core::result::Result<(), ::es_core::HandlerError> {
        ::core::result::Result::Ok(())
    }
}

impl ::es_core::Project<Paid> for Totals {
    async fn project(
        &mut self,
        _: ::es_core::EventEnvelope<Paid>,
        (): &mut (),
    ) -> ::core::result::Result<(), ::es_core::HandlerError> {
        ::core::result::Result::Ok(())
    }
}

fn main() {
    let runtime = ::tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap_or_else(|error| panic!("{error}"));
    let mut tab = <Tab as ::core::default::Default>::default();
    let commands = [TabCommand::from(Place), TabCommand::from(Pay(4))];
    for command in commands {
        let decided = runtime.block_on(::es_core::Aggregate::handle_command(&tab, command, &()));
        for event in decided.unwrap_or_else(|error| panic!("{error}")) {
            ::es_core::Aggregate::apply_event(&mut tab, &event);
        }
    }
    assert_eq!(tab.total, 5);
    let refused = runtime.block_on(::es_core::Aggregate::handle_command(&tab, Pay(0).into(), &()));
    assert!(refused.is_err());
    assert_eq!(<Totals as ::es_core::Projection>::EVENT_TYPES, ["placed", "paid"]);
    let _ = TabEvent::Placed(Placed { n: 0 });
}
