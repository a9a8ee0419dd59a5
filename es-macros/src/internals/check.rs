//! What the parsed keys mean together, and what the annotated item must be: builds the models
//! of `ast`, reporting every rule a user broke.
//!
//! Each entry point returns the closest model it can (see `ast`) together with every mistake
//! found while building it ([`Checked`]): the model is built once, errors or not.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt as _;
use syn::punctuated::Punctuated;
use syn::{Attribute, Data, DeriveInput, Item, LitStr, Path, Token, Type, TypePath};

use super::args::{Args, Found, Key, parse_args, parse_attrs};
use super::ast::{AggregateModel, Derive, EventModel, Listed, ProjectionModel, Snapshot};
use super::case::snake_case;
use super::crate_path::CratePath;
use super::ctxt::{Checked, Ctxt};
use super::display;
use super::keys::{
    AggregateKey, AggregateKeys, EventKey, EventKeys, ProjectionKey, ProjectionKeys,
};
use super::list::KeyList;
use super::values::IntValue;

// ---------------------------------------------------------------------------------------------
// #[event]

/// `#[event(args)]` on `item`: the model, or `None` when the item is not a struct (it is then
/// emitted as written, next to the error).
pub(crate) fn event(args: TokenStream, item: &TokenStream) -> Checked<Option<EventModel>> {
    let cx = Ctxt::new();
    let args = parse_args::<EventKeys>(&cx, args);
    let model = match syn::parse2::<Item>(item.clone()) {
        Ok(item) => event_model(&cx, args, &item),
        Err(error) => {
            cx.push(error);
            None
        }
    };
    cx.finish(model)
}

fn event_model(cx: &Ctxt, args: Args<EventKeys>, item: &Item) -> Option<EventModel> {
    let item = match item {
        Item::Struct(item) => item.clone(),
        Item::Enum(item) => {
            let (keyword, ident) = (&item.enum_token, &item.ident);
            cx.error_spanned_by(
                quote!(#keyword #ident),
                "`#[event]` goes on a struct: one struct per event; list the structs in `#[aggregate(events(...))]`",
            );
            return None;
        }
        Item::Union(item) => {
            let (keyword, ident) = (&item.union_token, &item.ident);
            cx.error_spanned_by(
                quote!(#keyword #ident),
                "`#[event]` goes on a struct, not a union: events are serialised field by field",
            );
            return None;
        }
        _ => {
            cx.push(syn::Error::new(
                Span::call_site(),
                "`#[event]` goes on a struct: `#[event] pub struct OrderPaid { ... }`",
            ));
            return None;
        }
    };
    if !item.generics.params.is_empty() || item.generics.where_clause.is_some() {
        let generics = &item.generics;
        let where_clause = &generics.where_clause;
        cx.error_spanned_by(
            quote!(#generics #where_clause),
            "`#[event]` structs cannot be generic: a stored event name stands for one concrete type; give the fields concrete types",
        );
    }

    let version_written = args.written(EventKey::Version);
    let keys = args.keys;
    let default_name = snake_case(&item.ident.unraw().to_string());
    let name = stable_name(cx, keys.name.as_ref(), default_name, "event");

    // `None` when the version is unknown (malformed or zero): the upcasters are not judged
    // against a number the user did not mean.
    let version = match &keys.version {
        Some(IntValue { value: 0, lit }) => {
            cx.error_spanned_by(
                lit,
                "`version` starts at 1: the first version of an event is `version = 1`, the next `version = 2`",
            );
            None
        }
        Some(version) => Some(version.value),
        None if version_written => None,
        None => Some(1),
    };
    let upcasters = keys
        .upcast
        .map(|list| upcasters(cx, list, version))
        .unwrap_or_default();

    let derives = derives(cx, &item.attrs);
    Some(EventModel {
        item,
        name,
        version: version.unwrap_or(1),
        upcasters,
        derives,
        crate_path: crate_path(keys.crate_path),
    })
}

/// The upcaster list when it fits the version; otherwise an error and no upcasters.
fn upcasters(cx: &Ctxt, list: KeyList<Path>, version: Option<u32>) -> Vec<Path> {
    let Some(version) = version else {
        return list.items;
    };
    if version == 1 {
        cx.error_spanned_by(
            &list.whole,
            "`upcast(...)` on version 1: there is no older version to upcast from; bump `version` (e.g. `version = 2`) or remove `upcast(...)`",
        );
        return Vec::new();
    }
    let needed = u64::from(version) - 1;
    let found = u64::try_from(list.items.len()).unwrap_or(u64::MAX);
    if needed == found || !list.well_formed {
        return list.items;
    }
    let steps = if needed <= 4 {
        (1..u64::from(version))
            .map(|from| format!("{from}->{}", from + 1))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        format!("1->2, 2->3, ..., {}->{version}", version - 1)
    };
    let plural = if needed == 1 { "" } else { "s" };
    cx.error_spanned_by(
        &list.whole,
        format!(
            "version {version} needs {needed} upcaster{plural} ({steps}); found {found}: list one function per step, oldest first"
        ),
    );
    Vec::new()
}

/// The derives `#[event]` adds, minus those the user already wrote (each one an error).
fn derives(cx: &Ctxt, attrs: &[Attribute]) -> Vec<Derive> {
    let mut derives = Derive::ALL.to_vec();
    for attr in attrs.iter().filter(|attr| attr.path().is_ident("derive")) {
        // A malformed `#[derive(...)]` is the compiler's to report.
        let Ok(paths) = attr.parse_args_with(Punctuated::<Path, Token![,]>::parse_terminated)
        else {
            continue;
        };
        for path in paths {
            let Some(derive) = path
                .segments
                .last()
                .and_then(|last| Derive::from_name(&last.ident.to_string()))
            else {
                continue;
            };
            cx.error_spanned_by(
                &path,
                format!(
                    "`#[event]` already derives `{name}`; remove it from this `#[derive(...)]`",
                    name = derive.name()
                ),
            );
            derives.retain(|&d| d != derive);
        }
    }
    derives
}

// ---------------------------------------------------------------------------------------------
// #[derive(Aggregate)]

/// `#[derive(Aggregate)]`: always a model; on an enum or union, the error is reported and the
/// rest is still generated so that the user's impls do not fail on top of it.
pub(crate) fn aggregate(input: &DeriveInput) -> Checked<AggregateModel> {
    let cx = Ctxt::new();
    let model = aggregate_model(&cx, input);
    cx.finish(model)
}

fn aggregate_model(cx: &Ctxt, input: &DeriveInput) -> AggregateModel {
    not_a_struct(
        cx,
        input,
        "derive `Aggregate` on the struct that holds the aggregate's state",
    );
    let default_name = snake_case(&input.ident.unraw().to_string());
    let conventional_error = format!("{}Error", input.ident.unraw());
    let args = match parse_attrs::<AggregateKeys>(cx, &input.attrs) {
        Found::Parsed(args) => args,
        found => {
            if let Found::Absent = found {
                cx.error_spanned_by(
                    &input.ident,
                    format!(
                        "`#[derive(Aggregate)]` needs `#[aggregate(error = {conventional_error}, events(...), commands(...))]` on the struct"
                    ),
                );
            }
            return AggregateModel {
                ident: input.ident.clone(),
                vis: input.vis.clone(),
                generics: input.generics.clone(),
                name: default_name,
                error: conventional_error_type(input),
                events: Vec::new(),
                commands: Vec::new(),
                async_commands: Vec::new(),
                services: unit(),
                snapshot: Snapshot::Never,
                crate_path: CratePath::es_core(),
            };
        }
    };
    let written = |key| args.written(key);
    let (error_written, events_written) =
        (written(AggregateKey::Error), written(AggregateKey::Events));
    let commands_written = written(AggregateKey::Commands) || written(AggregateKey::AsyncCommands);
    let keys = args.keys;

    let name = stable_name(cx, keys.name.as_ref(), default_name, "aggregate");
    let error = keys.error.unwrap_or_else(|| {
        if !error_written {
            cx.error_spanned_by(
                &input.ident,
                format!(
                    "missing `error = ...` in #[aggregate(...)]: the error type commands are refused with, e.g. `error = {conventional_error}`"
                ),
            );
        }
        conventional_error_type(input)
    });

    let enum_name = |suffix: &str| format!("{}{suffix}", input.ident.unraw());
    let mut event_list = Lister::new(Some(enum_name("Event")));
    match &keys.events {
        None if !events_written => cx.error_spanned_by(
            &input.ident,
            "missing `events(...)` in #[aggregate(...)]: list the aggregate's event types, e.g. `events(OrderPlaced, OrderPaid)`",
        ),
        Some(list) if list.items.is_empty() && list.well_formed => cx.error_spanned_by(
            &list.whole,
            "`events()` is empty: list at least one event type, e.g. `events(OrderPlaced)`",
        ),
        _ => {}
    }
    let events = event_list.add(cx, keys.events.as_ref(), AggregateKey::Events);

    let mut command_list = Lister::new(Some(enum_name("Command")));
    let commands = command_list.add(cx, keys.commands.as_ref(), AggregateKey::Commands);
    let async_commands = command_list.add(
        cx,
        keys.async_commands.as_ref(),
        AggregateKey::AsyncCommands,
    );
    if commands.is_empty() && async_commands.is_empty() {
        let given = [&keys.commands, &keys.async_commands];
        let empty = given
            .into_iter()
            .flatten()
            .find(|list| list.items.is_empty() && list.well_formed);
        if let Some(list) = empty {
            cx.error_spanned_by(
                &list.whole,
                format!(
                    "`{key}()` is empty: list at least one command type, e.g. `commands(PlaceOrder)` or `async_commands(PriceOrder)`",
                    key = list.key
                ),
            );
        } else if !commands_written {
            cx.error_spanned_by(
                &input.ident,
                "missing `commands(...)` in #[aggregate(...)]: list the commands the aggregate handles, e.g. `commands(PlaceOrder)`, or `async_commands(...)` for those whose handler awaits the aggregate's services",
            );
        }
    }

    let snapshot = match &keys.snapshot {
        None => Snapshot::Never,
        Some(IntValue { value: 0, lit }) => {
            cx.error_spanned_by(
                lit,
                "snapshot schema versions start at 1: write `snapshot = 1`, and bump it whenever the state's serialised shape changes",
            );
            Snapshot::Never
        }
        Some(snapshot) => Snapshot::Json(
            snapshot.value,
            Span::call_site().located_at(snapshot.lit.span()),
        ),
    };

    AggregateModel {
        ident: input.ident.clone(),
        vis: input.vis.clone(),
        generics: input.generics.clone(),
        name,
        error,
        events,
        commands,
        async_commands,
        services: keys.services.unwrap_or_else(unit),
        snapshot,
        crate_path: crate_path(keys.crate_path),
    }
}

/// `{Ident}Error`, located at the struct's name. Only used after an error was reported about
/// the `error` key: handlers name the error type in their signatures, and the conventional name
/// is the most likely one, so the user sees the mistake alone rather than one more error per
/// handler; if no such type exists, the one extra error points at the same place.
fn conventional_error_type(input: &DeriveInput) -> Type {
    let ident = syn::Ident::new(&format!("{}Error", input.ident.unraw()), input.ident.span());
    Type::Path(TypePath {
        attrs: Vec::new(),
        qself: None,
        path: Path::from(ident),
    })
}

fn unit() -> Type {
    Type::Tuple(syn::TypeTuple {
        attrs: Vec::new(),
        paren_token: syn::token::Paren::default(),
        elems: Punctuated::new(),
    })
}

// ---------------------------------------------------------------------------------------------
// #[derive(Projection)]

/// `#[derive(Projection)]`: always a model (see [`aggregate`]).
pub(crate) fn projection(input: &DeriveInput) -> Checked<ProjectionModel> {
    let cx = Ctxt::new();
    let model = projection_model(&cx, input);
    cx.finish(model)
}

fn projection_model(cx: &Ctxt, input: &DeriveInput) -> ProjectionModel {
    not_a_struct(
        cx,
        input,
        "derive `Projection` on the struct that holds the read model",
    );
    let default_name = snake_case(&input.ident.unraw().to_string());
    let args = match parse_attrs::<ProjectionKeys>(cx, &input.attrs) {
        Found::Parsed(args) => args,
        found => {
            if let Found::Absent = found {
                cx.error_spanned_by(
                    &input.ident,
                    "`#[derive(Projection)]` needs `#[projection(events(...))]` on the struct: the events this read model consumes",
                );
            }
            return ProjectionModel {
                ident: input.ident.clone(),
                generics: input.generics.clone(),
                name: default_name,
                events: Vec::new(),
                begin_batch: None,
                end_batch: None,
                reset: None,
                crate_path: CratePath::es_core(),
            };
        }
    };
    let events_written = args.written(ProjectionKey::Events);
    let keys = args.keys;
    let name = stable_name(cx, keys.name.as_ref(), default_name, "projection");
    match &keys.events {
        None if !events_written => cx.error_spanned_by(
            &input.ident,
            "missing `events(...)` in #[projection(...)]: list the events this read model consumes, e.g. `events(OrderPlaced, OrderPaid)`",
        ),
        Some(list) if list.items.is_empty() && list.well_formed => cx.error_spanned_by(
            &list.whole,
            "`events()` is empty: list at least one event type, e.g. `events(OrderPlaced)`",
        ),
        _ => {}
    }
    // Projections generate no enum; the variant names are only checked for aggregates.
    let mut lister = Lister::new(None);
    let events = lister.add(cx, keys.events.as_ref(), ProjectionKey::Events);
    ProjectionModel {
        ident: input.ident.clone(),
        generics: input.generics.clone(),
        name,
        events,
        begin_batch: keys.begin_batch,
        end_batch: keys.end_batch,
        reset: keys.reset,
        crate_path: crate_path(keys.crate_path),
    }
}

// ---------------------------------------------------------------------------------------------
// Shared rules.

fn not_a_struct(cx: &Ctxt, input: &DeriveInput, message: &str) {
    let ident = &input.ident;
    match &input.data {
        Data::Struct(_) => {}
        Data::Enum(data) => {
            let keyword = &data.enum_token;
            cx.error_spanned_by(
                quote!(#keyword #ident),
                format!("{message}, not on an enum"),
            );
        }
        Data::Union(data) => {
            let keyword = &data.union_token;
            cx.error_spanned_by(
                quote!(#keyword #ident),
                format!("{message}, not on a union"),
            );
        }
    }
}

/// The `name = "..."` value if it is a usable stable name, else the default.
fn stable_name(cx: &Ctxt, given: Option<&LitStr>, default: String, what: &str) -> String {
    let Some(lit) = given else {
        return default;
    };
    let name = lit.value();
    let problem = if name.is_empty() {
        Some("cannot be empty".to_owned())
    } else {
        name.char_indices()
            .find(|(_, c)| c.is_whitespace() || c.is_control())
            .map(|(at, c)| {
                format!(
                    "cannot contain whitespace or control characters (found {c:?} at byte {at})"
                )
            })
    };
    // Stream ids are `{name}-{id}` and split back at the first `-`.
    if problem.is_none()
        && what == "aggregate"
        && let Some(dash) = name.find('-')
    {
        cx.error_spanned_by(
            lit,
            format!(
                "the aggregate's stable name cannot contain `-` (found at byte {dash}): stream ids are `{{name}}-{{id}}` and are split back at the first `-`; write e.g. `name = \"{}\"`",
                name.replace('-', "_")
            ),
        );
        return default;
    }
    match problem {
        None => name,
        Some(problem) => {
            cx.error_spanned_by(
                lit,
                format!(
                    "the {what}'s stable name {problem}: it is stored with every record; write e.g. `name = \"{default}\"`"
                ),
            );
            default
        }
    }
}

fn crate_path(given: Option<Path>) -> CratePath {
    given.map_or_else(CratePath::es_core, CratePath::new)
}

/// Turns list entries into [`Listed`] entries, refusing a type listed twice and two types
/// that would share a variant of the generated enum.
struct Lister<K> {
    /// The enum the entries become variants of; `None` when no enum is generated (a
    /// projection's events), and any two types may then share a last identifier.
    enum_name: Option<String>,
    /// `(type tokens, entry, key it was listed under)` for every accepted entry.
    seen: Vec<(String, Listed, K)>,
}

impl<K: Key> Lister<K> {
    fn new(enum_name: Option<String>) -> Self {
        Self {
            enum_name,
            seen: Vec::new(),
        }
    }

    /// The accepted entries of `list`, written under `key`.
    fn add(&mut self, cx: &Ctxt, list: Option<&KeyList<TypePath>>, key: K) -> Vec<Listed> {
        let Some(list) = list else {
            return Vec::new();
        };
        let mut accepted = Vec::new();
        for ty in &list.items {
            let Some(listed) = listed(ty) else {
                continue;
            };
            let tokens = ty.to_token_stream().to_string();
            if let Some((_, first, first_key)) = self.seen.iter().find(|(t, ..)| *t == tokens) {
                let place = if *first_key == key {
                    format!("twice in `{key}(...)`", key = key.name())
                } else {
                    format!(
                        "in both `{first_key}(...)` and `{key}(...)`",
                        first_key = first_key.name(),
                        key = key.name()
                    )
                };
                cx.error_spanned_by(
                    ty,
                    format!("`{}` is listed {place}; remove this entry", first.display),
                );
                continue;
            }
            if let Some(enum_name) = &self.enum_name
                && let Some((_, first, _)) = self
                    .seen
                    .iter()
                    .find(|(_, seen, _)| seen.variant.unraw() == listed.variant.unraw())
            {
                cx.error_spanned_by(
                    ty,
                    format!(
                        "`{first}` and `{this}` would both be variant `{variant}` of the generated `{enum_name}`; import one of them under another name, e.g. `use {this} as Other{variant};`",
                        first = first.display,
                        this = listed.display,
                        variant = listed.variant.unraw(),
                    ),
                );
                continue;
            }
            accepted.push(listed.clone());
            self.seen.push((tokens, listed, key));
        }
        accepted
    }
}

/// The entry for a listed type path; `list` only accepts paths with a usable last identifier.
fn listed(ty: &TypePath) -> Option<Listed> {
    let last = ty.path.segments.last()?;
    Some(Listed {
        ty: ty.clone(),
        variant: last.ident.clone(),
        display: display::tokens(ty),
        span: Span::call_site().located_at(last.ident.span()),
    })
}
