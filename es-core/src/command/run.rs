//! One command through load, decide, append and retry.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use tracing::Instrument as _;
use uuid::Uuid;

use crate::aggregate::{Aggregate, EventSet};
use crate::command::error::CommandError;
use crate::command::load::{Anchor, fold_stream, load_on};
use crate::command::outcome::{Executed, Loaded};
use crate::command::queue::StreamQueue;
use crate::command::settings::{AggregateSettings, CommandOptions};
use crate::event::NewEvent;
use crate::fingerprint::CommandFingerprint;
use crate::metadata::Metadata;
use crate::snapshot::{Snapshot, SnapshotCodec};
use crate::store::command_log::CommandSession;
use crate::store::command_record::{CommandOutcome, CommandRecord};
use crate::store::error::AppendError;
use crate::store::event_store::EventStore;
use crate::store::log::{AppendRequest, ReadVersion};
use crate::stream::{ExpectedVersion, StreamId, StreamVersion};

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
            request.after_read(ReadVersion::loaded(version))
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
