//! Cases that run the command path ([`App::execute`](crate::App), [`App::load`](crate::App))
//! over the store: guarantees that hold only if the store keeps what the command path gives it
//! (a command record's fingerprint and outcome, a snapshot's version) and refuses what it must.

use std::future::Future;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::helpers::{OrFail as _, join, stream};
use crate::aggregate::{Aggregate, EventSet, Events};
use crate::app::App;
use crate::codec::{self, DecodeError, EncodeError};
use crate::command::error::CommandError;
use crate::command::{AggregateSettings, Executed};
use crate::event::Event;
use crate::registry::Registry;
use crate::snapshot::{JsonSnapshot, Snapshot};
use crate::store::checkpoint::CheckpointStore;
use crate::store::event_store::EventStore;
use crate::stream::{StreamId, StreamVersion};

/// The one event of the suite's aggregate: an amount recorded on a tally.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Recorded {
    amount: f64,
}

impl Event for Recorded {
    const NAME: &'static str = "conformance.recorded";
    const VERSION: u32 = 1;
}

/// The event sum of [`Tally`], written out as `#[derive(Aggregate)]` would generate it.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum TallyEvent {
    Recorded(Recorded),
}

impl EventSet for TallyEvent {
    const NAMES: &'static [&'static str] = &[Recorded::NAME];

    fn event_type(&self) -> &'static str {
        Recorded::NAME
    }

    fn schema_version(&self) -> u32 {
        Recorded::VERSION
    }

    fn encode(&self) -> Result<Box<RawValue>, EncodeError> {
        let Self::Recorded(event) = self;
        codec::encode(event)
    }

    fn decode(
        event_type: &str,
        schema_version: u32,
        payload: &RawValue,
    ) -> Result<Self, DecodeError> {
        if event_type == Recorded::NAME {
            codec::decode(schema_version, payload).map(Self::Recorded)
        } else {
            Err(DecodeError::unknown_type(
                event_type,
                schema_version,
                Self::NAMES,
            ))
        }
    }
}

/// Records an amount; refused when it is negative.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Record {
    amount: f64,
}

/// Records nothing; a second command type, to tell commands apart by type.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Touch;

/// The command sum of [`Tally`], `Serialize` as `#[derive(Aggregate)]` makes it.
#[derive(Serialize)]
pub(super) enum TallyCommand {
    Record(Record),
    Touch(Touch),
}

impl From<Record> for TallyCommand {
    fn from(command: Record) -> Self {
        Self::Record(command)
    }
}

impl From<Touch> for TallyCommand {
    fn from(command: Touch) -> Self {
        Self::Touch(command)
    }
}

/// A negative amount.
#[derive(Debug, PartialEq, thiserror::Error)]
#[error("amount {0} is negative")]
pub(super) struct Negative(f64);

/// The suite's aggregate: a running total of recorded amounts, snapshotted as JSON.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct Tally {
    total: f64,
    count: u64,
}

impl Aggregate for Tally {
    const NAME: &'static str = "conformance_tally";
    type Event = TallyEvent;
    type Command = TallyCommand;
    type Error = Negative;
    type Services = ();
    type Snapshot = JsonSnapshot<1>;

    fn apply_event(&mut self, event: &TallyEvent) {
        let TallyEvent::Recorded(recorded) = event;
        self.total += recorded.amount;
        self.count += 1;
    }

    fn handle_command<'a>(
        &'a self,
        command: TallyCommand,
        (): &'a (),
    ) -> impl Future<Output = Result<Events<Self>, Negative>> + Send + 'a {
        std::future::ready(match command {
            TallyCommand::Record(Record { amount }) if amount < 0.0 => Err(Negative(amount)),
            TallyCommand::Record(Record { amount }) => {
                Ok(Events::one(TallyEvent::Recorded(Recorded { amount })))
            }
            TallyCommand::Touch(Touch) => Ok(Events::none()),
        })
    }
}

async fn tally_app<S: EventStore + CheckpointStore>(store: S, max_attempts: u32) -> App<S> {
    Registry::new(store)
        .aggregate_with(AggregateSettings::<Tally>::new(()).max_attempts(max_attempts))
        .build()
        .await
        .or_fail("building the application")
}

fn tally_stream(id: &str) -> StreamId {
    stream(&format!("{}-{id}", Tally::NAME))
}

async fn record<S: EventStore>(
    app: &App<S>,
    id: &str,
    amount: f64,
) -> Result<Executed<Tally>, CommandError<Negative>> {
    app.execute::<Tally>(id, Record { amount }).await
}

async fn record_with_id<S: EventStore>(
    app: &App<S>,
    id: &str,
    amount: f64,
    command_id: uuid::Uuid,
) -> Result<Executed<Tally>, CommandError<Negative>> {
    app.execute::<Tally>(id, Record { amount })
        .command_id(command_id)
        .await
}

async fn version<S: EventStore>(store: &S, id: &str) -> StreamVersion {
    super::helpers::version_of(store, &tally_stream(id)).await
}

/// A decided event whose JSON would not decode back (a NaN, an infinity) is refused before the
/// append, with an error naming the event type and the field; nothing is stored, and the
/// stream goes on loading and taking commands.
pub async fn unrepresentable_payload_is_refused_before_append<S: EventStore + CheckpointStore>(
    store: S,
) {
    let app = tally_app(store.clone(), 10).await;
    record(&app, "nan", 1.5).await.or_fail("recording 1.5");
    for amount in [f64::NAN, f64::INFINITY] {
        let error = record(&app, "nan", amount)
            .await
            .err()
            .unwrap_or_else(|| panic!("recording {amount} was accepted"));
        match &error {
            CommandError::Encode {
                source:
                    EncodeError::NotRepresentable {
                        event_type, field, ..
                    },
                ..
            } => assert_eq!(
                (*event_type, field.as_str()),
                (Recorded::NAME, "amount"),
                "the error names another event or field"
            ),
            other => panic!("recording {amount}: expected an encoding refusal, got: {other}"),
        }
    }
    assert_eq!(
        version(&store, "nan").await,
        StreamVersion(1),
        "an unrepresentable event was stored"
    );
    let done = record(&app, "nan", 2.5)
        .await
        .or_fail("recording 2.5 after the refusals");
    assert_eq!((done.state.total, done.version), (4.0, StreamVersion(2)));
    let loaded = app
        .load::<Tally>("nan")
        .await
        .or_fail("loading the stream after the refusals");
    assert_eq!((loaded.state.count, loaded.version), (2, StreamVersion(2)));
}

/// A command id answers only the command it was made for: the same id and command replay the
/// first result; the same id with another value, another command type or another aggregate
/// id is refused, and appends nothing.
pub async fn command_id_answers_only_its_command<S: EventStore + CheckpointStore>(store: S) {
    let ids = super::Ids::new("command_id_answers_only_its_command");
    let app = tally_app(store.clone(), 10).await;
    let key = ids.command(1);
    let first = record_with_id(&app, "k", 1.0, key)
        .await
        .or_fail("the first command with the id");
    assert!(!first.replayed);
    record(&app, "k", 10.0).await.or_fail("another command");

    let again = record_with_id(&app, "k", 1.0, key)
        .await
        .or_fail("the same command with the same id");
    assert!(
        again.replayed,
        "the same command with its id was decided again"
    );
    assert_eq!(
        (again.version_before, again.version, again.state.total),
        (StreamVersion(0), StreamVersion(1), 1.0),
        "the replay is not the first result"
    );

    let other_value = record_with_id(&app, "k", 2.0, key).await;
    assert!(
        matches!(other_value, Err(CommandError::FingerprintMismatch { command_id, .. }) if command_id == key),
        "another value under the id: {other_value:?}"
    );
    let other_type = app.execute::<Tally>("k", Touch).command_id(key).await;
    assert!(
        matches!(other_type, Err(CommandError::FingerprintMismatch { .. })),
        "another command type under the id: {:?}",
        other_type.map(|done| done.version)
    );
    let other_stream = record_with_id(&app, "elsewhere", 1.0, key).await;
    assert!(
        matches!(other_stream, Err(CommandError::CommandIdReused { .. })),
        "the id on another aggregate: {other_stream:?}"
    );
    assert_eq!(version(&store, "k").await, StreamVersion(2));
    assert_eq!(version(&store, "elsewhere").await, StreamVersion(0));
}

/// A refused command with an id is recorded: the same id and command are refused again with
/// the same error (however the stream moved since), the same id with another command is refused
/// as reused, and nothing is appended by any of them.
pub async fn refusal_replays_as_the_same_refusal<S: EventStore + CheckpointStore>(store: S) {
    let ids = super::Ids::new("refusal_replays_as_the_same_refusal");
    let app = tally_app(store.clone(), 10).await;
    let key = ids.command(1);
    record(&app, "r", 3.0).await.or_fail("recording 3");
    let refused = record_with_id(&app, "r", -11.0, key).await;
    assert!(
        matches!(refused, Err(CommandError::Rejected(Negative(amount))) if amount == -11.0),
        "the first refusal: {refused:?}"
    );
    record(&app, "r", 4.0)
        .await
        .or_fail("recording 4 after the refusal");

    let reused = record_with_id(&app, "r", 10.0, key).await;
    assert!(
        matches!(reused, Err(CommandError::FingerprintMismatch { .. })),
        "another command under a refused id was {reused:?}"
    );
    let replayed = record_with_id(&app, "r", -11.0, key).await;
    assert!(
        matches!(replayed, Err(CommandError::Rejected(Negative(amount))) if amount == -11.0),
        "the refused command sent again: {replayed:?}"
    );
    assert_eq!(version(&store, "r").await, StreamVersion(2));
}

/// Commands on one stream from many tasks of one application never conflict with each other:
/// with a single attempt allowed, every one of them is appended.
pub async fn commands_of_one_app_on_one_stream_never_conflict<S: EventStore + CheckpointStore>(
    store: S,
) {
    const TASKS: u64 = 8;
    const EACH: u64 = 100;
    let app = tally_app(store.clone(), 1).await;
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                for _ in 0..EACH {
                    record(&app, "hot", 1.0).await.or_fail(
                        "a command on a stream other commands of the application were writing",
                    );
                }
            })
        })
        .collect();
    for task in tasks {
        join(task).await;
    }
    let loaded = app.load::<Tally>("hot").await.or_fail("loading the stream");
    assert_eq!(
        (loaded.state.count, loaded.version),
        (TASKS * EACH, StreamVersion(TASKS * EACH))
    );
}

/// A snapshot beyond the stream's end (a left-over one, a log restored from an older backup)
/// is ignored: loads fold the stream's events, and commands append after its real version.
pub async fn snapshot_beyond_the_stream_is_ignored<S: EventStore + CheckpointStore>(store: S) {
    let app = tally_app(store.clone(), 10).await;
    for amount in [1.0, 2.0, 3.0] {
        record(&app, "restored", amount)
            .await
            .or_fail("recording an amount");
    }
    let stale = Tally {
        total: 900.0,
        count: 900,
    };
    let state = serde_json::value::to_raw_value(&stale).or_fail("encoding the snapshot");
    store
        .save_snapshot(
            &tally_stream("restored"),
            Snapshot::new(StreamVersion(900), 1, state),
        )
        .await
        .or_fail("saving a snapshot beyond the stream");
    let loaded = app
        .load::<Tally>("restored")
        .await
        .or_fail("loading with a snapshot beyond the stream");
    assert_eq!(
        (loaded.state.count, loaded.state.total, loaded.version),
        (3, 6.0, StreamVersion(3)),
        "the load trusted a snapshot beyond the stream"
    );
    let done = record(&app, "restored", 4.0)
        .await
        .or_fail("a command with a snapshot beyond the stream");
    assert_eq!((done.version, done.state.total), (StreamVersion(4), 10.0));

    // A snapshot that fits is used: its state, not a fold of the events, is what loads.
    let fitting = Tally {
        total: 100.0,
        count: 4,
    };
    let state = serde_json::value::to_raw_value(&fitting).or_fail("encoding the snapshot");
    store
        .save_snapshot(
            &tally_stream("restored"),
            Snapshot::new(StreamVersion(4), 1, state),
        )
        .await
        .or_fail("saving a snapshot at the stream's end");
    let loaded = app.load::<Tally>("restored").await.or_fail("loading");
    assert_eq!(
        (loaded.state.total, loaded.version),
        (100.0, StreamVersion(4)),
        "a snapshot that fits was not used"
    );
}
