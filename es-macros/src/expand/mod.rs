//! Code generation: one module per macro, each a validated model in, tokens out.
//!
//! Every module has the same two entry points:
//!
//! - `expand` builds the model and generates the code, or fails with every mistake found;
//! - `recover`, after `expand` failed, generates what the closest model still allows next to
//!   the errors, so the user sees the mistakes and not a cascade of "cannot find" errors
//!   about the names the macro should have declared.
//!
//! Generated code names everything by absolute path and puts impls inside
//! `const _: () = { ... };`; code that checks a user's list entry is located at that entry.

pub(crate) mod aggregate;
pub(crate) mod event;
pub(crate) mod projection;

#[cfg(test)]
mod tests;

use proc_macro2::{Group, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};

use crate::internals::ast::Listed;
use crate::internals::crate_path::CratePath;

/// `match scrutinee { arms }`, or `match *scrutinee {}` when there are no arms (a reference
/// to an empty enum is not itself uninhabited).
fn match_ref(scrutinee: &impl ToTokens, arms: &[TokenStream]) -> TokenStream {
    if arms.is_empty() {
        quote!(match *#scrutinee {})
    } else {
        quote!(match #scrutinee { #(#arms)* })
    }
}

/// `tokens` with every token located at `span`, so that an error about the whole of it (a type
/// built from the crate path and a user's literal) points at one place.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut respanned = Group::new(group.delimiter(), respan(group.stream(), span));
                respanned.set_span(span);
                TokenTree::Group(respanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}

/// For every pair of listed events, a compile-time check that their stable names differ,
/// reported at the later one. `name` gives a listed event's stable name as a const expression.
fn distinct_names(
    krate: &CratePath,
    events: &[Listed],
    list: &str,
    name: impl Fn(&Listed) -> TokenStream,
) -> TokenStream {
    let mut checks = TokenStream::new();
    for (j, later) in events.iter().enumerate() {
        for earlier in events.iter().take(j) {
            let message = format!(
                "events `{a}` and `{b}` listed in {list} share one stable name; give one of them `#[event(name = \"...\")]`",
                a = earlier.display,
                b = later.display,
            )
            .replace('{', "{{")
            .replace('}', "}}");
            let (a, b) = (name(earlier), name(later));
            checks.extend(quote_spanned! {later.span=>
                const _: () = ::core::assert!(
                    !#krate::__private::str_eq(#a, #b),
                    #message,
                );
            });
        }
    }
    checks
}
