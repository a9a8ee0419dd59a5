//! The path generated code names the runtime by: `::es_core` unless `crate = path` says otherwise.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::{Ident, LitStr, Path, PathSegment, Token};

/// The runtime crate's path, as generated code writes it.
#[derive(Clone)]
pub(crate) struct CratePath {
    path: Path,
}

impl CratePath {
    /// `::es_core`, resolved at the macro's call site.
    pub(crate) fn es_core() -> Self {
        let mut path = Path {
            leading_colon: Some(<Token![::]>::default()),
            segments: syn::punctuated::Punctuated::new(),
        };
        path.segments
            .push(PathSegment::from(Ident::new("es_core", Span::call_site())));
        Self { path }
    }

    /// A user-supplied path (`crate = my_es`), already checked to be a plain module path.
    pub(crate) fn new(path: Path) -> Self {
        Self { path }
    }

    /// The `#[serde(crate = "...")]` value that makes serde's derives use our re-export.
    pub(crate) fn serde_crate(&self) -> LitStr {
        let mut text = String::new();
        if self.path.leading_colon.is_some() {
            text.push_str("::");
        }
        for segment in &self.path.segments {
            text.push_str(&segment.ident.to_string());
            text.push_str("::");
        }
        text.push_str("__private::serde");
        LitStr::new(&text, Span::call_site())
    }
}

impl ToTokens for CratePath {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.path.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::CratePath;

    #[test]
    fn default_is_absolute() {
        let krate = CratePath::es_core();
        assert_eq!(quote::quote!(#krate).to_string(), ":: es_core");
        assert_eq!(krate.serde_crate().value(), "::es_core::__private::serde");
    }

    #[test]
    fn override_keeps_its_shape() {
        let krate = CratePath::new(syn::parse_quote!(crate::my_es));
        assert_eq!(
            krate.serde_crate().value(),
            "crate::my_es::__private::serde"
        );
        let krate = CratePath::new(syn::parse_quote!(my_es));
        assert_eq!(krate.serde_crate().value(), "my_es::__private::serde");
    }
}
