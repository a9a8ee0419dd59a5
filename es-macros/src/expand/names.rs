//! Compile-time checks that the events listed in one attribute have distinct stable names,
//! shared by `#[derive(Aggregate)]` and `#[derive(Projection)]`: a name is a const of the
//! user's `Event` impl, which the macro cannot read.

use proc_macro2::TokenStream;
use quote::quote_spanned;

use crate::internals::ast::Listed;
use crate::internals::crate_path::CratePath;

/// For every pair of listed events, a compile-time check that their stable names differ,
/// reported at the later one. `name` gives a listed event's stable name as a const expression.
pub(crate) fn distinct_names(
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
