//! The steps every macro shares: attributes -> checked model, with errors collected on the way.
//!
//! `args` parses the attribute syntax into the keys of `keys` (values by `values`, lists by
//! `list`), `check` turns the parsed keys and the annotated item into the validated models of
//! `ast`, and `ctxt` gathers every error found on the way so that independent mistakes are
//! reported together.

pub(crate) mod args;
pub(crate) mod ast;
pub(crate) mod case;
pub(crate) mod check;
pub(crate) mod crate_path;
pub(crate) mod ctxt;
pub(crate) mod display;
pub(crate) mod keys;
pub(crate) mod list;
pub(crate) mod suggest;
pub(crate) mod values;
