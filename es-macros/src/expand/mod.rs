//! Code generation: one module per macro, each a validated model in, tokens out.
//!
//! Every module has one entry point, `expand`: it builds the model once and returns its code
//! together with every mistake found. After a mistake the code is that of the closest model,
//! emitted after the errors, so the user sees the mistakes and not a cascade of "cannot find"
//! errors about the names the macro should have declared.
//!
//! Generated code names everything by absolute path and puts impls inside
//! `const _: () = { ... };`; code that checks a user's list entry is located at that entry.

pub(crate) mod aggregate;
pub(crate) mod event;
mod names;
pub(crate) mod projection;

#[cfg(test)]
mod tests;
