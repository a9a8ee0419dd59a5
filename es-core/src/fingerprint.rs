//! [`CommandFingerprint`]: what binds a command id to the command it was made for.
//!
//! An idempotent command is recorded with its id and a fingerprint of the command. The same id
//! sent again with a command whose fingerprint differs is refused
//! ([`CommandError::FingerprintMismatch`](crate::CommandError::FingerprintMismatch)), never
//! answered with the first command's result. See [`command`](crate::command) for the whole
//! contract.
//!
//! The fingerprint is a SHA-256 digest of the aggregate's name and the command as JSON, with
//! every object's keys sorted. The command is the aggregate's command enum (`OrderCommand`, which
//! `#[derive(Aggregate)]` makes `Serialize` when every command is), so the JSON names the
//! command's type as well as its value: `{"AddItem": {"sku": ...}}`, and `ShipOrder` and
//! `CancelOrder` differ even when both carry nothing. Sorted keys make two equal commands give
//! one fingerprint whatever order a map inside them iterates in.

use std::fmt;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// A SHA-256 digest of a command, recorded with its id (see the [module docs](self)).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CommandFingerprint([u8; 32]);

impl CommandFingerprint {
    /// The fingerprint of `command` (the aggregate's command enum) sent to aggregate type
    /// `aggregate`.
    ///
    /// # Errors
    /// [`FingerprintError`] when the command does not serialise (its `Serialize` impl fails).
    pub fn of<C: Serialize + ?Sized>(
        aggregate: &'static str,
        command: &C,
    ) -> Result<Self, FingerprintError> {
        let value = serde_json::to_value(command)
            .map_err(|source| FingerprintError { aggregate, source })?;
        let mut canonical = Vec::with_capacity(128);
        write_canonical(&value, &mut canonical);
        let mut digest = Sha256::new();
        // Each part is framed by its length, so no two splits of the same bytes collide.
        for part in [b"es-command/1".as_slice(), aggregate.as_bytes(), &canonical] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        Ok(Self(digest.finalize().into()))
    }

    /// A fingerprint from its 32 stored bytes; for store implementations.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The 32 bytes to store.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// A fingerprint from stored bytes; fails unless there are exactly 32.
impl TryFrom<&[u8]> for CommandFingerprint {
    type Error = std::array::TryFromSliceError;

    fn try_from(bytes: &[u8]) -> Result<Self, Self::Error> {
        <[u8; 32]>::try_from(bytes).map(Self)
    }
}

impl fmt::Debug for CommandFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommandFingerprint({self})")
    }
}

impl fmt::Display for CommandFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in &self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

/// A command that could not be fingerprinted.
#[derive(Debug, thiserror::Error)]
#[error("cannot fingerprint a command of aggregate `{aggregate}`")]
pub struct FingerprintError {
    /// The aggregate the command was sent to.
    pub aggregate: &'static str,
    /// What serde said.
    #[source]
    pub source: serde_json::Error,
}

/// `value` as JSON text with every object's keys in byte order (`serde_json`'s map may keep
/// insertion order, when another crate in the build enables its `preserve_order` feature).
fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (index, (key, value)) in entries.into_iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json(&Value::String(key.clone()), out);
                out.push(b':');
                write_canonical(value, out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        scalar => write_json(scalar, out),
    }
}

fn write_json(scalar: &Value, out: &mut Vec<u8>) {
    // Writing a `Value` into a `Vec` cannot fail: its keys are strings and its numbers finite.
    if serde_json::to_writer(&mut *out, scalar).is_err() {
        out.extend_from_slice(b"null");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly

    use std::collections::HashMap;

    use serde::Serialize;

    use super::*;

    #[derive(Serialize)]
    struct AddItem {
        sku: String,
        quantity: u32,
    }

    #[derive(Serialize)]
    struct ShipOrder;

    #[derive(Serialize)]
    struct CancelOrder;

    #[derive(Serialize)]
    struct Tag {
        tags: HashMap<String, u32>,
    }

    /// As `#[derive(Aggregate)]` makes it: each command a newtype variant named after its type.
    #[derive(Serialize)]
    enum OrderCommand {
        AddItem(AddItem),
        ShipOrder(ShipOrder),
        CancelOrder(CancelOrder),
        Tag(Tag),
    }

    fn of(command: &OrderCommand) -> CommandFingerprint {
        CommandFingerprint::of("order", command).unwrap()
    }

    #[test]
    fn equal_commands_have_one_fingerprint() {
        let add = |quantity| {
            OrderCommand::AddItem(AddItem {
                sku: "apple".into(),
                quantity,
            })
        };
        assert_eq!(of(&add(2)), of(&add(2)));
        assert_ne!(of(&add(2)), of(&add(3)));
    }

    #[test]
    fn the_command_type_and_the_aggregate_count() {
        let ship = OrderCommand::ShipOrder(ShipOrder);
        assert_ne!(of(&ship), of(&OrderCommand::CancelOrder(CancelOrder)));
        assert_ne!(
            CommandFingerprint::of("order", &ship).unwrap(),
            CommandFingerprint::of("shipment", &ship).unwrap()
        );
    }

    #[test]
    fn map_order_does_not_count() {
        let pairs: Vec<(String, u32)> = (0..64).map(|n| (format!("tag{n}"), n)).collect();
        let forwards = OrderCommand::Tag(Tag {
            tags: pairs.iter().cloned().collect(),
        });
        let backwards = OrderCommand::Tag(Tag {
            tags: pairs.into_iter().rev().collect(),
        });
        assert_eq!(of(&forwards), of(&backwards));
    }

    #[test]
    fn it_prints_as_hex() {
        let fingerprint = CommandFingerprint::from_bytes([0xab; 32]);
        assert_eq!(fingerprint.to_string(), "ab".repeat(32));
        assert_eq!(fingerprint.as_bytes(), &[0xab; 32]);
    }
}
