//! Attribute syntax: `#[event(...)]`, `#[aggregate(...)]` and `#[projection(...)]` into raw,
//! well-formed values.
//!
//! This step checks the *form* of each key (a string literal where a string is expected, a list
//! where a list is expected, known keys given once) and reports every malformed key while
//! carrying on with the next one. What the values mean together (a version of 0, an empty list,
//! a missing key) is judged by `check`.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt as _;
use syn::meta::ParseNestedMeta;
use syn::parse::discouraged::Speculative as _;
use syn::parse::{ParseStream, Parser as _};
use syn::{Attribute, Error, Expr, Ident, Lit, LitInt, LitStr, Meta, Path, Token, Type, TypePath};

use super::ctxt::Ctxt;
use super::display;
use super::suggest;

/// A key and its parenthesized list: `events(OrderPlaced, OrderPaid)`.
pub(crate) struct KeyList<T> {
    pub(crate) key: Ident,
    /// `key(...)` as written, for errors about the whole list.
    pub(crate) whole: TokenStream,
    /// The well-formed entries; malformed ones were reported and left out.
    pub(crate) items: Vec<T>,
    /// Whether every entry was well-formed (so `items` is the whole list as written).
    pub(crate) well_formed: bool,
}

/// An integer key's value, with its literal for error spans.
pub(crate) struct IntValue {
    pub(crate) value: u32,
    pub(crate) lit: LitInt,
}

/// The keys of one attribute kind, as parsed so far.
pub(crate) trait Keys: Default {
    /// The attribute's name, for messages: `event`, `aggregate`, `projection`.
    const ATTR: &'static str;
    /// Every key the attribute accepts, in the order messages list them.
    const KEYS: &'static [&'static str];

    /// Parses the value of `key` (one of [`Keys::KEYS`]) from `meta`.
    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()>;
}

/// The keys of one attribute kind, plus which keys were written at all (well-formed or not),
/// so that a malformed key is not reported a second time as missing.
pub(crate) struct Args<K> {
    pub(crate) keys: K,
    written: Vec<Ident>,
}

impl<K: Keys> Args<K> {
    fn new() -> Self {
        Self {
            keys: K::default(),
            written: Vec::new(),
        }
    }

    /// Whether `key` was written, even with a value that did not parse.
    pub(crate) fn written(&self, key: &str) -> bool {
        self.written.iter().any(|k| k == key)
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
    let keys: Vec<String> = K::KEYS.iter().map(|k| format!("`{k}`")).collect();
    let keys = keys.join(", ");
    let first = entry.clone().into_iter().next();
    let message = match &first {
        Some(TokenTree::Literal(literal)) => match syn::parse2::<LitStr>(literal.to_token_stream())
        {
            Ok(string) if K::KEYS.contains(&"name") => format!(
                "expected a key, found a string: to set the stable name, write `name = {:?}`",
                string.value()
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
pub(crate) enum Found<K> {
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
        Some(key) => {
            let name = key.unraw().to_string();
            let suggestion = suggest::closest(&name, K::KEYS);
            if !K::KEYS.contains(&name.as_str()) {
                cx.error_spanned_by(key, unknown_key::<K>(&name));
                match suggestion {
                    // Read it as the key it most likely is, so that the value is still checked
                    // and used (no second error about that key missing).
                    Some(meant) if !args.written(meant) => {
                        let meant = Ident::new(meant, key.span());
                        args.written.push(meant.clone());
                        args.keys.parse_key(cx, &meant, meta)
                    }
                    _ => {
                        skip_entry(meta.input)?;
                        Ok(())
                    }
                }
            } else if args.written(&name) {
                Err(Error::new_spanned(
                    key,
                    format!(
                        "duplicate key `{name}` in #[{attr}(...)]: it is already given above; keep one",
                        attr = K::ATTR
                    ),
                ))
            } else {
                args.written.push(key.clone());
                args.keys.parse_key(cx, key, meta)
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
        .is_ok_and(|ident| K::KEYS.contains(&ident.unraw().to_string().as_str()))
}

fn unknown_key<K: Keys>(key: &str) -> String {
    let attr = K::ATTR;
    match suggest::closest(key, K::KEYS) {
        Some(best) => format!("unknown key `{key}` in #[{attr}(...)]; did you mean `{best}`?"),
        None => {
            let expected: Vec<String> = K::KEYS.iter().map(|k| format!("`{k}`")).collect();
            format!(
                "unknown key `{key}` in #[{attr}(...)]; expected one of {}",
                expected.join(", ")
            )
        }
    }
}

/// Whether `input` is at the end of the current entry (a comma or the end of the list).
fn at_entry_end(input: ParseStream<'_>) -> bool {
    input.is_empty() || input.peek(Token![,])
}

/// Consumes the rest of the current entry, up to (not including) the next comma.
fn skip_entry(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    let mut skipped = TokenStream::new();
    while !at_entry_end(input) {
        let tt: TokenTree = input.parse()?;
        skipped.extend([tt]);
    }
    Ok(skipped)
}

/// Consumes the rest of the entry and returns an error spanned on it, or on `fallback` when
/// the entry is empty.
fn reject_entry(input: ParseStream<'_>, fallback: Span, message: String) -> syn::Result<Error> {
    let skipped = skip_entry(input)?;
    Ok(if skipped.is_empty() {
        Error::new(fallback, message)
    } else {
        Error::new_spanned(skipped, message)
    })
}

// ---------------------------------------------------------------------------------------------
// Values.

/// The value stream after `key =`; an error saying what to write when the `=` or the value is
/// missing.
fn value<'a>(
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
fn flag(meta: &ParseNestedMeta<'_>, key: &Ident) -> syn::Result<Ident> {
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
fn lit_str(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<LitStr> {
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
fn int(input: ParseStream<'_>, key: &Ident, example: &str) -> syn::Result<IntValue> {
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
fn type_value(
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
fn crate_path(cx: &Ctxt, input: ParseStream<'_>, key: &Ident) -> syn::Result<Option<Path>> {
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

/// A parenthesized list `key(a, b, ...)`. Malformed entries are recorded and left out; the
/// list itself is kept so that the remaining entries are still used. `key = a` is reported
/// and read as `key(a)`.
fn list<T>(
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
fn type_entry(
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
    let found = if input.peek(Lit) {
        "a literal".to_owned()
    } else {
        String::new()
    };
    let skipped = skip_entry(input)?;
    let found = if found.is_empty() {
        format!("`{}`", display::tokens(&skipped))
    } else {
        found
    };
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
fn fn_entry(_: &Ctxt, input: ParseStream<'_>) -> syn::Result<Path> {
    let fork = input.fork();
    if let Ok(path) = fork.call(Path::parse_mod_style)
        && at_entry_end(&fork)
    {
        input.advance_to(&fork);
        return Ok(path);
    }
    let found = if input.peek(Lit) {
        "a literal".to_owned()
    } else {
        String::new()
    };
    let skipped = skip_entry(input)?;
    let found = if found.is_empty() {
        format!("`{}`", display::tokens(&skipped))
    } else {
        found
    };
    Err(Error::new_spanned(
        skipped,
        format!(
            "expected an upcaster function, found {found}: list functions by path, e.g. `upcast(v1_to_v2)`"
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// The three attributes.

const EVENT_NAME: &str = "name = \"order.paid\"";
const VERSION: &str = "version = 2";
const CRATE: &str = "crate = my_es";

/// `#[event(name = "...", version = N, upcast(f, g), crate = path)]`.
#[derive(Default)]
pub(crate) struct EventKeys {
    pub(crate) name: Option<LitStr>,
    pub(crate) version: Option<IntValue>,
    pub(crate) upcast: Option<KeyList<Path>>,
    pub(crate) crate_path: Option<Path>,
}

impl Keys for EventKeys {
    const ATTR: &'static str = "event";
    const KEYS: &'static [&'static str] = &["name", "version", "upcast", "crate"];

    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        match key.to_string().as_str() {
            "name" => {
                let value = lit_str(value(meta, key, EVENT_NAME)?, key, EVENT_NAME)?;
                self.name = Some(value);
            }
            "version" => {
                let value = int(value(meta, key, VERSION)?, key, VERSION)?;
                self.version = Some(value);
            }
            "upcast" => {
                self.upcast = Some(list(cx, meta, key, "upcast(v1_to_v2, v2_to_v3)", fn_entry)?);
            }
            "crate" => {
                self.crate_path = crate_path(cx, value(meta, key, CRATE)?, key)?;
            }
            // `parse_meta` only passes keys listed in `KEYS`.
            _ => {}
        }
        Ok(())
    }
}

/// `#[aggregate(name = "...", error = E, events(...), commands(...), async_commands(...),
/// services = S, snapshot = N, crate = path)]`.
#[derive(Default)]
pub(crate) struct AggregateKeys {
    pub(crate) name: Option<LitStr>,
    pub(crate) error: Option<Type>,
    pub(crate) events: Option<KeyList<TypePath>>,
    pub(crate) commands: Option<KeyList<TypePath>>,
    pub(crate) async_commands: Option<KeyList<TypePath>>,
    pub(crate) services: Option<Type>,
    pub(crate) snapshot: Option<IntValue>,
    pub(crate) crate_path: Option<Path>,
}

impl Keys for AggregateKeys {
    const ATTR: &'static str = "aggregate";
    const KEYS: &'static [&'static str] = &[
        "name",
        "error",
        "events",
        "commands",
        "async_commands",
        "services",
        "snapshot",
        "crate",
    ];

    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        const NAME: &str = "name = \"order\"";
        const ERROR: &str = "error = OrderError";
        const SERVICES: &str = "services = Pricing";
        const SNAPSHOT: &str = "snapshot = 1";
        match key.to_string().as_str() {
            "name" => {
                let value = lit_str(value(meta, key, NAME)?, key, NAME)?;
                self.name = Some(value);
            }
            "error" => {
                self.error = type_value(cx, value(meta, key, ERROR)?, key, ERROR)?;
            }
            "events" => {
                self.events = Some(list(
                    cx,
                    meta,
                    key,
                    "events(OrderPlaced, OrderPaid)",
                    |cx, input| {
                        type_entry(cx, input, "an event type", "events(OrderPlaced, OrderPaid)")
                    },
                )?);
            }
            "commands" => {
                self.commands = Some(list(
                    cx,
                    meta,
                    key,
                    "commands(PlaceOrder, PayOrder)",
                    |cx, input| {
                        type_entry(
                            cx,
                            input,
                            "a command type",
                            "commands(PlaceOrder, PayOrder)",
                        )
                    },
                )?);
            }
            "async_commands" => {
                self.async_commands = Some(list(
                    cx,
                    meta,
                    key,
                    "async_commands(PriceOrder)",
                    |cx, input| {
                        type_entry(cx, input, "a command type", "async_commands(PriceOrder)")
                    },
                )?);
            }
            "services" => {
                self.services = type_value(cx, value(meta, key, SERVICES)?, key, SERVICES)?;
            }
            "snapshot" => {
                let value = int(value(meta, key, SNAPSHOT)?, key, SNAPSHOT)?;
                self.snapshot = Some(value);
            }
            "crate" => {
                self.crate_path = crate_path(cx, value(meta, key, CRATE)?, key)?;
            }
            // `parse_meta` only passes keys listed in `KEYS`.
            _ => {}
        }
        Ok(())
    }
}

/// `#[projection(name = "...", events(...), begin_batch, end_batch, reset, crate = path)]`.
#[derive(Default)]
pub(crate) struct ProjectionKeys {
    pub(crate) name: Option<LitStr>,
    pub(crate) events: Option<KeyList<TypePath>>,
    pub(crate) begin_batch: Option<Ident>,
    pub(crate) end_batch: Option<Ident>,
    pub(crate) reset: Option<Ident>,
    pub(crate) crate_path: Option<Path>,
}

impl Keys for ProjectionKeys {
    const ATTR: &'static str = "projection";
    const KEYS: &'static [&'static str] = &[
        "name",
        "events",
        "begin_batch",
        "end_batch",
        "reset",
        "crate",
    ];

    fn parse_key(&mut self, cx: &Ctxt, key: &Ident, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        const NAME: &str = "name = \"order_summary\"";
        match key.to_string().as_str() {
            "name" => {
                let value = lit_str(value(meta, key, NAME)?, key, NAME)?;
                self.name = Some(value);
            }
            "events" => {
                self.events = Some(list(
                    cx,
                    meta,
                    key,
                    "events(OrderPlaced, OrderPaid)",
                    |cx, input| {
                        type_entry(cx, input, "an event type", "events(OrderPlaced, OrderPaid)")
                    },
                )?);
            }
            "begin_batch" => {
                self.begin_batch = Some(flag(meta, key)?);
            }
            "end_batch" => {
                self.end_batch = Some(flag(meta, key)?);
            }
            "reset" => {
                self.reset = Some(flag(meta, key)?);
            }
            "crate" => {
                self.crate_path = crate_path(cx, value(meta, key, CRATE)?, key)?;
            }
            // `parse_meta` only passes keys listed in `KEYS`.
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::TokenStream;
    use quote::quote;

    use super::{AggregateKeys, Args, EventKeys, Keys, ProjectionKeys, parse_args};
    use crate::internals::ctxt::Ctxt;

    fn errors<K: Keys>(args: TokenStream) -> (Args<K>, Vec<String>) {
        let cx = Ctxt::new();
        let parsed = parse_args::<K>(&cx, args);
        let messages = match cx.check() {
            Ok(()) => Vec::new(),
            Err(error) => error.into_iter().map(|e| e.to_string()).collect(),
        };
        (parsed, messages)
    }

    #[test]
    fn every_listed_key_is_parsed() {
        let (event, messages) =
            errors::<EventKeys>(quote!(name = "a.b", version = 2, upcast(f), crate = my_es));
        assert!(messages.is_empty(), "{messages:?}");
        for key in EventKeys::KEYS {
            assert!(event.written(key), "{key}");
        }
        let keys = event.keys;
        assert!(keys.name.is_some() && keys.version.is_some());
        assert!(keys.upcast.is_some() && keys.crate_path.is_some());

        let (aggregate, messages) = errors::<AggregateKeys>(quote!(
            name = "order",
            error = E,
            events(A),
            commands(B),
            async_commands(C),
            services = S,
            snapshot = 1,
            crate = my_es,
        ));
        assert!(messages.is_empty(), "{messages:?}");
        for key in AggregateKeys::KEYS {
            assert!(aggregate.written(key), "{key}");
        }
        let keys = aggregate.keys;
        assert!(keys.name.is_some() && keys.error.is_some() && keys.events.is_some());
        assert!(keys.commands.is_some() && keys.async_commands.is_some());
        assert!(keys.services.is_some() && keys.snapshot.is_some() && keys.crate_path.is_some());

        let (projection, messages) = errors::<ProjectionKeys>(quote!(
            name = "p",
            events(A, b::B),
            begin_batch,
            end_batch,
            reset,
            crate = ::x,
        ));
        assert!(messages.is_empty(), "{messages:?}");
        for key in ProjectionKeys::KEYS {
            assert!(projection.written(key), "{key}");
        }
        assert!(projection.keys.begin_batch.is_some() && projection.keys.end_batch.is_some());
        assert!(projection.keys.reset.is_some());
    }

    #[test]
    fn independent_mistakes_are_all_reported() {
        let (parsed, messages) = errors::<EventKeys>(quote!(
            nmae = "x",
            version = "2",
            upcast = f,
            crate = "my_es"
        ));
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("did you mean `name`?"), "{messages:?}");
        assert!(messages[1].contains("not a string"), "{messages:?}");
        assert!(messages[2].contains("parenthesized list"), "{messages:?}");
        assert!(messages[3].contains("no quotes"), "{messages:?}");
        // Written but malformed keys are remembered, so they are not reported as missing too;
        // a misspelt key is read as the one suggested.
        assert!(parsed.written("version") && parsed.written("upcast"));
        assert!(parsed.written("name"));
        assert_eq!(
            parsed.keys.name.map(|name| name.value()).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn version_values() {
        let cases: [(TokenStream, Option<u32>, &str); 10] = [
            (quote!(version = 1), Some(1), ""),
            (quote!(version = 7u32), Some(7), ""),
            (quote!(version = 4294967295), Some(u32::MAX), ""),
            (quote!(version = 4294967296), None, "too large"),
            (quote!(version = 99999999999), None, "too large"),
            (quote!(version = -1), None, "negative"),
            (quote!(version = 2u8), None, "suffix"),
            (quote!(version = 1.5), None, "whole number"),
            (quote!(version = x), None, "integer literal"),
            (quote!(version = ), None, "missing value"),
        ];
        for (args, value, message) in cases {
            let (parsed, messages) = errors::<EventKeys>(args.clone());
            let got = parsed.keys.version.map(|v| v.value);
            assert_eq!(got, value, "{args}");
            if message.is_empty() {
                assert!(messages.is_empty(), "{args}: {messages:?}");
            } else {
                assert_eq!(messages.len(), 1, "{args}: {messages:?}");
                assert!(messages[0].contains(message), "{args}: {messages:?}");
            }
        }
    }

    #[test]
    fn list_entries() {
        let (parsed, messages) = errors::<AggregateKeys>(quote!(
            events(A, 5, b::C, &D, E F, , G<u8>, Self, "x",)
        ));
        let names: Vec<String> = parsed
            .keys
            .events
            .map(|list| list.items.iter().map(|t| quote!(#t).to_string()).collect())
            .unwrap_or_default();
        // A forgotten comma is reported, and both entries are kept.
        assert_eq!(names, ["A", "b :: C", "E", "F", "G < u8 >"]);
        assert_eq!(messages.len(), 6, "{messages:?}");
        assert!(messages[0].contains("found a literal"), "{messages:?}");
        assert!(messages[1].contains("found `&D`"), "{messages:?}");
        assert!(
            messages[2].contains("expected `,` after `E`"),
            "{messages:?}"
        );
        assert!(messages[3].contains("empty entry"), "{messages:?}");
        assert!(messages[4].contains("found `Self`"), "{messages:?}");
        assert!(messages[5].contains("found a literal"), "{messages:?}");
    }

    #[test]
    fn mistakes_with_an_obvious_meaning_are_reported_and_still_used() {
        let (parsed, messages) = errors::<AggregateKeys>(quote!(
            events = A,
            commands = (B),
            error = "E",
            services = "Vec<u8>",
            crate = "x::y"
        ));
        assert_eq!(messages.len(), 5, "{messages:?}");
        let keys = parsed.keys;
        let events = keys.events.map(|list| list.items.len());
        assert_eq!(events, Some(1));
        // `commands = (B)`: reported, and read as the list it looks like.
        assert!(
            keys.commands
                .is_some_and(|list| list.well_formed && list.items.len() == 1)
        );
        assert_eq!(
            keys.error.map(|t| quote!(#t).to_string()).as_deref(),
            Some("E")
        );
        let services = keys.services.map(|t| quote!(#t).to_string());
        assert_eq!(services.as_deref(), Some("Vec < u8 >"));
        let krate = keys.crate_path.map(|p| quote!(#p).to_string());
        assert_eq!(krate.as_deref(), Some("x :: y"));
    }

    #[test]
    fn a_key_written_as_an_assignment_keeps_the_following_keys() {
        let (parsed, messages) =
            errors::<AggregateKeys>(quote!(events = A, commands(C), error = E));
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("not `=`"), "{messages:?}");
        assert!(parsed.keys.commands.is_some() && parsed.keys.error.is_some());
    }
}
