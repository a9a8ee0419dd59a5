//! The command path: load the aggregate, decide, append with an optimistic check, retry.
//!
//! A command is decided against the state loaded at version `v` and appended with
//! `ExpectedVersion::Exact(v)`. If another writer got there first, the store refuses the append
//! and the command is decided again on the fresh state, up to
//! [`AggregateSettings::max_attempts`] times. A caller that sends its own expected version (an
//! HTTP `If-Match`) gets the conflict back at once instead: the state it saw is gone.
//!
//! With a command id the append is idempotent: the id is stored with the events in one atomic
//! append, and a second command with the same id returns the first result without deciding
//! again.

use std::fmt;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::task::Poll;

use tracing::Instrument as _;
use uuid::Uuid;

use crate::aggregate::{Aggregate, EventSet, Events};
use crate::error::{AppendError, CommandError, LoadError};
use crate::event::NewEvent;
use crate::metadata::Metadata;
use crate::snapshot::{Snapshot, SnapshotCodec, SnapshotPolicy};
use crate::store::{AppendRequest, CommandRecord, CommandSession, EventStore};
use crate::stream::{ExpectedVersion, StreamId, StreamVersion};

/// The default number of times a command is decided before a conflict is returned.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

/// How one aggregate type is run: its services, snapshot policy and retry bound.
pub struct AggregateSettings<A: Aggregate> {
    services: Arc<A::Services>,
    snapshot_policy: SnapshotPolicy,
    max_attempts: u32,
}

impl<A: Aggregate> AggregateSettings<A> {
    /// Settings with these services, no snapshots and [`DEFAULT_MAX_ATTEMPTS`].
    #[must_use]
    pub fn new(services: A::Services) -> Self {
        Self {
            services: Arc::new(services),
            snapshot_policy: SnapshotPolicy::Never,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
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
        }
    }
}

impl<A: Aggregate> fmt::Debug for AggregateSettings<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AggregateSettings")
            .field("aggregate", &A::NAME)
            .field("snapshot_policy", &self.snapshot_policy)
            .field("max_attempts", &self.max_attempts)
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
    /// Stored with every event the command appends.
    pub metadata: Metadata,
}

impl Default for CommandOptions {
    fn default() -> Self {
        Self {
            expected: ExpectedVersion::Any,
            command_id: None,
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
    Ok(load_tracked(store, &mut session, stream_id, up_to)
        .await?
        .loaded)
}

/// A loaded aggregate, and whether its version was read from the stream's events.
struct Tracked<A> {
    loaded: Loaded<A>,
    /// The version is that of an event this load read, or the initial one: the stream is at
    /// least there. Not so for a version that came from a snapshot alone.
    version_was_read: bool,
}

/// [`load`] through `session`, telling where the version came from.
async fn load_tracked<S: EventStore, A: Aggregate>(
    store: &S,
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    up_to: Option<StreamVersion>,
) -> Result<Tracked<A>, LoadError> {
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
) -> Result<Tracked<A>, LoadError> {
    let mut loaded = Loaded {
        state: A::default(),
        version: StreamVersion::INITIAL,
    };
    if let Some(snapshot_version) = <A::Snapshot as SnapshotCodec<A>>::VERSION
        && let Some(snapshot) = {
            // The snapshot is read on the store: the session holds nothing while it does.
            session.release();
            store.load_snapshot(stream_id).await?
        }
    {
        let usable = snapshot.schema_version == snapshot_version
            && up_to.is_none_or(|limit| snapshot.stream_version <= limit);
        if usable {
            match <A::Snapshot as SnapshotCodec<A>>::decode(&snapshot.state) {
                Ok(state) => {
                    loaded.state = state;
                    loaded.version = snapshot.stream_version;
                }
                // A snapshot that no longer decodes (the state type changed without a new
                // snapshot version) is ignored like an old one: replaying from the start is
                // always correct, a bad snapshot only costs time.
                Err(error) => tracing::warn!(
                    stream = %stream_id,
                    version = %snapshot.stream_version,
                    %error,
                    "ignoring a snapshot that does not decode"
                ),
            }
        }
    }
    let mut read_an_event = false;
    fold_stream(session, stream_id, &mut loaded, up_to, |_, _| {
        read_an_event = true
    })
    .await?;
    let version_was_read = read_an_event || loaded.version == StreamVersion::INITIAL;
    Ok(Tracked {
        loaded,
        version_was_read,
    })
}

/// Applies the stream's events after `loaded.version` (up to `up_to`) to `loaded`, checking that
/// versions have no holes; `visit` sees each event with its version after it is applied.
async fn fold_stream<A: Aggregate>(
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    loaded: &mut Loaded<A>,
    up_to: Option<StreamVersion>,
    mut visit: impl FnMut(StreamVersion, &A::Event) + Send,
) -> Result<(), LoadError> {
    session
        .fold_stream(stream_id, loaded.version, |stored| {
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
            loaded.state.apply(&event);
            loaded.version = expected;
            visit(expected, &event);
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    Ok(())
}

/// Runs one command through load, decide, append and retry.
pub(crate) async fn execute<S, A, C>(
    store: &S,
    settings: &AggregateSettings<A>,
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
    if span.is_disabled() {
        return execute_in_span(store, settings, stream_id, command, options).await;
    }
    execute_in_span(store, settings, stream_id, command, options)
        .instrument(span)
        .await
}

async fn execute_in_span<S, A, C>(
    store: &S,
    settings: &AggregateSettings<A>,
    stream_id: StreamId,
    command: C,
    options: CommandOptions,
) -> Result<Executed<A>, CommandError<A::Error>>
where
    S: EventStore,
    A: Aggregate,
    C: Into<A::Command> + Clone + Send,
{
    // Refusals and replays go through the session too; a call on the store itself (a
    // snapshot) comes after `session.release()`: a command never waits for a second connection
    // while its session holds one.
    let mut session = store.command_session();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let Tracked {
            loaded: Loaded { mut state, version },
            version_was_read,
        } = load_tracked::<S, A>(store, &mut session, &stream_id, None)
            .await
            .map_err(|source| CommandError::Load {
                stream_id: stream_id.clone(),
                source,
            })?;
        // Looked up after loading, on every attempt: if the first run of this command committed
        // before our load we replay it here; if it commits after, our append carries the same
        // id and fails with `DuplicateCommand`, which replays too. Either way no decision is
        // made on a state that already holds the command's effect.
        if let Some(command_id) = options.command_id {
            let recorded =
                session
                    .find_command(command_id)
                    .await
                    .map_err(|source| CommandError::Load {
                        stream_id: stream_id.clone(),
                        source,
                    })?;
            if let Some(record) = recorded {
                return replay(&mut session, &stream_id, record).await;
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
            return refuse(&mut session, &stream_id, options.command_id, error).await;
        }
        let handled = state.handle(command.clone().into(), settings.services());
        let decided: Events<A> = match decide(handled, &mut session).await {
            Ok(decided) => decided,
            Err(rejection) => {
                let error = CommandError::Rejected(rejection);
                return refuse(&mut session, &stream_id, options.command_id, error).await;
            }
        };
        let decided = decided.into_vec();
        if decided.is_empty() && options.command_id.is_none() {
            return Ok(Executed {
                stream_id,
                version_before: version,
                version,
                events: decided,
                state,
                replayed: false,
            });
        }
        let mut request = AppendRequest::new(
            stream_id.clone(),
            ExpectedVersion::Exact(version),
            encode_all::<A>(&decided, &options.metadata).map_err(|source| {
                CommandError::Encode {
                    stream_id: stream_id.clone(),
                    source,
                }
            })?,
        );
        request.command_id = options.command_id;
        // Loaded from the events just now, so the stream cannot be behind `version`: a store
        // may let its unique version key alone refuse a writer that came first. Only on the
        // first attempt: a retry means the stream is contended, and there a refused insert
        // (an error in the server's log, a dead row) costs more than reading the version.
        request.expected_was_read = version_was_read && attempts == 1;
        // `Executed` carries no log position, so the store need not find it.
        request.without_position = true;
        match session.append(request).await {
            Ok(committed) => {
                session.release();
                for event in &decided {
                    state.apply(event);
                }
                save_snapshot_if_due(
                    store,
                    settings,
                    &stream_id,
                    &state,
                    version,
                    committed.version_after,
                )
                .await;
                return Ok(Executed {
                    stream_id,
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
                    return refuse(&mut session, &stream_id, options.command_id, error).await;
                }
                tracing::debug!(attempts, %actual, "version conflict; deciding again");
            }
            // The same command id won a race with us: its result is the answer.
            Err(AppendError::DuplicateCommand(record)) => {
                return replay(&mut session, &stream_id, record).await;
            }
            Err(source) => return Err(CommandError::Append { stream_id, source }),
        }
    }
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
/// command committed while this one was deciding, and its result is the answer.
async fn refuse<A: Aggregate>(
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    command_id: Option<Uuid>,
    error: CommandError<A::Error>,
) -> Result<Executed<A>, CommandError<A::Error>> {
    let Some(command_id) = command_id else {
        return Err(error);
    };
    match session.find_command(command_id).await {
        Ok(Some(record)) => replay(session, stream_id, record).await,
        Ok(None) => Err(error),
        Err(source) => Err(CommandError::Load {
            stream_id: stream_id.clone(),
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

/// The stored result of an earlier command with the same id.
async fn replay<A: Aggregate>(
    session: &mut impl CommandSession,
    stream_id: &StreamId,
    record: CommandRecord,
) -> Result<Executed<A>, CommandError<A::Error>> {
    if record.stream_id != *stream_id {
        return Err(CommandError::CommandIdReused {
            command_id: record.command_id,
            stream_id: stream_id.clone(),
            recorded_stream: record.stream_id,
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
    Ok(Executed {
        stream_id: stream_id.clone(),
        version_before: record.version_before,
        version: record.version_after,
        events,
        state: loaded.state,
        replayed: true,
    })
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
