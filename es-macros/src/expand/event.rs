//! `#[event]`: serde and the common derives on the struct, and its `Event` impl.

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};
use syn::Item;

use crate::internals::args;
use crate::internals::ast::{Derive, EventModel};
use crate::internals::check;
use crate::internals::ctxt::Ctxt;
use crate::internals::keys::EventKeys;

/// The struct with its derives and `Event` impl, or every mistake in `args` and `item`.
pub(crate) fn expand(args: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let cx = Ctxt::new();
    let tokens = generate(&cx, args, item);
    cx.check()?;
    Ok(tokens)
}

/// `error` followed by the item, with as much of the expansion as the mistakes allow.
pub(crate) fn recover(args: TokenStream, item: TokenStream, error: syn::Error) -> TokenStream {
    // The mistakes are all in `error` already; the second pass only rebuilds the model.
    let mut tokens = error.into_compile_error();
    tokens.extend(generate(&Ctxt::new(), args, item));
    tokens
}

fn generate(cx: &Ctxt, args: TokenStream, item: TokenStream) -> TokenStream {
    let args = args::parse_args::<EventKeys>(cx, args);
    let parsed = match syn::parse2::<Item>(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            cx.push(error);
            return item;
        }
    };
    match check::event(cx, args, &parsed) {
        Some(model) => code(&model),
        None => item,
    }
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
