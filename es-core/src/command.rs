//! The command path: load the aggregate, decide, append with an optimistic check, retry.
//!
//! A command is decided against the state loaded at version `v` and appended with
//! `ExpectedVersion::Exact(v)`.
//!
//! # Queues and retries
//!
//! Commands on one stream inside one [`App`](crate::App) take turns: each waits for the ones
//! before it on that stream, then loads the version they wrote, so commands of one process
//! never conflict with each other. If a writer in another process got there first, the store
//! refuses the append and the command is decided again on the fresh state after a short random
//! pause (exponential back-off with full jitter, [`AggregateSettings::retry_backoff`]), up to
//! [`AggregateSettings::max_attempts`] times. A caller that sends its own expected version (an
//! HTTP `If-Match`) gets the conflict back at once instead: the state it saw is gone. (A
//! handler that awaits a command on its own stream would wait for itself: don't.)
//!
//! # Idempotent commands
//!
//! A command id ([`Execute::command_id`](crate::Execute::command_id)) is bound to the command it
//! was made for, as an idempotency key is to its request in Stripe's API:
//!
//! - The id is stored atomically with the command's events, with a fingerprint of the command
//!   (its aggregate, its type and its value: [`CommandFingerprint`]). The same id with the same
//!   command again returns the first result ([`Executed::replayed`]) without deciding again,
//!   however the stream moved since.
//! - The same id with another command (another value, another command type, another
//!   aggregate or aggregate id) is refused with [`CommandError::FingerprintMismatch`] or
//!   [`CommandError::CommandIdReused`], and nothing is appended: never another command's
//!   answer. (Stripe answers such a request with an error too.)
//! - A command the aggregate refused is recorded as refused, with its fingerprint and the
//!   version it was decided at: the same id and command again are refused again, with the same
//!   error (decided anew on the state it was first refused on; a handler whose services answer
//!   differently now gets [`CommandError::ReplayDiverged`]). Like Stripe, which saves the result
//!   of any request that began executing, a refusal is an answer.
//! - Not recorded, so the id stays free for a retry, as Stripe does for requests that failed
//!   validation or conflicted with another: an invalid aggregate id, a missing aggregate
//!   ([`CommandError::NotFound`]), a version conflict, an event that cannot be encoded, and a
//!   store failure.
//! - Unlike Stripe's keys, ids never expire: the record lives as long as the store.

use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tracing::Instrument as _;
use uuid::Uuid;

use crate::aggregate::{Aggregate, EventSet};
use crate::event::NewEvent;
use crate::fingerprint::CommandFingerprint;
use crate::metadata::Metadata;
use crate::snapshot::{Snapshot, SnapshotCodec, SnapshotPolicy};
use crate::store::error::{AppendError, LoadError};
use crate::store::{AppendRequest, CommandOutcome, CommandRecord, CommandSession, EventStore};
use crate::stream::{ExpectedVersion, StreamId, StreamVersion};

pub mod error;

pub use error::CommandError;

mod queue;

pub(crate) use queue::StreamQueue;

/// The default number of times a command is decided before a conflict is returned.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// The default bounds of the pause before a command is decided again after a conflict with
/// another process: the first retry waits up to 1 ms, each later one up to twice as long, never
/// more than 64 ms.
pub const DEFAULT_RETRY_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(1), Duration::from_millis(64));

/// How one aggregate type is run: its services, snapshot policy and retry bounds.
pub struct AggregateSettings<A: Aggregate> {
    services: Arc<A::Services>,
    snapshot_policy: SnapshotPolicy,
    max_attempts: u32,
    retry_backoff: (Duration, Duration),
}

impl<A: Aggregate> AggregateSettings<A> {
    /// Settings with these services, no snapshots, [`DEFAULT_MAX_ATTEMPTS`] and
    /// [`DEFAULT_RETRY_BACKOFF`].
    #[must_use]
    pub fn new(services: A::Services) -> Self {
        Self {
            services: Arc::new(services),
            snapshot_policy: SnapshotPolicy::Never,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_backoff: DEFAULT_RETRY_BACKOFF,
        }
    }

    /// How long a command pauses before it is decided again after losing a race to another
    /// process: the `n`-th retry waits a random time up to `first * 2^(n-1)`, at most
    /// `longest` ("full jitter", so that two processes contending on one stream drift apart).
    /// Commands of one application never race each other: they queue (see the
    /// [module docs](self)).
    #[must_use]
    pub fn retry_backoff(mut self, first: Duration, longest: Duration) -> Self {
        self.retry_backoff = (first, longest.max(first));
        self
    }

    /// Saves a snapshot whenever an append crosses a multiple of `events` (the aggregate must
    /// declare `#[aggregate(snapshot = N)]`; otherwise this has no effect).
    #[must_use]
    pub const fn snapshot_every(mut self, events: u64) -> Self {
        self.snapshot_policy = SnapshotPolicy::Every(events);
        self
    }

    /// How many times a command is decided before a conflict is returned (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// The services handed to async command handlers.
    #[must_use]
    pub fn services(&self) -> &A::Services {
        &self.services
    }
}

impl<A: Aggregate> Default for AggregateSettings<A>
where
    A::Services: Default,
{
    fn default() -> Self {
        Self::new(A::Services::default())
    }
}

impl<A: Aggregate> Clone for AggregateSettings<A> {
    fn clone(&self) -> Self {
        Self {
            services: Arc::clone(&self.services),
            snapshot_policy: self.snapshot_policy,
            max_attempts: self.max_attempts,
            retry_backoff: self.retry_backoff,
        }
    }
}

impl<A: Aggregate> fmt::Debug for AggregateSettings<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateSettings")
            .field("aggregate", &A::NAME)
            .field("snapshot_policy", &self.snapshot_policy)
            .field("max_attempts", &self.max_attempts)
            .field("retry_backoff", &self.retry_backoff)
            .finish_non_exhaustive()
    }
}

/// Per-call options of a command: the expected version, an idempotency id, metadata.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CommandOptions {
    /// What the caller expects the aggregate's version to be; `Any` lets the command path retry.
    pub expected: ExpectedVersion,
    /// Makes the command idempotent: the same id appends once and returns the first result.
    pub command_id: Option<Uuid>,
    /// The fingerprint recorded with `command_id`: the same id with another fingerprint is
    /// refused (see the [module docs](self)).
    pub fingerprint: Option<CommandFingerprint>,
    /// Stored with every event the command appends.
    pub metadata: Metadata,
}

impl Default for CommandOptions {
    fn default() -> Self {
        Self {
            expected: ExpectedVersion::Any,
            command_id: None,
            fingerprint: None,
            metadata: Metadata::default(),
        }
    }
}

/// A loaded aggregate: its state and the version it reflects.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Loaded<A> {
    /// The state after the events up to `version`.
    pub state: A,
    /// The version of the last event applied ([`StreamVersion::INITIAL`] for a new aggregate).
    pub version: StreamVersion,
}

/// What an executed command did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Executed<A: Aggregate> {
    /// The aggregate's stream.
    pub stream_id: StreamId,
    /// The version before the command's events.
    pub version_before: StreamVersion,
    /// The version after them.
    pub version: StreamVersion,
    /// The events the command appended (empty for a no-op).
    pub events: Vec<A::Event>,
    /// The state after the events.
    pub state: A,
    /// Whether this is the stored result of an earlier command with the same id.
    pub replayed: bool,
}

/// Loads an aggregate: the latest usable snapshot, then the events after it.
///
/// `up_to` stops at that version (time travel); snapshots beyond it are not used.
pub(crate) async fn load<S: EventStore, A: Aggregate>(
    store: &S,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    let mut session = store.command_session();
    load_on(store, &mut session, stream_id, up_to).await
}

/// [`load`] through `session`.
async fn load_on<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    let span = tracing::debug_span!("load", aggregate = A::NAME, stream = %stream_id);
    // An instrumented future enters and leaves its span on every poll, once per row of a long
    // stream: skip the wrapper when nobody listens.
    if span.is_disabled() {
        return load_in_span(store, session, stream_id, up_to).await;
    }
    load_in_span(store, session, stream_id, up_to)
        .instrument(span)
        .await
}

async fn load_in_span<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Loaded<A>, LoadError> {
    if let Some(snapshot) = usable_snapshot::<S, A>(store, session, stream_id, up_to).await? {
        let mut loaded = snapshot;
        // The snapshot's own last event is read too: a snapshot is trusted only if the stream
        // reaches its version. One left over from another life of the store (a log restored
        // from an older backup) would otherwise pass for the state, and every command would
        // then conflict with a version the stream never had.
        match fold_stream(
            session,
            stream_id,
            &mut loaded,
            up_to,
            Anchor::Verify,
            |_, _| {},
        )
        .await
        {
            Ok(()) => return Ok(loaded),
            Err(LoadError::SnapshotBeyondStream { stream_version, .. }) => tracing::warn!(
                stream = %stream_id,
                snapshot_version = %stream_version,
                "ignoring a snapshot beyond the end of its stream; replaying the stream"
            ),
            Err(error) => return Err(error),
        }
    }
    let mut loaded = Loaded {
        state: A::default(),
        version: StreamVersion::INITIAL,
    };
    fold_stream(
        session,
        stream_id,
        &mut loaded,
        up_to,
        Anchor::None,
        |_, _| {},
    )
    .await?;
    Ok(loaded)
}

/// The aggregate's latest snapshot of `stream_id`, decoded, if it has one that fits `up_to`.
async fn usable_snapshot<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Option<Loaded<A>>, LoadError> {
    let Some(snapshot_version) = <A::Snapshot as SnapshotCodec<A>>::VERSION else {
        return Ok(None);
    };
    // The snapshot is read on the store: the session holds nothing while it does.
    session.release();
    let Some(snapshot) = store.load_snapshot(stream_id).await? else {
        return Ok(None);
    };
    let usable = snapshot.schema_version == snapshot_version
        && snapshot.stream_version != StreamVersion::INITIAL
        && up_to.is_none_or(|limit| snapshot.stream_version <= limit);
    if !usable {
        return Ok(None);
    }
    match <A::Snapshot as SnapshotCodec<A>>::decode(&snapshot.state) {
        Ok(state) => Ok(Some(Loaded {
            state,
            version: snapshot.stream_version,
        })),
        // A snapshot that no longer decodes (the state type changed without a new snapshot
        // version) is ignored like an old one: replaying from the start is always correct, a
        // bad snapshot only costs time.
        Err(error) => {
            tracing::warn!(
                stream = %stream_id,
                version = %snapshot.stream_version,
                %error,
                "ignoring a snapshot that does not decode"
            );
            Ok(None)
        }
    }
}

/// Whether a fold starts at a version a snapshot claims.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Anchor {
    /// From `loaded.version` as it is.
    None,
    /// `loaded` comes from a snapshot: the stream's event at `loaded.version` must be read
    /// first (and is not applied again), or the fold fails with
    /// [`LoadError::SnapshotBeyondStream`].
    Verify,
}

/// Applies the stream's events after `loaded.version` (up to `up_to`) to `loaded`, checking that
/// versions have no holes; `visit` sees each event with its version after it is applied.
async fn fold_stream<A: Aggregate>(
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    loaded: &mut Loaded<A>,
    up_to: Option<StreamVersion>,
    anchor: Anchor,
    mut visit: impl FnMut(StreamVersion, &A::Event) + Send,
) -> Result<(), LoadError> {
    let snapshot_version = loaded.version;
    let (after, mut anchor_pending) = match anchor {
        Anchor::Verify => (
            StreamVersion(snapshot_version.get().saturating_sub(1)),
            true,
        ),
        Anchor::None => (snapshot_version, false),
    };
    session
        .fold_stream(stream_id, after, |stored| {
            if anchor_pending {
                if stored.stream_version != snapshot_version {
                    return Err(LoadError::VersionHole {
                        stream_id: stream_id.clone(),
                        expected: snapshot_version,
                        found: stored.stream_version,
                    });
                }
                anchor_pending = false;
                return Ok(ControlFlow::Continue(()));
            }
            if up_to.is_some_and(|limit| stored.stream_version > limit) {
                return Ok(ControlFlow::Break(()));
            }
            let expected = loaded.version.next();
            if stored.stream_version != expected {
                return Err(LoadError::VersionHole {
                    stream_id: stream_id.clone(),
                    expected,
                    found: stored.stream_version,
                });
            }
            let event = A::Event::decode(stored.event_type, stored.schema_version, stored.payload)
                .map_err(|source| LoadError::Decode {
                    stream_id: stream_id.clone(),
                    stream_version: stored.stream_version,
                    source,
                })?;
            loaded.state.apply_event(&event);
            loaded.version = expected;
            visit(expected, &event);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    if anchor_pending {
        return Err(LoadError::SnapshotBeyondStream {
            stream_id: stream_id.clone(),
            stream_version: snapshot_version,
        });
    }
    Ok(())
}

/// Where a command runs: the application's store, its settings for the aggregate, and the
/// queue its commands take turns in.
pub(crate) struct Runway<'a, S, A: Aggregate> {
    pub(crate) store: &'a S,
    pub(crate) settings: &'a AggregateSettings<A>,
    pub(crate) queue: &'a StreamQueue,
}

/// Runs one command through load, decide, append and retry.
pub(crate) async fn execute<S, A, C>(
    runway: Runway<'_, S, A>,
    stream_id: StreamId,
    command: C,
    options: CommandOptions,
) -> Result<Executed<A>, CommandError<A::Error>>
where
    S: EventStore,
    A: Aggregate,
    C: Into<A::Command> + Clone + Send,
{
    let span = tracing::info_span!(
        "execute",
        aggregate = A::NAME,
        stream = %stream_id,
        command_id = options.command_id.map(tracing::field::display),
        correlation_id = options.metadata.correlation_id.map(tracing::field::display),
    );
    let _turn = runway.queue.turn(&stream_id).await;
    if span.is_disabled() {
        return execute_in_span(&runway, stream_id, command, options).await;
    }
    execute_in_span(&runway, stream_id, command, options)
        .instrument(span)
        .await
}

async fn execute_in_span<S, A, C>(
    runway: &Runway<'_, S, A>,
    stream_id: StreamId,
    command: C,
    options: CommandOptions,
) -> Result<Executed<A>, CommandError<A::Error>>
where
    S: EventStore,
    A: Aggregate,
    C: Into<A::Command> + Clone + Send,
{
    let Runway {
        store, settings, ..
    } = *runway;
    let stream_id = &stream_id;
    let mut recorded = Recorded {
        settings,
        stream_id,
        command,
        fingerprint: options.fingerprint,
    };
    // Refusals and replays go through the session too; a call on the store itself (a
    // snapshot) comes after `session.release()`: a command never waits for a second connection
    // while its session holds one.
    let mut session = store.command_session();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Loaded { mut state, version } = load_on::<S, A>(store, &mut session, stream_id, None)
            .await
            .map_err(|source| CommandError::Load {
                stream_id: stream_id.clone(),
                source,
            })?;
        // Looked up after loading, on every attempt: if the first run of this command committed
        // before our load we answer from its record here; if it commits after, our append
        // carries the same id and fails with `DuplicateCommand`, which answers from it too.
        // Either way no decision is made on a state that already holds the command's effect.
        if let Some(command_id) = options.command_id {
            let found =
                session
                    .find_command(command_id)
                    .await
                    .map_err(|source| CommandError::Load {
                        stream_id: stream_id.clone(),
                        source,
                    })?;
            if let Some(record) = found {
                return recorded.answer(&mut session, record).await;
            }
        }
        if !options.expected.is_satisfied_by(version) {
            let error = if options.expected == ExpectedVersion::StreamExists {
                CommandError::NotFound {
                    stream_id: stream_id.clone(),
                }
            } else {
                CommandError::Conflict {
                    stream_id: stream_id.clone(),
                    expected: options.expected,
                    actual: version,
                    attempts,
                }
            };
            return refuse(&mut recorded, &mut session, options.command_id, error).await;
        }
        let handled = state.handle_command(recorded.command.clone().into(), settings.services());
        let (request, refusal) = match decide(handled, &mut session).await {
            Ok(decided) => {
                let decided = decided.into_vec();
                if decided.is_empty() && options.command_id.is_none() {
                    return Ok(Executed {
                        stream_id: stream_id.clone(),
                        version_before: version,
                        version,
                        events: decided,
                        state,
                        replayed: false,
                    });
                }
                let events = encode_all::<A>(&decided, &options.metadata).map_err(|source| {
                    CommandError::Encode {
                        stream_id: stream_id.clone(),
                        source,
                    }
                })?;
                let mut request =
                    AppendRequest::new(stream_id.clone(), ExpectedVersion::Exact(version), events);
                request.command_id = options.command_id;
                request.command_fingerprint = options.fingerprint;
                (request, Err(decided))
            }
            // Without an id a refusal is only an answer; with one it is recorded, checked
            // against the version it was decided on, so the same command sent again is refused
            // again (see the module docs).
            Err(rejection) => match options.command_id {
                None => return Err(CommandError::Rejected(rejection)),
                Some(command_id) => (
                    AppendRequest::refusal(
                        stream_id.clone(),
                        ExpectedVersion::Exact(version),
                        command_id,
                        options.fingerprint,
                    ),
                    Ok(rejection),
                ),
            },
        };
        // The version was read from the stream's events just now (a snapshot's own event
        // included), so the stream cannot be behind it: a store may let its unique version key
        // alone refuse a writer that came first. Only on the first attempt: a retry means the
        // stream is contended, and there a refused insert (an error in the server's log, a
        // dead row) costs more than reading the version.
        let request = if attempts == 1 {
            request.expected_was_read()
        } else {
            request
        };
        // `Executed` carries no log position, so the store need not find it.
        match session.append(request.without_position()).await {
            Ok(committed) => {
                let decided = match refusal {
                    Ok(rejection) => return Err(CommandError::Rejected(rejection)),
                    Err(decided) => decided,
                };
                session.release();
                for event in &decided {
                    state.apply_event(event);
                }
                save_snapshot_if_due(
                    store,
                    settings,
                    stream_id,
                    &state,
                    version,
                    committed.version_after,
                )
                .await;
                return Ok(Executed {
                    stream_id: stream_id.clone(),
                    version_before: committed.version_before,
                    version: committed.version_after,
                    events: decided,
                    state,
                    replayed: false,
                });
            }
            Err(AppendError::Conflict { actual, .. }) => {
                let caller_pinned_version = matches!(options.expected, ExpectedVersion::Exact(_));
                if caller_pinned_version || attempts >= settings.max_attempts {
                    let error = CommandError::Conflict {
                        stream_id: stream_id.clone(),
                        expected: if caller_pinned_version {
                            options.expected
                        } else {
                            ExpectedVersion::Exact(version)
                        },
                        actual,
                        attempts,
                    };
                    return refuse(&mut recorded, &mut session, options.command_id, error).await;
                }
                tracing::debug!(attempts, %actual, "version conflict; deciding again");
                session.release();
                pause_before_retry(settings.retry_backoff, attempts).await;
            }
            // The same command id won a race with us: its record is the answer.
            Err(AppendError::DuplicateCommand(record)) => {
                return recorded.answer(&mut session, record).await;
            }
            Err(source) => {
                return Err(CommandError::Append {
                    stream_id: stream_id.clone(),
                    source,
                });
            }
        }
    }
}

/// Sleeps a random time up to `first * 2^(retry - 1)`, at most `longest`, before retry number
/// `retry` (full jitter). Outside a Tokio runtime it only yields: the command path needs no
/// timer otherwise.
async fn pause_before_retry((first, longest): (Duration, Duration), retry: u32) {
    let ceiling = first
        .saturating_mul(
            1_u32
                .checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(longest);
    // The random bits of a fresh event id (the generator in the process the ids use).
    let random = Uuid::now_v7().as_u64_pair().1;
    let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    let pause = Duration::from_nanos(random % ceiling_nanos.saturating_add(1));
    if pause.is_zero() || tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    tokio::time::sleep(pause).await;
}

/// Awaits the handler's decision. A handler that has not decided at its first poll awaits
/// something else (a service), and the session gives back its connection meanwhile: a handler
/// that queries the same pool must not wait for the connection its own command holds.
async fn decide<F: Future>(handled: F, session: &mut impl CommandSession) -> F::Output {
    let mut handled = std::pin::pin!(handled);
    match std::future::poll_fn(|cx| Poll::Ready(handled.as_mut().poll(cx))).await {
        Poll::Ready(decided) => decided,
        Poll::Pending => {
            session.release();
            handled.await
        }
    }
}

/// Returns `error`, unless the command's id was recorded meanwhile: then the first run of the
/// command committed while this one was deciding, and its record is the answer.
async fn refuse<A: Aggregate, C: Into<A::Command> + Clone + Send>(
    recorded: &mut Recorded<'_, A, C>,
    session: &mut impl CommandSession,
    command_id: Option<Uuid>,
    error: CommandError<A::Error>,
) -> Result<Executed<A>, CommandError<A::Error>> {
    let Some(command_id) = command_id else {
        return Err(error);
    };
    match session.find_command(command_id).await {
        Ok(Some(record)) => recorded.answer(session, record).await,
        Ok(None) => Err(error),
        Err(source) => Err(CommandError::Load {
            stream_id: recorded.stream_id.clone(),
            source,
        }),
    }
}

fn encode_all<A: Aggregate>(
    events: &[A::Event],
    metadata: &Metadata,
) -> Result<Vec<NewEvent>, crate::codec::EncodeError> {
    events
        .iter()
        .map(|event| {
            Ok(NewEvent::new(
                event.event_type(),
                event.schema_version(),
                event.encode()?,
                metadata.clone(),
            ))
        })
        .collect()
}

/// What answers a command whose id is already recorded: the command and where it was sent.
struct Recorded<'a, A: Aggregate, C> {
    settings: &'a AggregateSettings<A>,
    stream_id: &'a StreamId,
    command: C,
    fingerprint: Option<CommandFingerprint>,
}

impl<A: Aggregate, C: Into<A::Command> + Clone + Send> Recorded<'_, A, C> {
    /// The answer `record` gives this command: its first result or refusal, if it is the same
    /// command; an error if the id was recorded for another one. (`&mut self` only so that the
    /// future is `Send` without the command being `Sync`.)
    async fn answer(
        &mut self,
        session: &mut impl CommandSession,
        record: CommandRecord,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let stream_id = self.stream_id;
        if record.stream_id != *stream_id {
            return Err(CommandError::CommandIdReused {
                command_id: record.command_id,
                stream_id: stream_id.clone(),
                recorded_stream: record.stream_id,
            });
        }
        // A record without a fingerprint (written by an older release, or for a command sent
        // without one) is told apart by its stream alone.
        if let (Some(recorded), Some(sent)) = (record.fingerprint, self.fingerprint)
            && recorded != sent
        {
            return Err(CommandError::FingerprintMismatch {
                command_id: record.command_id,
                stream_id: stream_id.clone(),
            });
        }
        // One pass from the start: the state up to the command's last event, and its events.
        let mut loaded = Loaded {
            state: A::default(),
            version: StreamVersion::INITIAL,
        };
        let mut events = Vec::new();
        fold_stream(
            session,
            stream_id,
            &mut loaded,
            Some(record.version_after),
            Anchor::None,
            |version, event| {
                if version > record.version_before {
                    events.push(event.clone());
                }
            },
        )
        .await
        .map_err(|source| CommandError::Load {
            stream_id: stream_id.clone(),
            source,
        })?;
        if record.outcome == CommandOutcome::Refused {
            // Decided again on the state it was refused on: a pure handler refuses again, with
            // the same error.
            let handled = loaded
                .state
                .handle_command(self.command.clone().into(), self.settings.services());
            return match decide(handled, session).await {
                Err(rejection) => Err(CommandError::Rejected(rejection)),
                Ok(_) => Err(CommandError::ReplayDiverged {
                    command_id: record.command_id,
                    stream_id: stream_id.clone(),
                    version: record.version_before,
                }),
            };
        }
        Ok(Executed {
            stream_id: stream_id.clone(),
            version_before: record.version_before,
            version: record.version_after,
            events,
            state: loaded.state,
            replayed: true,
        })
    }
}

/// Saves a snapshot when the policy says so. A failure is logged, not returned: the command has
/// committed, and a missing snapshot only costs a longer load.
async fn save_snapshot_if_due<S: EventStore, A: Aggregate>(
    store: &S,
    settings: &AggregateSettings<A>,
    stream_id: &StreamId,
    state: &A,
    before: StreamVersion,
    after: StreamVersion,
) {
    let Some(schema_version) = <A::Snapshot as SnapshotCodec<A>>::VERSION else {
        return;
    };
    if !settings.snapshot_policy.is_due(before, after) {
        return;
    }
    let encoded = match <A::Snapshot as SnapshotCodec<A>>::encode(state) {
        Ok(encoded) => encoded,
        Err(error) => {
            tracing::warn!(stream = %stream_id, %error, "snapshot does not encode");
            return;
        }
    };
    let snapshot = Snapshot::new(after, schema_version, encoded);
    if let Err(error) = store.save_snapshot(stream_id, snapshot).await {
        tracing::warn!(stream = %stream_id, %error, "saving a snapshot failed");
    }
}
