//! Parenthesized lists, `events(OrderPlaced, OrderPaid)` and `upcast(v1_to_v2)`: every
//! well-formed entry is kept, every malformed one reported.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::parse::ParseStream;
use syn::parse::discouraged::Speculative as _;
use syn::{Error, Ident, Lit, Path, Token, Type, TypePath};

use super::args::{at_entry_end, skip_entry};
use super::ctxt::Ctxt;
use super::display;

/// A key and its parenthesized list: `events(OrderPlaced, OrderPaid)`.
pub(crate) struct KeyList<T> {
    /// The key as written (or as read, when misspelt), for messages about the list.
    pub(crate) key: Ident,
    /// `key(...)` as written, for errors about the whole list.
    pub(crate) whole: TokenStream,
    /// The well-formed entries; malformed ones were reported and left out.
    pub(crate) items: Vec<T>,
    /// Whether every entry was well-formed (so `items` is the whole list as written).
    pub(crate) well_formed: bool,
}

/// A parenthesized list `key(a, b, ...)`. Malformed entries are recorded and left out; the
/// list itself is kept so that the remaining entries are still used. `key = a` is reported
/// and read as `key(a)`.
pub(crate) fn list<T>(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &Ident,
    example: &str,
    mut entry: impl FnMut(&Ctxt, ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<KeyList<T>> {
    let input = meta.input;
    let mut whole = key.to_token_stream();
    let mut items = Vec::new();
    let mut well_formed = true;
    if input.peek(Token![=]) {
        let eq: Token![=] = input.parse()?;
        cx.error_spanned_by(
            quote!(#key #eq),
            format!("`{key}` takes a parenthesized list, not `=`: write `{example}`"),
        );
        eq.to_tokens(&mut whole);
        if !input.peek(syn::token::Paren) {
            let fork = input.fork();
            let written = skip_entry(&fork)?;
            if written.is_empty() {
                well_formed = false;
            } else {
                whole.extend(written);
                let single = Entries { single: true, key };
                single.parse(cx, input, &mut entry, &mut items, &mut well_formed)?;
            }
            return Ok(KeyList {
                key: key.clone(),
                whole,
                items,
                well_formed,
            });
        }
    }
    if !input.peek(syn::token::Paren) {
        return Err(Error::new_spanned(
            key,
            format!("`{key}` needs a parenthesized list: write `{example}`"),
        ));
    }
    let content;
    let paren = syn::parenthesized!(content in input);
    paren.surround(&mut whole, |_| {});
    let all = Entries { single: false, key };
    all.parse(cx, &content, &mut entry, &mut items, &mut well_formed)?;
    Ok(KeyList {
        key: key.clone(),
        whole,
        items,
        well_formed,
    })
}

/// How to read a list's entries.
struct Entries<'k> {
    /// Only the one entry before the next comma (the `key = a` form); otherwise all of them,
    /// to the end of the list's parentheses.
    single: bool,
    key: &'k Ident,
}

impl Entries<'_> {
    fn parse<T>(
        &self,
        cx: &Ctxt,
        input: ParseStream<'_>,
        entry: &mut impl FnMut(&Ctxt, ParseStream<'_>) -> syn::Result<T>,
        items: &mut Vec<T>,
        well_formed: &mut bool,
    ) -> syn::Result<()> {
        let key = self.key;
        while !input.is_empty() {
            if input.peek(Token![,]) {
                if self.single {
                    break;
                }
                let comma: Token![,] = input.parse()?;
                cx.error_spanned_by(
                    comma,
                    format!("empty entry in `{key}(...)`: remove this comma"),
                );
                continue;
            }
            let before = input.cursor();
            match entry(cx, input) {
                Ok(item) => items.push(item),
                Err(error) => {
                    *well_formed = false;
                    cx.push(error);
                    skip_entry(input)?;
                }
            }
            if input.cursor() == before {
                // Never loop on an entry that consumed nothing.
                skip_entry(input)?;
            }
            if self.single {
                break;
            }
            // After an entry: a comma, the end, or (reported by `entry`) the next entry.
            if input.peek(Token![,]) {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(())
    }
}

/// One type in a list: a plain type path whose last segment can name an enum variant.
pub(crate) fn type_entry(
    cx: &Ctxt,
    input: ParseStream<'_>,
    what: &str,
    example: &str,
) -> syn::Result<TypePath> {
    let fork = input.fork();
    if let Ok(ty) = fork.parse::<Type>() {
        match ty {
            Type::Path(path) if path.qself.is_none() && names_a_variant(&path.path) => {
                if at_entry_end(&fork) {
                    input.advance_to(&fork);
                    return Ok(path);
                }
                if fork.peek(Ident::peek_any) {
                    // `A B`: most likely a forgotten comma; keep `A` and read `B` next.
                    cx.push(Error::new(
                        fork.span(),
                        format!("expected `,` after `{}`", display::tokens(&path)),
                    ));
                    input.advance_to(&fork);
                    return Ok(path);
                }
            }
            _ => {}
        }
    }
    let (skipped, found) = skip_unexpected(input)?;
    Err(Error::new_spanned(
        skipped,
        format!("expected {what}, found {found}: list types by name, e.g. `{example}`"),
    ))
}

/// Whether the path's last segment is an identifier that can name a variant (`Self`, `crate`,
/// `super` and `self` cannot).
fn names_a_variant(path: &Path) -> bool {
    path.segments.last().is_some_and(|last| {
        !matches!(
            last.ident.to_string().as_str(),
            "Self" | "self" | "super" | "crate"
        )
    })
}

/// One function path in the `upcast(...)` list.
pub(crate) fn fn_entry(_: &Ctxt, input: ParseStream<'_>) -> syn::Result<Path> {
    let fork = input.fork();
    if let Ok(path) = fork.call(Path::parse_mod_style)
        && at_entry_end(&fork)
    {
        input.advance_to(&fork);
        return Ok(path);
    }
    let (skipped, found) = skip_unexpected(input)?;
    Err(Error::new_spanned(
        skipped,
        format!(
            "expected an upcaster function, found {found}: list functions by path, e.g. `upcast(v1_to_v2)`"
        ),
    ))
}

/// Skips an entry that is not what the list takes; returns it and how a message names it:
/// "a literal", or the tokens as written.
fn skip_unexpected(input: ParseStream<'_>) -> syn::Result<(TokenStream, String)> {
    // Whether it is a literal is seen before the entry is consumed.
    let literal = input.peek(Lit).then(|| "a literal".to_owned());
    let skipped = skip_entry(input)?;
    let found = literal.unwrap_or_else(|| format!("`{}`", display::tokens(&skipped)));
    Ok((skipped, found))
}
