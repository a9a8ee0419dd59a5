//! The keys of each attribute, `#[event(...)]`, `#[aggregate(...)]` and `#[projection(...)]`:
//! one enum per attribute with its spellings, and how each key's value is parsed.
//!
//! A key is written out once, in its enum's `name`; the parser reads it into the enum, and
//! everything after matches on the enum, so a key cannot be accepted and then ignored.

use syn::meta::ParseNestedMeta;
use syn::{Ident, LitStr, Path, Type, TypePath};

use super::args::{Key, Keys};
use super::ctxt::Ctxt;
use super::list::{KeyList, fn_entry, list, type_entry};
use super::values::{IntValue, crate_path, flag, int, lit_str, type_value, value};

/// A key of `#[event(...)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum EventKey {
    Name,
    Version,
    Upcast,
    Crate,
}

impl Key for EventKey {
    const ALL: &'static [Self] = &[Self::Name, Self::Version, Self::Upcast, Self::Crate];
    const STABLE_NAME: Self = Self::Name;

    fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Version => "version",
            Self::Upcast => "upcast",
            Self::Crate => "crate",
        }
    }
}

/// A key of `#[aggregate(...)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum AggregateKey {
    Name,
    Error,
    Events,
    Commands,
    AsyncCommands,
    Services,
    Snapshot,
    Crate,
}

impl Key for AggregateKey {
    const ALL: &'static [Self] = &[
        Self::Name,
        Self::Error,
        Self::Events,
        Self::Commands,
        Self::AsyncCommands,
        Self::Services,
        Self::Snapshot,
        Self::Crate,
    ];
    const STABLE_NAME: Self = Self::Name;

    fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Error => "error",
            Self::Events => "events",
            Self::Commands => "commands",
            Self::AsyncCommands => "async_commands",
            Self::Services => "services",
            Self::Snapshot => "snapshot",
            Self::Crate => "crate",
        }
    }
}

/// A key of `#[projection(...)]`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ProjectionKey {
    Name,
    Events,
    BeginBatch,
    EndBatch,
    Reset,
    Crate,
}

impl Key for ProjectionKey {
    const ALL: &'static [Self] = &[
        Self::Name,
        Self::Events,
        Self::BeginBatch,
        Self::EndBatch,
        Self::Reset,
        Self::Crate,
    ];
    const STABLE_NAME: Self = Self::Name;

    fn name(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Events => "events",
            Self::BeginBatch => "begin_batch",
            Self::EndBatch => "end_batch",
            Self::Reset => "reset",
            Self::Crate => "crate",
        }
    }
}

// Examples of each key, for the messages that say what to write.
const EVENT_NAME: &str = "name = \"order.paid\"";
const VERSION: &str = "version = 2";
const CRATE: &str = "crate = my_es";
const EVENTS: &str = "events(OrderPlaced, OrderPaid)";

/// `#[event(name = "...", version = N, upcast(f, g), crate = path)]`.
#[derive(Default)]
pub(crate) struct EventKeys {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<IntValue>,
    pub(crate) upcast: Option<KeyList<Path>>,
    pub(crate) crate_path: Option<Path>,
}

impl Keys for EventKeys {
    const ATTR: &'static str = "event";
    type Key = EventKey;

    fn parse_key(
        &mut self,
        cx: &Ctxt,
        key: EventKey,
        ident: &Ident,
        meta: &ParseNestedMeta<'_>,
    ) -> syn::Result<()> {
        match key {
            EventKey::Name => {
                self.name = Some(lit_str(value(meta, ident, EVENT_NAME)?, ident, EVENT_NAME)?);
            }
            EventKey::Version => {
                self.version = Some(int(value(meta, ident, VERSION)?, ident, VERSION)?);
            }
            EventKey::Upcast => {
                let example = "upcast(v1_to_v2, v2_to_v3)";
                self.upcast = Some(list(cx, meta, ident, example, fn_entry)?);
            }
            EventKey::Crate => {
                self.crate_path = crate_path(cx, value(meta, ident, CRATE)?, ident)?;
            }
        }
        Ok(())
    }
}

/// `#[aggregate(name = "...", error = E, events(...), commands(...), async_commands(...),
/// services = S, snapshot = N, crate = path)]`.
#[derive(Default)]
pub(crate) struct AggregateKeys {
    pub(crate) name: Option<LitStr>,
    pub(crate) error: Option<Type>,
    pub(crate) events: Option<KeyList<TypePath>>,
    pub(crate) commands: Option<KeyList<TypePath>>,
    pub(crate) async_commands: Option<KeyList<TypePath>>,
    pub(crate) services: Option<Type>,
    pub(crate) snapshot: Option<IntValue>,
    pub(crate) crate_path: Option<Path>,
}

impl Keys for AggregateKeys {
    const ATTR: &'static str = "aggregate";
    type Key = AggregateKey;

    fn parse_key(
        &mut self,
        cx: &Ctxt,
        key: AggregateKey,
        ident: &Ident,
        meta: &ParseNestedMeta<'_>,
    ) -> syn::Result<()> {
        const NAME: &str = "name = \"order\"";
        const ERROR: &str = "error = OrderError";
        const COMMANDS: &str = "commands(PlaceOrder, PayOrder)";
        const ASYNC_COMMANDS: &str = "async_commands(PriceOrder)";
        const SERVICES: &str = "services = Pricing";
        const SNAPSHOT: &str = "snapshot = 1";
        match key {
            AggregateKey::Name => {
                self.name = Some(lit_str(value(meta, ident, NAME)?, ident, NAME)?);
            }
            AggregateKey::Error => {
                self.error = type_value(cx, value(meta, ident, ERROR)?, ident, ERROR)?;
            }
            AggregateKey::Events => {
                self.events = Some(type_list(cx, meta, ident, "an event type", EVENTS)?);
            }
            AggregateKey::Commands => {
                self.commands = Some(type_list(cx, meta, ident, "a command type", COMMANDS)?);
            }
            AggregateKey::AsyncCommands => {
                let list = type_list(cx, meta, ident, "a command type", ASYNC_COMMANDS)?;
                self.async_commands = Some(list);
            }
            AggregateKey::Services => {
                self.services = type_value(cx, value(meta, ident, SERVICES)?, ident, SERVICES)?;
            }
            AggregateKey::Snapshot => {
                self.snapshot = Some(int(value(meta, ident, SNAPSHOT)?, ident, SNAPSHOT)?);
            }
            AggregateKey::Crate => {
                self.crate_path = crate_path(cx, value(meta, ident, CRATE)?, ident)?;
            }
        }
        Ok(())
    }
}

/// `#[projection(name = "...", events(...), begin_batch, end_batch, reset, crate = path)]`.
#[derive(Default)]
pub(crate) struct ProjectionKeys {
    pub(crate) name: Option<LitStr>,
    pub(crate) events: Option<KeyList<TypePath>>,
    pub(crate) begin_batch: Option<Ident>,
    pub(crate) end_batch: Option<Ident>,
    pub(crate) reset: Option<Ident>,
    pub(crate) crate_path: Option<Path>,
}

impl Keys for ProjectionKeys {
    const ATTR: &'static str = "projection";
    type Key = ProjectionKey;

    fn parse_key(
        &mut self,
        cx: &Ctxt,
        key: ProjectionKey,
        ident: &Ident,
        meta: &ParseNestedMeta<'_>,
    ) -> syn::Result<()> {
        const NAME: &str = "name = \"order_summary\"";
        match key {
            ProjectionKey::Name => {
                self.name = Some(lit_str(value(meta, ident, NAME)?, ident, NAME)?);
            }
            ProjectionKey::Events => {
                self.events = Some(type_list(cx, meta, ident, "an event type", EVENTS)?);
            }
            ProjectionKey::BeginBatch => self.begin_batch = Some(flag(meta, ident)?),
            ProjectionKey::EndBatch => self.end_batch = Some(flag(meta, ident)?),
            ProjectionKey::Reset => self.reset = Some(flag(meta, ident)?),
            ProjectionKey::Crate => {
                self.crate_path = crate_path(cx, value(meta, ident, CRATE)?, ident)?;
            }
        }
        Ok(())
    }
}

/// A list of types, `events(...)` or `commands(...)`; `what` one entry is and `example` the
/// whole list, for messages.
fn type_list(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    ident: &Ident,
    what: &str,
    example: &str,
) -> syn::Result<KeyList<TypePath>> {
    list(cx, meta, ident, example, |cx, input| {
        type_entry(cx, input, what, example)
    })
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::{AggregateKey, AggregateKeys, EventKey, EventKeys, ProjectionKey, ProjectionKeys};
    use crate::internals::args::{Args, Key, Keys, parse_args};
    use crate::internals::ctxt::Ctxt;
    use crate::internals::suggest;

    fn errors<K: Keys>(args: TokenStream) -> (Args<K>, Vec<String>) {
        let cx = Ctxt::new();
        let parsed = parse_args::<K>(&cx, args);
        let messages = match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, messages)
    }

    #[test]
    fn every_listed_key_is_parsed() {
        let (event, messages) =
            errors::<EventKeys>(quote!(name = "a.b", version = 2, upcast(f), crate = my_es));
        assert!(messages.is_empty(), "{messages:?}");
        for &key in EventKey::ALL {
            assert!(event.written(key), "{key:?}");
        }
        let keys = event.keys;
        assert!(keys.name.is_some() && keys.version.is_some());
        assert!(keys.upcast.is_some() && keys.crate_path.is_some());

        let (aggregate, messages) = errors::<AggregateKeys>(quote!(
            name = "order",
            error = E,
            events(A),
            commands(B),
            async_commands(C),
            services = S,
            snapshot = 1,
            crate = my_es,
        ));
        assert!(messages.is_empty(), "{messages:?}");
        for &key in AggregateKey::ALL {
            assert!(aggregate.written(key), "{key:?}");
        }
        let keys = aggregate.keys;
        assert!(keys.name.is_some() && keys.error.is_some() && keys.events.is_some());
        assert!(keys.commands.is_some() && keys.async_commands.is_some());
        assert!(keys.services.is_some() && keys.snapshot.is_some() && keys.crate_path.is_some());

        let (projection, messages) = errors::<ProjectionKeys>(quote!(
            name = "p",
            events(A, b::B),
            begin_batch,
            end_batch,
            reset,
            crate = ::x,
        ));
        assert!(messages.is_empty(), "{messages:?}");
        for &key in ProjectionKey::ALL {
            assert!(projection.written(key), "{key:?}");
        }
        assert!(projection.keys.begin_batch.is_some() && projection.keys.end_batch.is_some());
        assert!(projection.keys.reset.is_some());
    }

    #[test]
    fn independent_mistakes_are_all_reported() {
        let (parsed, messages) = errors::<EventKeys>(quote!(
            nmae = "x",
            version = "2",
            upcast = f,
            crate = "my_es"
        ));
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("did you mean `name`?"), "{messages:?}");
        assert!(messages[1].contains("not a string"), "{messages:?}");
        assert!(messages[2].contains("parenthesized list"), "{messages:?}");
        assert!(messages[3].contains("no quotes"), "{messages:?}");
        // Written but malformed keys are remembered, so they are not reported as missing too;
        // a misspelt key is read as the one suggested.
        assert!(parsed.written(EventKey::Version) && parsed.written(EventKey::Upcast));
        assert!(parsed.written(EventKey::Name));
        assert_eq!(
            parsed.keys.name.map(|name| name.value()).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn version_values() {
        let cases: [(TokenStream, Option<u32>, &str); 10] = [
            (quote!(version = 1), Some(1), ""),
            (quote!(version = 7u32), Some(7), ""),
            (quote!(version = 4294967295), Some(u32::MAX), ""),
            (quote!(version = 4294967296), None, "too large"),
            (quote!(version = 99999999999), None, "too large"),
            (quote!(version = -1), None, "negative"),
            (quote!(version = 2u8), None, "suffix"),
            (quote!(version = 1.5), None, "whole number"),
            (quote!(version = x), None, "integer literal"),
            (quote!(version = ), None, "missing value"),
        ];
        for (args, value, message) in cases {
            let (parsed, messages) = errors::<EventKeys>(args.clone());
            let got = parsed.keys.version.map(|v| v.value);
            assert_eq!(got, value, "{args}");
            if message.is_empty() {
                assert!(messages.is_empty(), "{args}: {messages:?}");
            } else {
                assert_eq!(messages.len(), 1, "{args}: {messages:?}");
                assert!(messages[0].contains(message), "{args}: {messages:?}");
            }
        }
    }

    #[test]
    fn list_entries() {
        let (parsed, messages) = errors::<AggregateKeys>(quote!(
            events(A, 5, b::C, &D, E F, , G<u8>, Self, "x",)
        ));
        let names: Vec<String> = parsed
            .keys
            .events
            .map(|list| list.items.iter().map(|t| quote!(#t).to_string()).collect())
            .unwrap_or_default();
        // A forgotten comma is reported, and both entries are kept.
        assert_eq!(names, ["A", "b :: C", "E", "F", "G < u8 >"]);
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert!(messages[0].contains("found a literal"), "{messages:?}");
        assert!(messages[1].contains("found `&D`"), "{messages:?}");
        assert!(
            messages[2].contains("expected `,` after `E`"),
            "{messages:?}"
        );
        assert!(messages[3].contains("empty entry"), "{messages:?}");
        assert!(messages[4].contains("found `Self`"), "{messages:?}");
        assert!(messages[5].contains("found a literal"), "{messages:?}");
    }

    #[test]
    fn mistakes_with_an_obvious_meaning_are_reported_and_still_used() {
        let (parsed, messages) = errors::<AggregateKeys>(quote!(
            events = A,
            commands = (B),
            error = "E",
            services = "Vec<u8>",
            crate = "x::y"
        ));
        assert_eq!(messages.len(), 5, "{messages:?}");
        let keys = parsed.keys;
        let events = keys.events.map(|list| list.items.len());
        assert_eq!(events, Some(1));
        // `commands = (B)`: reported, and read as the list it looks like.
        assert!(
            keys.commands
                .is_some_and(|list| list.well_formed && list.items.len() == 1)
        );
        assert_eq!(
            keys.error.map(|t| quote!(#t).to_string()).as_deref(),
            Some("E")
        );
        let services = keys.services.map(|t| quote!(#t).to_string());
        assert_eq!(services.as_deref(), Some("Vec < u8 >"));
        let krate = keys.crate_path.map(|p| quote!(#p).to_string());
        assert_eq!(krate.as_deref(), Some("x :: y"));
    }

    #[test]
    fn a_key_written_as_an_assignment_keeps_the_following_keys() {
        let (parsed, messages) =
            errors::<AggregateKeys>(quote!(events = A, commands(C), error = E));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("not `=`"), "{messages:?}");
        assert!(parsed.keys.commands.is_some() && parsed.keys.error.is_some());
    }

    /// Each spelling reads back as its key, and no two keys of an attribute share one.
    fn assert_spellings<K: Key + std::fmt::Debug>() {
        for (i, &key) in K::ALL.iter().enumerate() {
            assert_eq!(K::from_name(key.name()), Some(key), "{key:?}");
            assert!(!K::ALL[..i].contains(&key), "{key:?} listed twice");
        }
        assert_eq!(K::from_name(K::STABLE_NAME.name()), Some(K::STABLE_NAME));
        assert_eq!(K::from_name("r#name"), None);
    }

    #[test]
    fn every_key_has_one_spelling() {
        assert_spellings::<EventKey>();
        assert_spellings::<AggregateKey>();
        assert_spellings::<ProjectionKey>();
    }

    #[test]
    fn raw_identifier_keys_are_read_as_the_key() {
        let (parsed, messages) = errors::<EventKeys>(quote!(r#name = "x", r#version = 2));
        assert!(messages.is_empty(), "{messages:?}");
        assert!(parsed.written(EventKey::Name) && parsed.written(EventKey::Version));
        assert_eq!(parsed.keys.version.map(|v| v.value), Some(2));
    }

    #[test]
    fn misspelt_keys_are_read_as_the_closest() {
        let cases = [
            ("evnets", Some(AggregateKey::Events)),
            ("event", Some(AggregateKey::Events)),
            ("Events", Some(AggregateKey::Events)),
            ("comands", Some(AggregateKey::Commands)),
            ("command", Some(AggregateKey::Commands)),
            ("async_command", Some(AggregateKey::AsyncCommands)),
            ("asynccommands", Some(AggregateKey::AsyncCommands)),
            ("service", Some(AggregateKey::Services)),
            ("snapshots", Some(AggregateKey::Snapshot)),
            ("eror", Some(AggregateKey::Error)),
            ("errors", Some(AggregateKey::Error)),
            ("nmae", Some(AggregateKey::Name)),
            ("krate", Some(AggregateKey::Crate)),
            ("x", None),
            ("version", None),
            ("completely_unrelated", None),
        ];
        for (input, expected) in cases {
            let found = suggest::closest(input, AggregateKey::ALL, AggregateKey::name);
            assert_eq!(found, expected, "closest({input:?})");
        }
    }
}
