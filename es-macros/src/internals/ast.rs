//! The validated models the expansions are generated from.
//!
//! `check` builds them. After a mistake it still builds the closest model it can (a default
//! name, the well-formed entries of a list), so that the expansion can declare the user's names
//! next to the error and spare them a cascade of "cannot find type" errors.

use proc_macro2::Span;
use syn::{Generics, Ident, ItemStruct, Path, Type, TypePath, Visibility};

use super::crate_path::CratePath;

/// A type listed in `events(...)`, `commands(...)` or `async_commands(...)`.
#[derive(Clone)]
pub(crate) struct Listed {
    /// The type as written.
    pub(crate) ty: TypePath,
    /// Its variant in the generated enum: the path's last identifier.
    pub(crate) variant: Ident,
    /// The type as the user wrote it, for messages and doc comments.
    pub(crate) display: String,
    /// Where checks generated for this entry report: at its name in the list.
    pub(crate) span: Span,
}

/// A trait `#[event]` derives for the struct.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Derive {
    Serialize,
    Deserialize,
    Clone,
    Debug,
    PartialEq,
}

impl Derive {
    /// Every derive, in the order they are emitted.
    pub(crate) const ALL: [Self; 5] = [
        Self::Serialize,
        Self::Deserialize,
        Self::Clone,
        Self::Debug,
        Self::PartialEq,
    ];

    /// The trait's name as users write it in `#[derive(...)]`.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Serialize => "Serialize",
            Self::Deserialize => "Deserialize",
            Self::Clone => "Clone",
            Self::Debug => "Debug",
            Self::PartialEq => "PartialEq",
        }
    }

    /// The derive a `#[derive(...)]` entry names, by its last path segment.
    pub(crate) fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|derive| derive.name() == name)
    }
}

/// `#[event]` on a struct.
pub(crate) struct EventModel {
    /// The struct as written.
    pub(crate) item: ItemStruct,
    /// The stable name stored with each event.
    pub(crate) name: String,
    /// The schema version, at least 1.
    pub(crate) version: u32,
    /// Either empty or one function per version step (`version - 1` of them).
    pub(crate) upcasters: Vec<Path>,
    /// The derives to add: all of [`Derive::ALL`] but those the user already wrote (an error).
    pub(crate) derives: Vec<Derive>,
    pub(crate) crate_path: CratePath,
}

/// How the aggregate's state is snapshotted.
pub(crate) enum Snapshot {
    /// `snapshot` not given: `NoSnapshots`.
    Never,
    /// `snapshot = N`: `JsonSnapshot<N>`, with where `N` was written (where a state that does not
    /// implement serde is reported).
    Json(u32, Span),
}

/// `#[derive(Aggregate)]` on the state struct.
pub(crate) struct AggregateModel {
    pub(crate) ident: Ident,
    pub(crate) vis: Visibility,
    pub(crate) generics: Generics,
    /// The stable name; stream ids are `"{name}-{id}"`.
    pub(crate) name: String,
    /// The domain error type; after a reported mistake in the `error` key, the conventional
    /// `{Ident}Error` (see `check`).
    pub(crate) error: Type,
    /// Variants of `{Ident}Event`, in the order listed; no two share a type or a variant name.
    pub(crate) events: Vec<Listed>,
    /// Variants of `{Ident}Command` handled by `Handle`.
    pub(crate) commands: Vec<Listed>,
    /// Variants of `{Ident}Command` handled by `HandleAsync` (after `commands`).
    pub(crate) async_commands: Vec<Listed>,
    pub(crate) services: Type,
    pub(crate) snapshot: Snapshot,
    pub(crate) crate_path: CratePath,
}

/// `#[derive(Projection)]` on the read model struct.
pub(crate) struct ProjectionModel {
    pub(crate) ident: Ident,
    pub(crate) generics: Generics,
    /// The stable name the checkpoint is kept under.
    pub(crate) name: String,
    /// The consumed events, in the order listed; no two share a type.
    pub(crate) events: Vec<Listed>,
    /// Set by the `begin_batch` flag: the runner calls `BeginBatch::begin_batch` with each
    /// batch's events before dispatching them.
    pub(crate) begin_batch: Option<Ident>,
    /// Set by the `end_batch` flag: the runner calls `EndBatch::end_batch` before each commit.
    pub(crate) end_batch: Option<Ident>,
    /// Set by the `reset` flag: a rebuild calls `Reset::reset` to clear the read model.
    pub(crate) reset: Option<Ident>,
    pub(crate) crate_path: CratePath,
}
