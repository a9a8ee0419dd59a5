//! The error accumulator: every step reports into one [`Ctxt`], and the invocation ends once
//! with all errors combined, each on its own span, next to what was built despite them
//! ([`Checked`]).

use std::cell::RefCell;
use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Collects the errors of one macro invocation.
///
/// Interior mutability lets the attribute parser's callbacks report while other parts of the
/// same invocation hold shared references.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: RefCell<Vec<syn::Error>>,
}

impl Ctxt {
    /// An accumulator with no errors.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an error spanned on `tokens` (first to last token).
    pub(crate) fn error_spanned_by<T: ToTokens>(&self, tokens: T, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    /// Records an error that already carries its span.
    pub(crate) fn push(&self, error: syn::Error) {
        self.errors.borrow_mut().push(error);
    }

    /// Ends the invocation: `value` with every recorded error.
    pub(crate) fn finish<T>(self, value: T) -> Checked<T> {
        Checked {
            value,
            errors: self.check(),
        }
    }

    /// All recorded errors as one [`syn::Error`], in the order they were found.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_inner().into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut combined) => {
                for error in errors {
                    combined.combine(error);
                }
                Err(combined)
            }
        }
    }
}

/// What one invocation built, with the mistakes found on the way.
///
/// A mistake does not replace the result: the macros build the closest model they can (see
/// `ast`) and emit its code next to the errors, so the user sees the mistakes rather than a
/// cascade of "cannot find" errors about the names the macro should have declared. The model
/// is built once; nothing is checked a second time to recover.
pub(crate) struct Checked<T> {
    /// The closest result to what was written; the exact one when there are no errors.
    pub(crate) value: T,
    /// Every mistake, combined in the order found; `Ok` when there was none.
    pub(crate) errors: syn::Result<()>,
}

impl<T> Checked<T> {
    /// The same errors next to `f` of the value: a model's code, say.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Checked<U> {
        Checked {
            value: f(self.value),
            errors: self.errors,
        }
    }
}

impl Checked<TokenStream> {
    /// What the macro emits: each error as a `compile_error!`, then the code.
    pub(crate) fn into_tokens(self) -> TokenStream {
        match self.errors {
            Ok(()) => self.value,
            Err(error) => {
                let mut tokens = error.into_compile_error();
                tokens.extend(self.value);
                tokens
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::Span;
    use quote::quote;

    use super::Ctxt;

    #[test]
    fn no_errors_is_ok() {
        assert!(Ctxt::new().check().is_ok());
    }

    #[test]
    fn errors_combine_in_order() {
        let cx = Ctxt::new();
        cx.push(syn::Error::new(Span::call_site(), "first"));
        cx.error_spanned_by(quote!(a b), "second");
        let messages: Vec<String> = match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        assert_eq!(messages, ["first", "second"]);
    }

    #[test]
    fn errors_come_before_the_code() {
        let clean = Ctxt::new().finish(quote!(
            struct S;
        ));
        assert_eq!(clean.into_tokens().to_string(), "struct S ;");

        let cx = Ctxt::new();
        cx.error_spanned_by(quote!(a), "wrong");
        let tokens = cx
            .finish(quote!(
                struct S;
            ))
            .into_tokens()
            .to_string();
        assert!(
            tokens.starts_with(":: core :: compile_error !") && tokens.ends_with("struct S ;"),
            "{tokens}"
        );
    }
}
