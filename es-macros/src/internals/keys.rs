//! The keys of each attribute, `#[event(...)]`, `#[aggregate(...)]` and `#[projection(...)]`,
//! and how each key's value is parsed.

use syn::meta::ParseNestedMeta;
use syn::{Ident, LitStr, Path, Type, TypePath};

use super::args::Keys;
use super::ctxt::Ctxt;
use super::list::{KeyList, fn_entry, list, type_entry};
use super::values::{IntValue, crate_path, flag, int, lit_str, type_value, value};

const EVENT_NAME: &str = "name = \"order.paid\"";
const VERSION: &str = "version = 2";
const CRATE: &str = "crate = my_es";

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
    const KEYS: &'static [&'static str] = &["name", "version", "upcast", "crate"];

    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        match key.to_string().as_str() {
            "name" => {
                let value = lit_str(value(meta, key, EVENT_NAME)?, key, EVENT_NAME)?;
                self.name = Some(value);
            }
            "version" => {
                let value = int(value(meta, key, VERSION)?, key, VERSION)?;
                self.version = Some(value);
            }
            "upcast" => {
                self.upcast = Some(list(cx, meta, key, "upcast(v1_to_v2, v2_to_v3)", fn_entry)?);
            }
            "crate" => {
                self.crate_path = crate_path(cx, value(meta, key, CRATE)?, key)?;
            }
            // `parse_meta` only passes keys listed in `KEYS`.
            _ => {}
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
    const KEYS: &'static [&'static str] = &[
        "name",
        "error",
        "events",
        "commands",
        "async_commands",
        "services",
        "snapshot",
        "crate",
    ];

    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        const NAME: &str = "name = \"order\"";
        const ERROR: &str = "error = OrderError";
        const SERVICES: &str = "services = Pricing";
        const SNAPSHOT: &str = "snapshot = 1";
        match key.to_string().as_str() {
            "name" => {
                let value = lit_str(value(meta, key, NAME)?, key, NAME)?;
                self.name = Some(value);
            }
            "error" => {
                self.error = type_value(cx, value(meta, key, ERROR)?, key, ERROR)?;
            }
            "events" => {
                self.events = Some(list(
                    cx,
                    meta,
                    key,
                    "events(OrderPlaced, OrderPaid)",
                    |cx, input| {
                        type_entry(cx, input, "an event type", "events(OrderPlaced, OrderPaid)")
                    },
                )?);
            }
            "commands" => {
                self.commands = Some(list(
                    cx,
                    meta,
                    key,
                    "commands(PlaceOrder, PayOrder)",
                    |cx, input| {
                        type_entry(
                            cx,
                            input,
                            "a command type",
                            "commands(PlaceOrder, PayOrder)",
                        )
                    },
                )?);
            }
            "async_commands" => {
                self.async_commands = Some(list(
                    cx,
                    meta,
                    key,
                    "async_commands(PriceOrder)",
                    |cx, input| {
                        type_entry(cx, input, "a command type", "async_commands(PriceOrder)")
                    },
                )?);
            }
            "services" => {
                self.services = type_value(cx, value(meta, key, SERVICES)?, key, SERVICES)?;
            }
            "snapshot" => {
                let value = int(value(meta, key, SNAPSHOT)?, key, SNAPSHOT)?;
                self.snapshot = Some(value);
            }
            "crate" => {
                self.crate_path = crate_path(cx, value(meta, key, CRATE)?, key)?;
            }
            // `parse_meta` only passes keys listed in `KEYS`.
            _ => {}
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
    const KEYS: &'static [&'static str] = &[
        "name",
        "events",
        "begin_batch",
        "end_batch",
        "reset",
        "crate",
    ];

    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        const NAME: &str = "name = \"order_summary\"";
        match key.to_string().as_str() {
            "name" => {
                let value = lit_str(value(meta, key, NAME)?, key, NAME)?;
                self.name = Some(value);
            }
            "events" => {
                self.events = Some(list(
                    cx,
                    meta,
                    key,
                    "events(OrderPlaced, OrderPaid)",
                    |cx, input| {
                        type_entry(cx, input, "an event type", "events(OrderPlaced, OrderPaid)")
                    },
                )?);
            }
            "begin_batch" => {
                self.begin_batch = Some(flag(meta, key)?);
            }
            "end_batch" => {
                self.end_batch = Some(flag(meta, key)?);
            }
            "reset" => {
                self.reset = Some(flag(meta, key)?);
            }
            "crate" => {
                self.crate_path = crate_path(cx, value(meta, key, CRATE)?, key)?;
            }
            // `parse_meta` only passes keys listed in `KEYS`.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::{AggregateKeys, EventKeys, ProjectionKeys};
    use crate::internals::args::{Args, Keys, parse_args};
    use crate::internals::ctxt::Ctxt;

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
        for key in EventKeys::KEYS {
            assert!(event.written(key), "{key}");
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
        for key in AggregateKeys::KEYS {
            assert!(aggregate.written(key), "{key}");
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
        for key in ProjectionKeys::KEYS {
            assert!(projection.written(key), "{key}");
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
        assert!(parsed.written("version") && parsed.written("upcast"));
        assert!(parsed.written("name"));
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
}
