//! The values of `key = value` entries: string and integer literals, types, the crate path,
//! and flags written alone. Each parser says what to write instead of a malformed value.

use quote::quote;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::parse::discouraged::Speculative as _;
use syn::{Error, Expr, Ident, Lit, LitInt, LitStr, Path, Token, Type};

use super::args::{at_entry_end, reject_entry, skip_entry};
use super::ctxt::Ctxt;

/// An integer key's value, with its literal for error spans.
pub(crate) struct IntValue {
    pub(crate) value: u32,
    pub(crate) lit: LitInt,
}

/// The value stream after `key =`; an error saying what to write when the `=` or the value is
/// missing.
pub(crate) fn value<'a>(
    meta: &ParseNestedMeta<'a>,
    key: &Ident,
    example: &str,
) -> syn::Result<ParseStream<'a>> {
    let input = meta.input;
    if input.peek(Token![=]) {
        let eq: Token![=] = input.parse()?;
        if at_entry_end(input) {
            return Err(Error::new_spanned(
                quote!(#key #eq),
                format!("missing value after `{key} =`: write `{example}`"),
            ));
        }
        Ok(input)
    } else if input.peek(syn::token::Paren) {
        Err(Error::new_spanned(
            key,
            format!("`{key}` takes a value, not a list: write `{example}`"),
        ))
    } else {
        Err(Error::new_spanned(
            key,
            format!("`{key}` needs a value: write `{example}`"),
        ))
    }
}

/// A flag such as `end_batch`, written alone; returns its identifier, so that what the flag
/// requires can be reported on it.
pub(crate) fn flag(meta: &ParseNestedMeta<'_>, key: &Ident) -> syn::Result<Ident> {
    if !at_entry_end(meta.input) {
        let rest = skip_entry(meta.input)?;
        return Err(Error::new_spanned(
            quote!(#key #rest),
            format!("`{key}` is a flag and takes no value: write `{key}` alone"),
        ));
    }
    Ok(key.clone())
}

/// A string literal value.
pub(crate) fn lit_str(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        return input.parse();
    }
    Err(reject_entry(
        input,
        key.span(),
        format!("`{key}` must be a string literal: write `{example}`"),
    )?)
}

/// A `u32` integer literal value; negative, fractional, suffixed and oversized values are
/// refused with what to write instead.
pub(crate) fn int(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<IntValue> {
    let fork = input.fork();
    let Ok(expr) = fork.parse::<Expr>() else {
        return Err(reject_entry(
            input,
            key.span(),
            format!("`{key}` must be an integer literal: write `{example}`"),
        )?);
    };
    input.advance_to(&fork);
    let message = match &expr {
        Expr::Lit(syn::ExprLit {
            lit: Lit::Int(lit), ..
        }) => {
            if lit.base10_digits().starts_with('-') {
                format!("`{key}` cannot be negative: versions start at 1; write `{example}`")
            } else if !matches!(lit.suffix(), "" | "u32") {
                format!("write `{key}` without a type suffix: `{example}`")
            } else {
                match lit.base10_parse::<u32>() {
                    Ok(value) => {
                        return Ok(IntValue {
                            value,
                            lit: lit.clone(),
                        });
                    }
                    Err(_) => format!(
                        "`{key}` is too large: it must fit in a `u32` (at most {})",
                        u32::MAX
                    ),
                }
            }
        }
        Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            ..
        }) => format!("`{key}` cannot be negative: versions start at 1; write `{example}`"),
        Expr::Lit(syn::ExprLit {
            lit: Lit::Str(_), ..
        }) => {
            format!("`{key}` must be an integer, not a string: write `{example}`")
        }
        Expr::Lit(syn::ExprLit {
            lit: Lit::Float(_), ..
        }) => {
            format!("`{key}` must be a whole number: write `{example}`")
        }
        _ => format!("`{key}` must be an integer literal: write `{example}`"),
    };
    Err(Error::new_spanned(expr, message))
}

/// A type value (`error = OrderError`). A type written as a string (`error = "OrderError"`) is
/// reported and still used; `None` when there is no usable type (also reported).
pub(crate) fn type_value(
    cx: &Ctxt,
    input: ParseStream<'_>,
    key: &Ident,
    example: &str,
) -> syn::Result<Option<Type>> {
    if input.peek(Lit) {
        let lit: Lit = input.parse()?;
        cx.error_spanned_by(
            &lit,
            format!("`{key}` must be a type, found a literal: write `{example}` (no quotes)"),
        );
        return Ok(match lit {
            Lit::Str(lit) => lit.parse::<Type>().ok(),
            _ => None,
        });
    }
    let fork = input.fork();
    match fork.parse::<Type>() {
        Ok(ty) if at_entry_end(&fork) => {
            input.advance_to(&fork);
            Ok(Some(ty))
        }
        _ => Err(reject_entry(
            input,
            key.span(),
            format!("`{key}` must be a type: write `{example}`"),
        )?),
    }
}

/// The `crate = path` value: a plain module path. A path written as a string is reported and
/// still used; `None` when there is no usable path (also reported).
pub(crate) fn crate_path(
    cx: &Ctxt,
    input: ParseStream<'_>,
    key: &Ident,
) -> syn::Result<Option<Path>> {
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        cx.error_spanned_by(
            &lit,
            "`crate` takes a path, not a string: write `crate = my_es` (no quotes)",
        );
        return Ok(lit.parse_with(Path::parse_mod_style).ok());
    }
    let fork = input.fork();
    match fork.call(Path::parse_mod_style) {
        Ok(path) if at_entry_end(&fork) => {
            input.advance_to(&fork);
            Ok(Some(path))
        }
        _ => Err(reject_entry(
            input,
            key.span(),
            format!(
                "`{key}` must be the path of the es-core crate, such as `crate = my_es` or `crate = crate::es`"
            ),
        )?),
    }
}
