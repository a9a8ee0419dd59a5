//! `#[derive(Projection)]`: the `Projection` impl (name and consumed event names) and the
//! `Dispatch` impl that decodes each consumed event and calls the user's `Project` impl.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::{DeriveInput, GenericParam, Ident, TypeParam};

use super::names::distinct_names;
use crate::internals::ast::ProjectionModel;
use crate::internals::check;
use crate::internals::ctxt::Checked;

/// The generated impls, after every mistake in the input. After a mistake they are those of
/// the closest model, so that the user's `Project` impls (which need `Projection`) do not fail
/// on top of it.
pub(crate) fn expand(input: &DeriveInput) -> Checked<TokenStream> {
    check::projection(input).map(|model| code(&model))
}

fn code(model: &ProjectionModel) -> TokenStream {
    let krate = &model.crate_path;
    let ident = &model.ident;
    let name = &model.name;
    let (impl_generics, ty_generics, where_clause) = model.generics.split_for_impl();
    let names = model.events.iter().map(|listed| {
        let ty = &listed.ty;
        quote!(<#ty as #krate::Event>::NAME)
    });

    // `Dispatch<Tx>` holds for every unit of work `Tx` that all the `Project` impls accept;
    // each bound is located at its event in the list, so a missing impl is reported there.
    let tx = Ident::new("__Tx", Span::call_site());
    let mut dispatch_generics = model.generics.clone();
    dispatch_generics
        .params
        .push(GenericParam::Type(TypeParam::from(tx.clone())));
    let (dispatch_impl_generics, _, _) = dispatch_generics.split_for_impl();
    let predicates = where_clause
        .map(|clause| clause.predicates.iter())
        .into_iter()
        .flatten();
    let project_bounds = model.events.iter().map(|listed| {
        let ty = &listed.ty;
        quote_spanned!(listed.span=> Self: #krate::Project<#ty, #tx>)
    });
    // With `begin_batch`, the user's `BeginBatch` impl sees each batch's events before they
    // are dispatched; the bound sits on the flag, so a missing impl is reported there.
    let (begin_batch_bound, begin_batch) = match &model.begin_batch {
        Some(flag) => (
            Some(quote_spanned!(flag.span()=> Self: #krate::BeginBatch<#tx>,)),
            quote! {
                fn run_begin_batch<'__a>(
                    &'__a mut self,
                    events: &'__a [#krate::RecordedEvent],
                    tx: &'__a mut #tx,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<(), #krate::HandlerError>,
                > + ::core::marker::Send + '__a {
                    <Self as #krate::BeginBatch<#tx>>::begin_batch(self, events, tx)
                }
            },
        ),
        None => (None, TokenStream::new()),
    };
    // With `end_batch`, the user's `EndBatch` impl runs before each commit; the bound sits on
    // the flag, so a missing impl is reported there.
    let (end_batch_bound, end_batch) = match &model.end_batch {
        Some(flag) => (
            Some(quote_spanned!(flag.span()=> Self: #krate::EndBatch<#tx>)),
            quote! {
                fn run_end_batch<'__a>(
                    &'__a mut self,
                    tx: &'__a mut #tx,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<(), #krate::HandlerError>,
                > + ::core::marker::Send + '__a {
                    <Self as #krate::EndBatch<#tx>>::end_batch(self, tx)
                }
            },
        ),
        None => (None, TokenStream::new()),
    };
    // With `reset`, the user's `Reset` impl clears the read model for a rebuild; the bound sits
    // on the flag, so a missing impl is reported there.
    let (reset_bound, reset) = match &model.reset {
        Some(flag) => (
            Some(quote_spanned!(flag.span()=> Self: #krate::Reset<#tx>,)),
            quote! {
                const RESETS: bool = true;

                fn run_reset<'__a>(
                    &'__a mut self,
                    tx: &'__a mut #tx,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<(), #krate::HandlerError>,
                > + ::core::marker::Send + '__a {
                    <Self as #krate::Reset<#tx>>::reset(self, tx)
                }
            },
        ),
        None => (None, TokenStream::new()),
    };
    let handlers = model.events.iter().map(|listed| {
        let ty = &listed.ty;
        quote! {
            if event.event_type == <#ty as #krate::Event>::NAME {
                let decoded = #krate::__private::decode_envelope::<#ty>(event).map_err(|error| {
                    #krate::ProjectionError::decode(<Self as #krate::Projection>::NAME, event, error)
                })?;
                return <Self as #krate::Project<#ty, #tx>>::project(self, decoded, tx)
                    .await
                    .map_err(|error| {
                        #krate::ProjectionError::handler(
                            <Self as #krate::Projection>::NAME,
                            event,
                            error,
                        )
                    });
            }
        }
    });
    // Only while recovering from an error can the list be empty; keep that output warning-free.
    let unused = if model.events.is_empty() {
        quote!(let _ = (event, tx);)
    } else {
        TokenStream::new()
    };
    let distinct = distinct_names(
        krate,
        &model.events,
        "#[projection(events(...))]",
        |listed| {
            let ty = &listed.ty;
            quote!(<#ty as #krate::Event>::NAME)
        },
    );

    let probe = any_unit_of_work_probe(model);

    quote! {
        const _: () = {
            impl #impl_generics #krate::Projection for #ident #ty_generics #where_clause {
                const NAME: &'static str = #name;
                const EVENT_TYPES: &'static [&'static str] = &[#(#names),*];

                #probe
            }

            impl #dispatch_impl_generics #krate::Dispatch<#tx> for #ident #ty_generics
            where
                #(#predicates,)*
                #tx: ::core::marker::Send,
                #(#project_bounds,)*
                #begin_batch_bound
                #reset_bound
                #end_batch_bound
            {
                fn dispatch<'__a>(
                    &'__a mut self,
                    event: &'__a #krate::RecordedEvent,
                    tx: &'__a mut #tx,
                ) -> impl ::core::future::Future<
                    Output = ::core::result::Result<(), #krate::ProjectionError>,
                > + ::core::marker::Send + '__a {
                    async move {
                        #unused
                        #(#handlers)*
                        ::core::result::Result::Ok(())
                    }
                }

                #begin_batch

                #reset

                #end_batch
            }

            #distinct
        };
    }
}

/// `Projection::__accepts_any_unit_of_work`: whether the projection dispatches in a unit of work
/// that no handler can name (`__EsAnyUnit`, private to this expansion), which holds only when
/// every handler is generic over it. Answered by method resolution (an impl whose bound fails
/// is passed over for one on a reference), which needs the concrete type: a generic projection
/// keeps the default `false`.
fn any_unit_of_work_probe(model: &ProjectionModel) -> TokenStream {
    if !model.generics.params.is_empty() {
        return TokenStream::new();
    }
    let krate = &model.crate_path;
    quote! {
        fn __accepts_any_unit_of_work() -> bool {
            struct __EsAnyUnit;
            struct __EsProbe<T>(::core::marker::PhantomData<T>);
            trait __EsAny {
                fn __es_any(&self) -> bool {
                    true
                }
            }
            trait __EsSome {
                fn __es_any(&self) -> bool {
                    false
                }
            }
            impl<T: #krate::Dispatch<__EsAnyUnit>> __EsAny for __EsProbe<T> {}
            impl<T> __EsSome for &__EsProbe<T> {}
            (&__EsProbe::<Self>(::core::marker::PhantomData)).__es_any()
        }
    }
}
