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

use proc_macro2::TokenStream;
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

/// For every pair of listed events, a compile-time check that their stable names differ,
/// reported at the later one.
fn distinct_names(krate: &CratePath, events: &[Listed], list: &str) -> TokenStream {
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
            let (a, b) = (&earlier.ty, &later.ty);
            checks.extend(quote_spanned! {later.span=>
                const _: () = ::core::assert!(
                    !#krate::__private::str_eq(
                        <#a as #krate::Event>::NAME,
                        <#b as #krate::Event>::NAME,
                    ),
                    #message,
                );
            });
        }
    }
    checks
}
