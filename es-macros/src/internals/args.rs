//! The generic argument parser: `key = value, key(...), ...` into one attribute's keys.
//!
//! This step checks the *form* of each key (a string literal where a string is expected, a list
//! where a list is expected, known keys given once) and reports every malformed key while
//! carrying on with the next one. What the values mean together (a version of 0, an empty list,
//! a missing key) is judged by `check`. The keys each attribute accepts are in `keys`; the
//! parsers of their values in `values` and `list`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::ToTokens;
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser as _};
use syn::{Attribute, Error, Ident, LitStr, Meta, Token};

use super::ctxt::Ctxt;
use super::display;
use super::suggest;

/// One key of an attribute: each attribute's keys are an enum (see `keys`), read once from
/// their spelling so that everything after the parser matches on the enum, not on strings.
pub(crate) trait Key: Copy + Eq + 'static {
    /// Every key, in the order messages list them.
    const ALL: &'static [Self];
    /// The key that sets the stable name: what a bare string in the list most likely meant.
    const STABLE_NAME: Self;

    /// The key as users write it.
    fn name(self) -> &'static str;

    /// The key spelt `name` (as written, without `r#`).
    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|key| key.name() == name)
    }
}

/// The keys of one attribute kind, as parsed so far.
pub(crate) trait Keys: Default {
    /// The attribute's name, for messages: `event`, `aggregate`, `projection`.
    const ATTR: &'static str;
    /// The keys the attribute accepts.
    type Key: Key;

    /// Parses the value of `key`, written as `ident` (where errors about it are reported), from
    /// `meta`.
    fn parse_key(
        &mut self,
        cx: &Ctxt,
        key: Self::Key,
        ident: &Ident,
        meta: &ParseNestedMeta<'_>,
    ) -> syn::Result<()>;
}

/// The keys of one attribute kind, plus which keys were written at all (well-formed or not),
/// so that a malformed key is not reported a second time as missing.
pub(crate) struct Args<K: Keys> {
    pub(crate) keys: K,
    written: Vec<K::Key>,
}

impl<K: Keys> Args<K> {
    fn new() -> Self {
        Self {
            keys: K::default(),
            written: Vec::new(),
        }
    }

    /// Whether `key` was written, even with a value that did not parse.
    pub(crate) fn written(&self, key: K::Key) -> bool {
        self.written.contains(&key)
    }
}

/// Parses the arguments of an attribute macro: the `...` of `#[event(...)]`.
pub(crate) fn parse_args<K: Keys>(cx: &Ctxt, args: TokenStream) -> Args<K> {
    let mut parsed = Args::<K>::new();
    parse_keys(cx, &mut parsed, args);
    parsed
}

/// Parses `key = value, key(...), ...` into `args`, reporting every malformed entry.
///
/// `syn::meta::parser` stops at the first entry that does not start with a key (a string, a
/// bracket); the entry is reported here with what to write instead, and parsing resumes after
/// it so that the keys that follow are still checked.
fn parse_keys<K: Keys>(cx: &Ctxt, args: &mut Args<K>, tokens: TokenStream) {
    let mut rest = tokens;
    while !rest.is_empty() {
        // Where the entry after the last parsed key starts: where syn stopped, if it did.
        let mut after_last_key: Option<TokenStream> = None;
        let parser = syn::meta::parser(|meta| {
            parse_meta(cx, args, &meta)?;
            let fork = meta.input.fork();
            fork.parse::<Option<Token![,]>>()?;
            after_last_key = Some(fork.parse()?);
            Ok(())
        });
        let Err(error) = parser.parse2(rest.clone()) else {
            return;
        };
        if let Some(resume) = &after_last_key
            && matches!(resume.clone().into_iter().next(), Some(TokenTree::Ident(_)))
        {
            // A key that syn could not reach: a comma was missing before it (reported).
            rest = resume.clone();
            continue;
        }
        let (entry, comma, next) = split_entry(after_last_key.unwrap_or(rest));
        match (entry.is_empty(), comma) {
            (false, _) => {
                cx.push(not_a_key::<K>(&entry));
                // `#[aggregate((error = E, ...))]`: the keys are inside; still read them.
                if let Some(group) = single_group(&entry) {
                    parse_keys(cx, args, group);
                }
            }
            (true, Some(comma)) => cx.error_spanned_by(
                comma,
                format!("empty entry in #[{}(...)]: remove this comma", K::ATTR),
            ),
            (true, None) => {
                cx.push(error);
                return;
            }
        }
        rest = next;
    }
}

/// The first entry of `tokens` (up to a top-level comma), the comma, and what follows it.
fn split_entry(tokens: TokenStream) -> (TokenStream, Option<TokenTree>, TokenStream) {
    let mut entry = TokenStream::new();
    let mut trees = tokens.into_iter();
    for tree in trees.by_ref() {
        if let TokenTree::Punct(punct) = &tree
            && punct.as_char() == ','
        {
            return (entry, Some(tree), trees.collect());
        }
        entry.extend([tree]);
    }
    (entry, None, TokenStream::new())
}

/// The content of `entry` when it is one parenthesized or bracketed group.
fn single_group(entry: &TokenStream) -> Option<TokenStream> {
    let mut trees = entry.clone().into_iter();
    match (trees.next(), trees.next()) {
        (Some(TokenTree::Group(group)), None)
            if matches!(
                group.delimiter(),
                proc_macro2::Delimiter::Parenthesis | proc_macro2::Delimiter::Bracket
            ) =>
        {
            Some(group.stream())
        }
        _ => None,
    }
}

/// The error for an entry that does not start with a key.
fn not_a_key<K: Keys>(entry: &TokenStream) -> Error {
    let attr = K::ATTR;
    let keys = listed_keys::<K>();
    let first = entry.clone().into_iter().next();
    let message = match &first {
        Some(TokenTree::Literal(literal)) => match syn::parse2::<LitStr>(literal.to_token_stream())
        {
            Ok(string) => format!(
                "expected a key, found a string: to set the stable name, write `{name} = {:?}`",
                string.value(),
                name = K::Key::STABLE_NAME.name(),
            ),
            _ => format!(
                "expected a key, found a literal: write `key = value` entries; keys: {keys}"
            ),
        },
        Some(TokenTree::Group(_)) => format!(
            "expected a key, found `{}`: write the keys directly inside `#[{attr}(...)]`, without extra brackets",
            display::tokens(entry)
        ),
        _ => format!(
            "expected a key, found `{}`: write `key = value` or `key(...)` entries separated by commas; keys: {keys}",
            display::tokens(entry)
        ),
    };
    Error::new_spanned(entry, message)
}

/// What a derive input's helper attributes held.
pub(crate) enum Found<K: Keys> {
    /// No `#[name...]` attribute at all.
    Absent,
    /// Only attributes without a parenthesized list (`#[aggregate]`); already reported.
    Malformed,
    /// The keys of every `#[name(...)]` attribute, merged.
    Parsed(Args<K>),
}

/// Parses every `#[name(...)]` helper attribute of a derive input.
pub(crate) fn parse_attrs<K: Keys>(cx: &Ctxt, attrs: &[Attribute]) -> Found<K> {
    let mut parsed: Option<Args<K>> = None;
    let mut malformed = false;
    for attr in attrs.iter().filter(|attr| attr.path().is_ident(K::ATTR)) {
        if let Meta::List(list) = &attr.meta {
            let args = parsed.get_or_insert_with(Args::new);
            parse_keys(cx, args, list.tokens.clone());
        } else {
            malformed = true;
            cx.error_spanned_by(
                attr,
                format!(
                    "expected `#[{attr_name}(...)]` with a parenthesized list of keys",
                    attr_name = K::ATTR
                ),
            );
        }
    }
    match parsed {
        Some(args) => Found::Parsed(args),
        None if malformed => Found::Malformed,
        None => Found::Absent,
    }
}

/// One `key ...` entry: checks the key, parses its value, and on any mistake records it and
/// skips to the next comma so that the remaining keys are still checked.
fn parse_meta<K: Keys>(
    cx: &Ctxt,
    args: &mut Args<K>,
    meta: &ParseNestedMeta<'_>,
) -> syn::Result<()> {
    let outcome = match meta.path.get_ident() {
        None => Err(Error::new_spanned(
            &meta.path,
            unknown_key::<K>(&display::tokens(&meta.path)),
        )),
        Some(ident) => {
            let name = ident.unraw().to_string();
            match K::Key::from_name(&name) {
                None => {
                    cx.error_spanned_by(ident, unknown_key::<K>(&name));
                    match suggest::closest(&name, K::Key::ALL, K::Key::name) {
                        // Read it as the key it most likely is, so that the value is still
                        // checked and used (no second error about that key missing).
                        Some(meant) if !args.written(meant) => {
                            args.written.push(meant);
                            let meant_ident = Ident::new(meant.name(), ident.span());
                            args.keys.parse_key(cx, meant, &meant_ident, meta)
                        }
                        _ => {
                            skip_entry(meta.input)?;
                            Ok(())
                        }
                    }
                }
                Some(key) if args.written(key) => Err(Error::new_spanned(
                    ident,
                    format!(
                        "duplicate key `{name}` in #[{attr}(...)]: it is already given above; keep one",
                        name = key.name(),
                        attr = K::ATTR
                    ),
                )),
                Some(key) => {
                    args.written.push(key);
                    args.keys.parse_key(cx, key, ident, meta)
                }
            }
        }
    };
    match outcome {
        Ok(()) if at_entry_end(meta.input) => {}
        Ok(()) if starts_with_key::<K>(meta.input) => {
            // `version = 2 name = "x"`: a forgotten comma; `parse_keys` resumes at `name`.
            cx.push(meta.input.error(format!(
                "expected `,` between keys in #[{attr}(...)]",
                attr = K::ATTR
            )));
        }
        Ok(()) => {
            let extra = skip_entry(meta.input)?;
            cx.error_spanned_by(
                extra,
                format!(
                    "unexpected tokens in #[{attr}(...)]: separate keys with a comma",
                    attr = K::ATTR
                ),
            );
        }
        Err(error) => {
            cx.push(error);
            skip_entry(meta.input)?;
        }
    }
    Ok(())
}

/// Whether `input` starts with one of the attribute's keys.
fn starts_with_key<K: Keys>(input: ParseStream<'_>) -> bool {
    let fork = input.fork();
    fork.call(Ident::parse_any)
        .is_ok_and(|ident| K::Key::from_name(&ident.unraw().to_string()).is_some())
}

/// The error for a key the attribute does not have, with the key it most likely meant.
fn unknown_key<K: Keys>(key: &str) -> String {
    let attr = K::ATTR;
    match suggest::closest(key, K::Key::ALL, K::Key::name) {
        Some(best) => format!(
            "unknown key `{key}` in #[{attr}(...)]; did you mean `{best}`?",
            best = best.name()
        ),
        None => format!(
            "unknown key `{key}` in #[{attr}(...)]; expected one of {}",
            listed_keys::<K>()
        ),
    }
}

/// Every key of the attribute, quoted, for messages: `` `name`, `version`, ... ``.
fn listed_keys<K: Keys>() -> String {
    let keys: Vec<String> = K::Key::ALL
        .iter()
        .map(|key| format!("`{}`", key.name()))
        .collect();
    keys.join(", ")
}

/// Whether `input` is at the end of the current entry (a comma or the end of the list).
pub(crate) fn at_entry_end(input: ParseStream<'_>) -> bool {
    input.is_empty() || input.peek(Token![,])
}

/// Consumes the rest of the current entry, up to (not including) the next comma.
pub(crate) fn skip_entry(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    let mut skipped = TokenStream::new();
    while !at_entry_end(input) {
        let tt: TokenTree = input.parse()?;
        skipped.extend([tt]);
    }
    Ok(skipped)
}

/// Consumes the rest of the entry and returns an error spanned on it, or on `fallback` when
/// the entry is empty.
pub(crate) fn reject_entry(
    input: ParseStream<'_>,
    fallback: Span,
    message: String,
) -> syn::Result<Error> {
    let skipped = skip_entry(input)?;
    Ok(if skipped.is_empty() {
        Error::new(fallback, message)
    } else {
        Error::new_spanned(skipped, message)
    })
}
