//! The expansions on `proc_macro2` tokens: malformed input is reported (never a panic), the
//! recovery output is still valid Rust syntax, and the generated code has the promised shape.

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use quote::quote;
use syn::DeriveInput;

use super::{aggregate, event, projection};
use crate::internals::ctxt::Checked;

/// Every message in `error`, in order.
fn messages(error: syn::Error) -> Vec<String> {
    error.into_iter().map(|e| e.to_string()).collect()
}

fn expand_event(args: TokenStream, item: TokenStream) -> Result<TokenStream, Vec<String>> {
    let item_is_rust = syn::parse2::<syn::Item>(item.clone()).is_ok();
    let expansion = event::expand(args, item);
    let found = match &expansion.errors {
        Ok(()) => return Ok(expansion.value),
        Err(error) => messages(error.clone()),
    };
    let tokens = expansion.into_tokens();
    assert!(tokens.to_string().contains("compile_error"), "{tokens}");
    // An item that is not Rust is emitted as written; only a real one must still parse.
    if item_is_rust {
        assert_recovers(&tokens);
    }
    Err(found)
}

fn expand_aggregate(input: TokenStream) -> Result<TokenStream, Vec<String>> {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return Err(messages(error)),
    };
    recovered(aggregate::expand(&input))
}

fn expand_projection(input: TokenStream) -> Result<TokenStream, Vec<String>> {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(input) => input,
        Err(error) => return Err(messages(error)),
    };
    recovered(projection::expand(&input))
}

/// The code when there are no errors; otherwise the messages, after checking that the
/// recovery output (errors, then the closest model's code) parses.
fn recovered(expansion: Checked<TokenStream>) -> Result<TokenStream, Vec<String>> {
    let found = match &expansion.errors {
        Ok(()) => return Ok(expansion.value),
        Err(error) => messages(error.clone()),
    };
    assert_recovers(&expansion.into_tokens());
    Err(found)
}

/// Recovery output (errors plus declared items) must itself be well-formed Rust.
fn assert_recovers(tokens: &TokenStream) {
    if let Err(error) = syn::parse2::<syn::File>(tokens.clone()) {
        panic!("recovery output does not parse ({error}):\n{tokens}");
    }
    assert!(tokens.to_string().contains("compile_error"), "{tokens}");
}

fn assert_parses(tokens: &TokenStream) {
    if let Err(error) = syn::parse2::<syn::File>(tokens.clone()) {
        panic!("expansion does not parse ({error}):\n{tokens}");
    }
}

/// Compact token text for `contains` checks: no spaces at all.
fn compact(tokens: &TokenStream) -> String {
    tokens.to_string().replace(' ', "")
}

/// Whether compact `text` contains `expected`, compared without spaces.
fn has(text: &str, expected: &str) -> bool {
    text.contains(&expected.replace(' ', ""))
}

// ---------------------------------------------------------------------------------------------
// Malformed input: always `Err`, with the expected message.

#[test]
fn malformed_event_args() {
    let item = quote!(
        pub struct OrderPaid {
            pub amount: u64,
        }
    );
    let cases: Vec<(TokenStream, &str)> = vec![
        (quote!(garbage tokens here), "unknown key `garbage`"),
        (quote!(= 5), "expected a key, found `= 5`"),
        (
            quote!("order.paid"),
            "to set the stable name, write `name = \"order.paid\"`",
        ),
        (quote!(5), "expected a key, found a literal"),
        (quote!((name = "x")), "without extra brackets"),
        (quote!([version = 2]), "without extra brackets"),
        (quote!(version = "x"), "must be an integer, not a string"),
        (quote!(version = -1), "cannot be negative"),
        (quote!(version = 99999999999), "too large"),
        (quote!(version = 0), "`version` starts at 1"),
        (quote!(version = 1.0), "whole number"),
        (quote!(version = 2i64), "type suffix"),
        (quote!(version = two), "integer literal"),
        (quote!(version = 1 + 1), "integer literal"),
        (quote!(version), "`version` needs a value"),
        (quote!(version = ), "missing value after `version =`"),
        (quote!(version(2)), "takes a value, not a list"),
        (quote!(version = 2 3), "separate keys with a comma"),
        (quote!(name = 5), "`name` must be a string literal"),
        (quote!(name = order_paid), "`name` must be a string literal"),
        (quote!(name = ""), "cannot be empty"),
        (
            quote!(name = "order paid"),
            "whitespace or control characters",
        ),
        (
            quote!(name = "order\npaid"),
            "whitespace or control characters",
        ),
        (quote!(name = "a", name = "b"), "duplicate key `name`"),
        (quote!(version = 2, version = 2), "duplicate key `version`"),
        (quote!(verison = 2), "did you mean `version`?"),
        (quote!(nmae = "x"), "did you mean `name`?"),
        (quote!(a::b = 1), "unknown key `a::b`"),
        (quote!(upcast(f)), "`upcast(...)` on version 1"),
        (
            quote!(version = 3, upcast(f)),
            "version 3 needs 2 upcasters (1->2, 2->3); found 1",
        ),
        (
            quote!(version = 2, upcast(f, g)),
            "version 2 needs 1 upcaster (1->2); found 2",
        ),
        (quote!(version = 2, upcast()), "found 0"),
        (quote!(version = 9, upcast(f)), "(1->2, 2->3, ..., 8->9)"),
        (quote!(version = 2, upcast = f), "parenthesized list"),
        (
            quote!(version = 2, upcast(5)),
            "expected an upcaster function, found a literal",
        ),
        (
            quote!(version = 2, upcast(f())),
            "expected an upcaster function, found `f()`",
        ),
        (quote!(crate = "my_es"), "no quotes"),
        (quote!(crate = 5), "must be the path of the es-core crate"),
        (
            quote!(crate = a<b>),
            "must be the path of the es-core crate",
        ),
        (quote!(crate), "`crate` needs a value"),
        (quote!(,), "empty entry in #[event(...)]"),
        (quote!(version = 2,,), "empty entry in #[event(...)]"),
    ];
    for (args, expected) in cases {
        match expand_event(args.clone(), item.clone()) {
            Ok(tokens) => panic!("#[event({args})] expanded:\n{tokens}"),
            Err(found) => assert!(
                found.iter().any(|m| m.contains(expected)),
                "#[event({args})]: expected {expected:?} in {found:?}"
            ),
        }
    }
}

#[test]
fn malformed_event_items() {
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(
                enum E {
                    A,
                }
            ),
            "`#[event]` goes on a struct: one struct per event",
        ),
        (quote!(union U { a: u8 }), "not a union"),
        (
            quote!(
                fn f() {}
            ),
            "`#[event]` goes on a struct",
        ),
        (
            quote!(
                struct G<T> {
                    t: T,
                }
            ),
            "cannot be generic",
        ),
        (
            quote!(
                struct W
                where
                    u8: Copy,
                {
                    t: u8,
                }
            ),
            "cannot be generic",
        ),
        (
            quote!(
                struct S<'a>(&'a str);
            ),
            "cannot be generic",
        ),
        (
            quote!(
                #[derive(Clone)]
                struct S;
            ),
            "`#[event]` already derives `Clone`",
        ),
        (
            quote!(
                #[derive(Debug, Default)]
                struct S;
            ),
            "already derives `Debug`",
        ),
        (
            quote!(
                #[derive(serde::Serialize)]
                struct S;
            ),
            "already derives `Serialize`",
        ),
        (
            quote!(
                #[derive(Deserialize)]
                struct S;
            ),
            "already derives `Deserialize`",
        ),
        (
            quote!(
                #[derive(PartialEq, Eq)]
                struct S;
            ),
            "already derives `PartialEq`",
        ),
        (quote!(struct), "expected identifier"),
        (quote!(), "expected"),
        (quote!(not an item), "expected"),
    ];
    for (item, expected) in cases {
        match expand_event(TokenStream::new(), item.clone()) {
            Ok(tokens) => panic!("#[event] {item} expanded:\n{tokens}"),
            Err(found) => assert!(
                found.iter().any(|m| m.contains(expected)),
                "#[event] {item}: expected {expected:?} in {found:?}"
            ),
        }
    }
}

#[test]
fn malformed_aggregates() {
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(),
            "missing `error = ...` in #[aggregate(...)]: the error type commands are refused with",
        ),
        (quote!(events(A), commands(C)), "missing `error = ...`"),
        (quote!(error = E, commands(C)), "missing `events(...)`"),
        (
            quote!(error = E, events(), commands(C)),
            "`events()` is empty",
        ),
        (
            quote!(error = E, events = A, commands(C)),
            "`events` takes a parenthesized list, not `=`",
        ),
        (
            quote!(error = E, events, commands(C)),
            "`events` needs a parenthesized list",
        ),
        (quote!(error = E, events(A)), "missing `commands(...)`"),
        (
            quote!(error = E, events(A), commands()),
            "`commands()` is empty",
        ),
        (
            quote!(error = E, events(A), commands(), async_commands()),
            "`commands()` is empty",
        ),
        (
            quote!(error = E, events(A, 5), commands(C)),
            "expected an event type, found a literal",
        ),
        (
            quote!(error = E, events(A, "B"), commands(C)),
            "expected an event type, found a literal",
        ),
        (
            quote!(error = E, events(A, b()), commands(C)),
            "expected an event type, found `b()`",
        ),
        (quote!(error = E, events(A, &B), commands(C)), "found `&B`"),
        (
            quote!(error = E, events(A, <B as T>::C), commands(C)),
            "expected an event type",
        ),
        (
            quote!(error = E, events(A B), commands(C)),
            "expected `,` after `A`",
        ),
        (quote!(error = E, events(A,, B), commands(C)), "empty entry"),
        (quote!(error = E, events(Self), commands(C)), "found `Self`"),
        (
            quote!(error = E, events(A, A), commands(C)),
            "`A` is listed twice in `events(...)`",
        ),
        (
            quote!(error = E, events(a::A, b::A), commands(C)),
            "would both be variant `A` of the generated `OrderEvent`",
        ),
        (
            quote!(error = E, events(A), commands(C), async_commands(C)),
            "in both `commands(...)` and `async_commands(...)`",
        ),
        (
            quote!(error = E, events(A), commands(x::C, y::C)),
            "generated `OrderCommand`",
        ),
        (
            quote!(error = "E", events(A), commands(C)),
            "found a literal",
        ),
        (quote!(error = 5, events(A), commands(C)), "found a literal"),
        (
            quote!(error = , events(A), commands(C)),
            "missing value after `error =`",
        ),
        (
            quote!(error(E), events(A), commands(C)),
            "takes a value, not a list",
        ),
        (
            quote!(error = E F, events(A), commands(C)),
            "`error` must be a type",
        ),
        (
            quote!(error = E, error = F, events(A), commands(C)),
            "duplicate key `error`",
        ),
        (
            quote!(error = E, evnets(A), commands(C)),
            "unknown key `evnets` in #[aggregate(...)]; did you mean `events`?",
        ),
        (
            quote!(error = E, events(A), comands(C)),
            "did you mean `commands`?",
        ),
        (
            quote!(error = E, events(A), commands(C), bogus = 1),
            "expected one of `name`, `error`",
        ),
        (
            quote!(error = E, events(A), commands(C), snapshot = 0),
            "snapshot schema versions start at 1",
        ),
        (
            quote!(error = E, events(A), commands(C), snapshot = -2),
            "cannot be negative",
        ),
        (
            quote!(error = E, events(A), commands(C), snapshot = "1"),
            "not a string",
        ),
        (
            quote!(error = E, events(A), commands(C), services = 1),
            "found a literal",
        ),
        (
            quote!(error = E, events(A), commands(C), name = 1),
            "must be a string literal",
        ),
        (
            quote!(error = E, events(A), commands(C), name = ""),
            "cannot be empty",
        ),
        (
            quote!(error = E, events(A), commands(C), name = "a b"),
            "whitespace",
        ),
        (
            quote!(error = E, events(A), commands(C), crate = "x"),
            "no quotes",
        ),
        (
            quote!(error = E, events((A, B)), commands(C)),
            "expected an event type",
        ),
        (
            quote!(error = E, events(A), commands(C),,),
            "empty entry in #[aggregate(...)]",
        ),
    ];
    for (args, expected) in cases {
        let input = quote!(
            #[aggregate(#args)]
            pub struct Order {
                total: u64,
            }
        );
        match expand_aggregate(input) {
            Ok(tokens) => panic!("#[aggregate({args})] expanded:\n{tokens}"),
            Err(found) => assert!(
                found.iter().any(|m| m.contains(expected)),
                "#[aggregate({args})]: expected {expected:?} in {found:?}"
            ),
        }
    }
}

#[test]
fn malformed_aggregate_items() {
    let ok = quote!(#[aggregate(error = E, events(A), commands(C))]);
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(#ok enum Order { A }),
            "derive `Aggregate` on the struct that holds the aggregate's state, not on an enum",
        ),
        (quote!(#ok union Order { a: u8 }), "not on a union"),
        (
            quote!(
                struct Order;
            ),
            "needs `#[aggregate(error = OrderError, events(...), commands(...))]`",
        ),
        (
            quote!(
                #[aggregate]
                struct Order;
            ),
            "expected `#[aggregate(...)]`",
        ),
        (
            quote!(
                #[aggregate = "x"]
                struct Order;
            ),
            "expected `#[aggregate(...)]`",
        ),
        (
            quote!(
                #[aggregate(error = E)]
                #[aggregate(error = F, events(A), commands(C))]
                struct Order;
            ),
            "duplicate key `error`",
        ),
    ];
    for (input, expected) in cases {
        match expand_aggregate(input.clone()) {
            Ok(tokens) => panic!("{input} expanded:\n{tokens}"),
            Err(found) => assert!(
                found.iter().any(|m| m.contains(expected)),
                "{input}: expected {expected:?} in {found:?}"
            ),
        }
    }
}

#[test]
fn malformed_projections() {
    let cases: Vec<(TokenStream, &str)> = vec![
        (
            quote!(
                struct P;
            ),
            "needs `#[projection(events(...))]`",
        ),
        (
            quote!(
                #[projection()]
                struct P;
            ),
            "missing `events(...)` in #[projection(...)]",
        ),
        (
            quote!(
                #[projection(name = "p")]
                struct P;
            ),
            "missing `events(...)`",
        ),
        (
            quote!(
                #[projection(events())]
                struct P;
            ),
            "`events()` is empty",
        ),
        (
            quote!(
                #[projection(events = A)]
                struct P;
            ),
            "parenthesized list",
        ),
        (
            quote!(
                #[projection(events(A, A))]
                struct P;
            ),
            "listed twice",
        ),
        (
            quote!(
                #[projection(events(1))]
                struct P;
            ),
            "found a literal",
        ),
        (
            quote!(
                #[projection(event(A))]
                struct P;
            ),
            "did you mean `events`?",
        ),
        (
            quote!(
                #[projection(events(A), error = E)]
                struct P;
            ),
            "unknown key `error`",
        ),
        (
            quote!(
                #[projection(events(A), name = "")]
                struct P;
            ),
            "cannot be empty",
        ),
        (
            quote!(
                #[projection(events(A))]
                enum P {
                    X,
                }
            ),
            "derive `Projection` on the struct",
        ),
    ];
    for (input, expected) in cases {
        match expand_projection(input.clone()) {
            Ok(tokens) => panic!("{input} expanded:\n{tokens}"),
            Err(found) => assert!(
                found.iter().any(|m| m.contains(expected)),
                "{input}: expected {expected:?} in {found:?}"
            ),
        }
    }
}

#[test]
fn keys_after_an_entry_that_is_not_a_key_are_still_checked() {
    let found = expand_event(
        quote!("order.paid", version = 0, (x), verison = 2),
        quote!(
            struct OrderPaid;
        ),
    );
    let Err(found) = found else {
        panic!("expanded");
    };
    assert_eq!(found.len(), 5, "{found:?}");
    assert!(
        found[0].contains("write `name = \"order.paid\"`"),
        "{found:?}"
    );
    assert!(found[1].contains("without extra brackets"), "{found:?}");
    // The bracketed entry is still read as keys.
    assert!(found[2].contains("unknown key `x`"), "{found:?}");
    // `version` is already given, so the misspelt key is not read as it.
    assert!(found[3].contains("did you mean `version`?"), "{found:?}");
    assert!(found[4].contains("`version` starts at 1"), "{found:?}");
}

#[test]
fn a_missing_comma_between_keys_is_reported_and_both_keys_are_read() {
    let found = expand_event(
        quote!(version = 2 name = "", crate = x, version = 3),
        quote!(
            struct OrderPaid;
        ),
    );
    let Err(found) = found else {
        panic!("expanded");
    };
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(found[0].contains("expected `,` between keys"), "{found:?}");
    assert!(found[1].contains("duplicate key `version`"), "{found:?}");
    // `name` was read after the missing comma: its empty value is judged.
    assert!(found[2].contains("cannot be empty"), "{found:?}");
}

#[test]
fn independent_mistakes_are_reported_together() {
    let found = expand_aggregate(quote! {
        #[aggregate(evnets(B, 5, B), commands(), snapshot = 0)]
        enum Order { X }
    });
    let Err(found) = found else {
        panic!("expanded");
    };
    let expected = [
        "not on an enum",
        // Read as `events`, so its entries are still checked.
        "did you mean `events`?",
        "found a literal",
        "missing `error = ...`",
        "listed twice",
        "`commands()` is empty",
        "snapshot schema versions start at 1",
    ];
    assert_eq!(found.len(), expected.len(), "{found:?}");
    for expected in expected {
        assert!(
            found.iter().any(|m| m.contains(expected)),
            "{expected:?} in {found:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Well-formed input: the generated shape.

#[test]
fn event_expansion() {
    let tokens = expand_event(
        quote!(name = "order.paid", version = 3, upcast(v1, crate::v2)),
        quote!(
            #[doc = "Paid."]
            pub struct OrderPaid {
                pub amount: u64,
            }
        ),
    )
    .unwrap_or_else(|found| panic!("{found:?}"));
    assert_parses(&tokens);
    let text = compact(&tokens);
    for expected in [
        "#[derive(::es_core::__private::serde::Serialize,::es_core::__private::serde::Deserialize,::core::clone::Clone,::core::fmt::Debug,::core::cmp::PartialEq)]",
        "#[serde(crate=\"::es_core::__private::serde\")]",
        "#[doc=\"Paid.\"]pubstructOrderPaid{pubamount:u64",
        "const_:()={impl::es_core::EventforOrderPaid{",
        "constNAME:&'staticstr=\"order.paid\";",
        "constVERSION:u32=3;",
        "constUPCASTERS:&'static[::es_core::upcast::Upcaster]=&[v1,crate::v2];",
    ] {
        assert!(has(&text, expected), "{expected}\nin\n{text}");
    }
}

#[test]
fn event_defaults() {
    for item in [
        quote!(
            struct HTTPRequestSent;
        ),
        quote!(
            struct HTTPRequestSent(u8, String);
        ),
        quote!(
            pub(crate) struct r#HTTPRequestSent {
                a: u8,
            }
        ),
    ] {
        let tokens = expand_event(TokenStream::new(), item).unwrap_or_else(|f| panic!("{f:?}"));
        assert_parses(&tokens);
        let text = compact(&tokens);
        assert!(
            text.contains("constNAME:&'staticstr=\"http_request_sent\";"),
            "{text}"
        );
        assert!(text.contains("constVERSION:u32=1;"), "{text}");
        assert!(!has(&text, "UPCASTERS"), "{text}");
    }
}

#[test]
fn crate_override_replaces_every_path() {
    let event = expand_event(
        quote!(crate = my_es),
        quote!(
            struct A;
        ),
    )
    .unwrap_or_else(|f| panic!("{f:?}"));
    let aggregate = expand_aggregate(quote! {
        #[aggregate(crate = my_es, error = E, events(A, B), commands(C), async_commands(D),
                    snapshot = 2)]
        struct Order;
    })
    .unwrap_or_else(|f| panic!("{f:?}"));
    let projection = expand_projection(quote! {
        #[projection(crate = ::my_es, events(A, B))]
        struct Summary;
    })
    .unwrap_or_else(|f| panic!("{f:?}"));
    for tokens in [&event, &aggregate, &projection] {
        assert_parses(tokens);
        let text = compact(tokens);
        assert!(!has(&text, "es_core"), "{text}");
        assert!(has(&text, "my_es::"), "{text}");
    }
    assert!(compact(&event).contains("#[serde(crate=\"my_es::__private::serde\")]"));
}

#[test]
fn aggregate_expansion() {
    let tokens = expand_aggregate(quote! {
        #[derive(Default)]
        #[aggregate(name = "order", error = OrderError, events(OrderPlaced, paid::OrderPaid),
                    commands(PlaceOrder), async_commands(PriceOrder), services = Pricing,
                    snapshot = 2)]
        pub(crate) struct Order<T: Clone> where T: Default { t: T }
    })
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert_parses(&tokens);
    let text = compact(&tokens);
    for expected in [
        "#[doc=\"The events of aggregate [`Order`], generated by `#[derive(Aggregate)]`.\"]",
        "pub(crate)enumOrderEvent{",
        "#[doc=\"Event [`paid::OrderPaid`].\"]OrderPaid(paid::OrderPaid),",
        "pub(crate)enumOrderCommand{",
        "PriceOrder(PriceOrder),",
        "impl::core::convert::From<paid::OrderPaid>forOrderEvent",
        "impl::core::convert::From<PriceOrder>forOrderCommand",
        "impl::es_core::EventSetforOrderEvent",
        "constNAMES:&'static[&'staticstr]=&[__es_event::<OrderPlaced>().name,__es_event::<paid::OrderPaid>().name];",
        "constfn__es_event<E:::es_core::Event+::core::cmp::PartialEq>()->__EsEvent<E>",
        "impl::core::clone::CloneforOrderEvent",
        "(__es_event::<paid::OrderPaid>().decode)(schema_version,payload).map(Self::OrderPaid)",
        "impl<T:Clone>::es_core::AggregateforOrder<T>whereT:Default{",
        "typeError=OrderError;",
        "typeServices=Pricing;",
        "typeSnapshot=::es_core::snapshot::JsonSnapshot<2>;",
        "<Selfas::es_core::Apply<paid::OrderPaid>>::apply(self,event)",
        "<Selfas::es_core::Handle<PlaceOrder>>::handle(self,command)",
        "<Selfas::es_core::HandleAsync<PriceOrder>>::handle_async(self,command,services).await",
        "services:&'__a<Selfas::es_core::Aggregate>::Services",
        "::es_core::__private::str_eq(__es_event::<OrderPlaced>().name,__es_event::<paid::OrderPaid>().name)",
    ] {
        assert!(has(&text, expected), "{expected}\nin\n{text}");
    }
}

#[test]
fn aggregate_defaults() {
    let tokens = expand_aggregate(quote! {
        #[aggregate(error = E, events(A), commands(C))]
        struct ShoppingCart;
    })
    .unwrap_or_else(|f| panic!("{f:?}"));
    let text = compact(&tokens);
    assert!(
        text.contains("constNAME:&'staticstr=\"shopping_cart\";"),
        "{text}"
    );
    assert!(text.contains("typeServices=();"), "{text}");
    assert!(
        text.contains("typeSnapshot=::es_core::snapshot::NoSnapshots;"),
        "{text}"
    );
    // No async commands: the services parameter is not used, and says so.
    assert!(has(&text, "_services:&'__a"), "{text}");
    // A single event: no pair to compare.
    assert!(!has(&text, "str_eq"), "{text}");
}

#[test]
fn pairwise_name_checks() {
    let tokens = expand_aggregate(quote! {
        #[aggregate(error = E, events(A, B, C, D), commands(X))]
        struct Order;
    })
    .unwrap_or_else(|f| panic!("{f:?}"));
    // 4 events: 6 pairs.
    assert_eq!(compact(&tokens).matches("str_eq").count(), 6);
}

#[test]
fn projection_expansion() {
    let tokens = expand_projection(quote! {
        #[projection(events(OrderPlaced, a::OrderPaid))]
        pub struct OrderSummary<'a, T> where T: Send { t: &'a T }
    })
    .unwrap_or_else(|f| panic!("{f:?}"));
    assert_parses(&tokens);
    let text = compact(&tokens);
    for expected in [
        "impl<'a,T>::es_core::ProjectionforOrderSummary<'a,T>whereT:Send{",
        "constNAME:&'staticstr=\"order_summary\";",
        "constEVENT_TYPES:&'static[&'staticstr]=&[<OrderPlacedas::es_core::Event>::NAME,<a::OrderPaidas::es_core::Event>::NAME];",
        "impl<'a,T,__Tx>::es_core::Dispatch<__Tx>forOrderSummary<'a,T>whereT:Send,__Tx:::core::marker::Send,Self:::es_core::Project<OrderPlaced,__Tx>,Self:::es_core::Project<a::OrderPaid,__Tx>,{",
        "::es_core::__private::decode_envelope::<a::OrderPaid>(event)",
        "<Selfas::es_core::Project<a::OrderPaid,__Tx>>::project(self,decoded,tx).await",
    ] {
        assert!(has(&text, expected), "{expected}\nin\n{text}");
    }
}

#[test]
fn expansions_are_deterministic() {
    let input = quote! {
        #[aggregate(error = E, events(A, B, C), commands(X, Y), async_commands(Z))]
        struct Order;
    };
    let first = expand_aggregate(input.clone()).map(|t| t.to_string());
    let second = expand_aggregate(input).map(|t| t.to_string());
    assert_eq!(first, second);
}

#[test]
fn recovery_declares_the_enums() {
    let input: DeriveInput = syn::parse_quote! {
        #[aggregate(events(A, 5), commands(C))]
        pub struct Order;
    };
    let expansion = aggregate::expand(&input);
    assert!(expansion.errors.is_err(), "expanded");
    let tokens = expansion.into_tokens();
    assert_recovers(&tokens);
    let text = compact(&tokens);
    assert!(
        has(&text, "pubenumOrderEvent{#[doc=\"Event [`A`].\"]A(A),}"),
        "{text}"
    );
    assert!(has(&text, "pubenumOrderCommand{"), "{text}");
    // No error type given: the impl assumes the conventional one, so the user's handlers
    // (which name it) raise no second error.
    assert!(has(&text, "impl::es_core::AggregateforOrder"), "{text}");
    assert!(has(&text, "typeError=OrderError;"), "{text}");

    let expansion = event::expand(
        quote!(version = 0),
        quote!(
            #[derive(Clone)]
            struct E;
        ),
    );
    assert!(expansion.errors.is_err(), "expanded");
    let tokens = expansion.into_tokens();
    assert_recovers(&tokens);
    let text = compact(&tokens);
    // The user's `Clone` is kept and not derived twice; the impl uses a valid version.
    assert!(has(&text, "::core::fmt::Debug"), "{text}");
    assert!(
        !has(&text, "::core::clone::Clone") && has(&text, "#[derive(Clone)]"),
        "{text}"
    );
    assert!(text.contains("constVERSION:u32=1;"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Fuzzing: no input makes a macro panic.

/// Attribute-ish fragments; every sequence of up to three is fed to each macro.
fn fragments() -> Vec<TokenStream> {
    vec![
        quote!(name = "a"),
        quote!(version = 2),
        quote!(upcast(f)),
        quote!(crate = x),
        quote!(error = E),
        quote!(events(A, B)),
        quote!(commands(C)),
        quote!(async_commands(D)),
        quote!(services = S),
        quote!(snapshot = 1),
        quote!(,),
        quote!(=),
        quote!(events),
        quote!(events()),
        quote!(5),
        quote!("s"),
        quote!(-),
        quote!(::),
        quote!((a, b)),
        quote!({ x }),
        quote!([y]),
        quote!(#),
        quote!(Self),
        quote!('a),
    ]
}

#[test]
fn fixed_fragment_combinations_never_panic() {
    // Every sequence of up to two fragments; three only over the punctuation and literals,
    // where the parser's edge cases are (all three-fragment sequences take half a minute).
    let fragments = fragments();
    let noise: Vec<TokenStream> = fragments.iter().skip(10).take(9).cloned().collect();
    feed(&TokenStream::new());
    for a in &fragments {
        feed(a);
        for b in &fragments {
            feed(&quote!(#a #b));
        }
    }
    for a in &noise {
        for b in &noise {
            for c in &noise {
                feed(&quote!(#a #b #c));
            }
        }
    }
}

/// Feeds `args` to every macro, in attribute position and (for `#[event]`) as the item.
fn feed(args: &TokenStream) {
    let _ = expand_event(
        args.clone(),
        quote!(
            struct S;
        ),
    );
    let _ = expand_event(TokenStream::new(), args.clone());
    let _ = expand_aggregate(quote!(
        #[aggregate(#args)]
        struct S;
    ));
    let _ = expand_projection(quote!(
        #[projection(#args)]
        struct S;
    ));
}

mod property {
    use proptest::prelude::*;

    use super::{
        Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree, feed,
    };

    fn leaf() -> impl Strategy<Value = TokenTree> {
        prop_oneof![
            prop::sample::select(vec![
                "name",
                "version",
                "upcast",
                "crate",
                "error",
                "events",
                "commands",
                "async_commands",
                "services",
                "snapshot",
                "Self",
                "self",
                "super",
                "A",
                "r#B",
                "struct",
                "enum",
                "union",
                "fn",
            ])
            .prop_map(|word| {
                TokenTree::Ident(match word.strip_prefix("r#") {
                    Some(raw) => Ident::new_raw(raw, Span::call_site()),
                    None => Ident::new(word, Span::call_site()),
                })
            }),
            prop::sample::select(vec!['=', ',', '-', ':', '<', '>', '#', '&', '!', '\''])
                .prop_map(|c| TokenTree::Punct(Punct::new(c, Spacing::Alone))),
            prop::sample::select(vec![':', '-', '='])
                .prop_map(|c| TokenTree::Punct(Punct::new(c, Spacing::Joint))),
            any::<u64>().prop_map(|n| TokenTree::Literal(Literal::u64_unsuffixed(n))),
            any::<i64>().prop_map(|n| TokenTree::Literal(Literal::i64_suffixed(n))),
            "[a-z .\n]{0,6}".prop_map(|s| TokenTree::Literal(Literal::string(&s))),
            any::<f32>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(|f| TokenTree::Literal(Literal::f32_unsuffixed(f))),
        ]
    }

    fn tree() -> impl Strategy<Value = TokenTree> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            (
                prop::sample::select(vec![
                    Delimiter::Parenthesis,
                    Delimiter::Bracket,
                    Delimiter::Brace,
                    Delimiter::None,
                ]),
                prop::collection::vec(inner, 0..6),
            )
                .prop_map(|(delimiter, trees)| {
                    TokenTree::Group(Group::new(delimiter, trees.into_iter().collect()))
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        #[test]
        fn random_tokens_never_panic(trees in prop::collection::vec(tree(), 0..10)) {
            let tokens: TokenStream = trees.into_iter().collect();
            feed(&tokens);
        }
    }
}
