//! The command log's records: which command ran on which stream, and what became of it.

use uuid::Uuid;

use crate::fingerprint::CommandFingerprint;
use crate::stream::{StreamId, StreamVersion};

/// The record of an idempotent command: which stream it touched, which versions it wrote,
/// what the command was, and whether it took effect.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommandRecord {
    /// The command's id.
    pub command_id: Uuid,
    /// The stream it appended to.
    pub stream_id: StreamId,
    /// The stream's version before its events.
    pub version_before: StreamVersion,
    /// The stream's version after its events (equal to `version_before` for a no-op or a
    /// refusal).
    pub version_after: StreamVersion,
    /// The fingerprint of the command, if it was recorded with one.
    pub fingerprint: Option<CommandFingerprint>,
    /// Whether it took effect or was refused.
    pub outcome: CommandOutcome,
}

impl CommandRecord {
    /// A record of a command that took effect, without a fingerprint; for store
    /// implementations (see [`with_fingerprint`](Self::with_fingerprint) and
    /// [`with_outcome`](Self::with_outcome)).
    #[must_use]
    pub const fn new(
        command_id: Uuid,
        stream_id: StreamId,
        version_before: StreamVersion,
        version_after: StreamVersion,
    ) -> Self {
        Self {
            command_id,
            stream_id,
            version_before,
            version_after,
            fingerprint: None,
            outcome: CommandOutcome::Applied,
        }
    }

    /// The record with `fingerprint`.
    #[must_use]
    pub const fn with_fingerprint(mut self, fingerprint: Option<CommandFingerprint>) -> Self {
        self.fingerprint = fingerprint;
        self
    }

    /// The record with `outcome`.
    #[must_use]
    pub const fn with_outcome(mut self, outcome: CommandOutcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// What became of an idempotent command, as its record says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandOutcome {
    /// It took effect: its events (none, for a no-op) were appended.
    #[default]
    Applied,
    /// The aggregate refused it; nothing was appended. The same command sent again with the
    /// same id is refused again.
    Refused,
}

impl CommandOutcome {
    /// The outcome as stored: `false` applied, `true` refused.
    #[must_use]
    pub const fn is_refused(self) -> bool {
        matches!(self, Self::Refused)
    }

    /// The outcome from its stored flag.
    #[must_use]
    pub const fn from_refused(refused: bool) -> Self {
        if refused {
            Self::Refused
        } else {
            Self::Applied
        }
    }
}
