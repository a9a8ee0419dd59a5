//! `#[event]`: serde and the common derives on the struct, and its `Event` impl.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::internals::ast::{Derive, EventModel};
use crate::internals::check;
use crate::internals::ctxt::Checked;

/// The struct with its derives and `Event` impl, after every mistake in `args` and `item`; an
/// item that is not a struct is emitted as written.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> Checked<TokenStream> {
    check::event(args, &item).map(|model| match model {
        Some(model) => code(&model),
        None => item,
    })
}

fn code(model: &EventModel) -> TokenStream {
    let krate = &model.crate_path;
    let derives: Vec<TokenStream> = model
        .derives
        .iter()
        .map(|&derive| {
            let name = format_ident!("{}", derive.name());
            match derive {
                Derive::Serialize | Derive::Deserialize => quote!(#krate::__private::serde::#name),
                Derive::Clone => quote!(::core::clone::Clone),
                Derive::Debug => quote!(::core::fmt::Debug),
                Derive::PartialEq => quote!(::core::cmp::PartialEq),
            }
        })
        .collect();
    let derive_attr = if derives.is_empty() {
        TokenStream::new()
    } else {
        quote!(#[derive(#(#derives),*)])
    };
    let uses_serde = model
        .derives
        .iter()
        .any(|d| matches!(d, Derive::Serialize | Derive::Deserialize));
    let serde_attr = if uses_serde {
        let serde = krate.serde_crate();
        quote!(#[serde(crate = #serde)])
    } else {
        TokenStream::new()
    };
    let item = &model.item;

    // A generic struct was refused; implementing `Event` for it would only add errors.
    let generic = !item.generics.params.is_empty() || item.generics.where_clause.is_some();
    let event_impl = if generic {
        TokenStream::new()
    } else {
        let ident = &item.ident;
        let name = &model.name;
        let version = Literal::u32_unsuffixed(model.version);
        let upcasters = if model.upcasters.is_empty() {
            TokenStream::new()
        } else {
            let upcasters = &model.upcasters;
            quote! {
                const UPCASTERS: &'static [#krate::upcast::Upcaster] = &[#(#upcasters),*];
            }
        };
        quote! {
            const _: () = {
                impl #krate::Event for #ident {
                    const NAME: &'static str = #name;
                    const VERSION: u32 = #version;
                    #upcasters
                }
            };
        }
    };

    quote! {
        #derive_attr
        #serde_attr
        #item
        #event_impl
    }
}
