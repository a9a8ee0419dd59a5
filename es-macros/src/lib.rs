//! Procedural macros for `es-core`. PLACEHOLDER: being written.
use proc_macro::TokenStream;

/// Placeholder.
#[proc_macro_attribute]
pub fn event(_attr: TokenStream, item: TokenStream) -> TokenStream { item }
/// Placeholder.
#[proc_macro_derive(Aggregate, attributes(aggregate))]
pub fn derive_aggregate(_item: TokenStream) -> TokenStream { TokenStream::new() }
/// Placeholder.
#[proc_macro_derive(Projection, attributes(projection))]
pub fn derive_projection(_item: TokenStream) -> TokenStream { TokenStream::new() }
