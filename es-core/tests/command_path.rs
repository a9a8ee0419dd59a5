//! The command path, registry and projection runner on the in-memory store.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use es_core::EventLog;
use es_core::SnapshotStore;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use es_core::codec::DecodeError;
use es_core::snapshot::Snapshot;
use es_core::store::AppendRequest;
use es_core::upcast::UpcastError;
use es_core::{
    Aggregate, AggregateSettings, AppendError, CommandError, EventEnvelope, Events,
    ExpectedVersion, Handle, HandleAsync, HandlerError, LoadError, MemoryStore, Metadata, NewEvent,
    Project, Projection, Registry, RegistryError, StreamId, StreamVersion, event,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

fn v1_to_v2(mut payload: Value) -> Result<Value, UpcastError> {
    let by = payload
        .get("by")
        .and_then(Value::as_u64)
        .ok_or(UpcastError::missing_field("by"))?;
    payload["amount"] = json!(by);
    Ok(payload)
}

#[event]
pub struct Opened {
    pub owner: String,
}

/// Version 2 renamed `by` to `amount`.
#[event(name = "counter.incremented", version = 2, upcast(v1_to_v2))]
pub struct Incremented {
    pub amount: u64,
}

#[derive(Clone, Serialize)]
pub struct Open {
    pub owner: String,
}

#[derive(Clone, Serialize)]
pub struct Increment(pub u64);

#[derive(Clone, Serialize)]
pub struct Nothing;

/// Increments by what the services say (and may race a writer in its own decision).
#[derive(Clone, Serialize)]
pub struct IncrementByQuote;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CounterError {
    #[error("already open")]
    AlreadyOpen,
    #[error("not open")]
    NotOpen,
    #[error("increment must be positive")]
    Zero,
}

#[derive(Default)]
pub struct Quotes {
    amount: u64,
    /// When set, every decision first appends a competing event: each attempt conflicts.
    interfere: Option<(MemoryStore, StreamId)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Aggregate)]
#[aggregate(
    name = "counter",
    error = CounterError,
    events(Opened, Incremented),
    commands(Open, Increment, Nothing),
    async_commands(IncrementByQuote),
    services = Quotes,
    snapshot = 1
)]
pub struct Counter {
    owner: String,
    value: u64,
}

impl es_core::Apply<Opened> for Counter {
    fn apply(&mut self, event: &Opened) {
        self.owner.clone_from(&event.owner);
    }
}

impl es_core::Apply<Incremented> for Counter {
    fn apply(&mut self, event: &Incremented) {
        self.value += event.amount;
    }
}

impl Handle<Open> for Counter {
    fn handle(&self, command: Open) -> Result<Events<Self>, CounterError> {
        if !self.owner.is_empty() {
            return Err(CounterError::AlreadyOpen);
        }
        Ok(Events::one(Opened {
            owner: command.owner,
        }))
    }
}

impl Handle<Increment> for Counter {
    fn handle(&self, command: Increment) -> Result<Events<Self>, CounterError> {
        if self.owner.is_empty() {
            return Err(CounterError::NotOpen);
        }
        if command.0 == 0 {
            return Err(CounterError::Zero);
        }
        Ok(Events::one(Incremented { amount: command.0 }))
    }
}

impl Handle<Nothing> for Counter {
    fn handle(&self, _: Nothing) -> Result<Events<Self>, CounterError> {
        Ok(Events::none())
    }
}

impl HandleAsync<IncrementByQuote> for Counter {
    async fn handle_async(
        &self,
        _: IncrementByQuote,
        services: &Quotes,
    ) -> Result<Events<Self>, CounterError> {
        if let Some((store, stream_id)) = &services.interfere {
            let competing = NewEvent::new(
                "counter.incremented",
                2,
                serde_json::value::to_raw_value(&json!({"amount": 1})).unwrap(),
                Metadata::new(),
            );
            store
                .append(AppendRequest::new(
                    stream_id.clone(),
                    ExpectedVersion::Any,
                    vec![competing],
                ))
                .await
                .unwrap();
        }
        tokio::task::yield_now().await;
        Ok(Events::one(Incremented {
            amount: services.amount,
        }))
    }
}

async fn app_with(settings: AggregateSettings<Counter>) -> es_core::App<MemoryStore> {
    Registry::new(MemoryStore::new())
        .aggregate_with(settings)
        .build()
        .await
        .unwrap()
}

async fn app() -> es_core::App<MemoryStore> {
    app_with(AggregateSettings::default()).await
}

/// Opens counter `id` for "ann".
async fn open<S: es_core::EventStore>(app: &es_core::App<S>, id: &str) {
    app.execute::<Counter>(
        id,
        Open {
            owner: "ann".into(),
        },
    )
    .await
    .unwrap();
}

fn stream(id: &str) -> StreamId {
    StreamId::for_aggregate(Counter::NAME, id).unwrap()
}

async fn stored_versions(app: &es_core::App<MemoryStore>, id: &str) -> Vec<u64> {
    use futures_util::TryStreamExt as _;
    let events: Vec<_> = app
        .store()
        .load(&stream(id), StreamVersion::INITIAL)
        .try_collect()
        .await
        .unwrap();
    events.iter().map(|e| e.stream_version.get()).collect()
}

#[tokio::test]
async fn execute_appends_and_load_returns_state_and_version() {
    let app = app().await;
    let opened = app
        .execute::<Counter>(
            "a",
            Open {
                owner: "ann".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(opened.version, StreamVersion(1));
    assert_eq!(opened.version_before, StreamVersion(0));
    assert!(!opened.replayed);
    let done = app.execute::<Counter>("a", Increment(5)).await.unwrap();
    assert_eq!(done.state.value, 5);
    assert_eq!(done.events, vec![Incremented { amount: 5 }.into()]);
    let loaded = app.load::<Counter>("a").await.unwrap();
    assert_eq!((loaded.state.value, loaded.version), (5, StreamVersion(2)));
    assert_eq!(loaded.state.owner, "ann");
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let app = app().await;
    let error = app.execute::<Counter>("a", Increment(1)).await.unwrap_err();
    assert_eq!(error.rejection(), Some(&CounterError::NotOpen));
    assert!(stored_versions(&app, "a").await.is_empty());
}

#[tokio::test]
async fn a_pinned_version_that_moved_is_a_conflict_without_retry() {
    let app = app().await;
    open(&app, "a").await;
    app.execute::<Counter>("a", Increment(1)).await.unwrap();
    let error = app
        .execute::<Counter>("a", Increment(1))
        .expected_version(ExpectedVersion::Exact(StreamVersion(1)))
        .await
        .unwrap_err();
    match error {
        CommandError::Conflict {
            expected,
            actual,
            attempts,
            ..
        } => {
            assert_eq!(expected, ExpectedVersion::Exact(StreamVersion(1)));
            assert_eq!(actual, StreamVersion(2));
            assert_eq!(attempts, 1);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(stored_versions(&app, "a").await, vec![1, 2]);
    let ok = app
        .execute::<Counter>("a", Increment(1))
        .expected_version(ExpectedVersion::Exact(StreamVersion(2)))
        .await
        .unwrap();
    assert_eq!(ok.version, StreamVersion(3));
}

#[tokio::test]
async fn a_command_for_a_missing_aggregate_is_not_found() {
    let app = app().await;
    let error = app
        .execute::<Counter>("ghost", Increment(1))
        .existing()
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::NotFound { ref stream_id } if stream_id.as_str() == "counter-ghost")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_commands_lose_no_update() {
    let app = app_with(AggregateSettings::default().max_attempts(10_000)).await;
    open(&app, "hot").await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                for _ in 0..25 {
                    app.execute::<Counter>("hot", Increment(1)).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let loaded = app.load::<Counter>("hot").await.unwrap();
    assert_eq!(loaded.state.value, 400);
    assert_eq!(loaded.version, StreamVersion(401));
    assert_eq!(
        stored_versions(&app, "hot").await,
        (1..=401).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn retries_are_bounded_and_end_in_a_typed_conflict() {
    let store = MemoryStore::new();
    let services = Quotes {
        amount: 10,
        interfere: Some((store.clone(), stream("busy"))),
    };
    let app = Registry::new(store)
        .aggregate_with(AggregateSettings::<Counter>::new(services).max_attempts(3))
        .build()
        .await
        .unwrap();
    let error = app
        .execute::<Counter>("busy", IncrementByQuote)
        .await
        .unwrap_err();
    match error {
        CommandError::Conflict {
            attempts, actual, ..
        } => {
            assert_eq!(attempts, 3);
            assert_eq!(actual, StreamVersion(3), "three competing appends landed");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // Only the competing events were stored; the command's own event never was.
    assert_eq!(stored_versions(&app, "busy").await, vec![1, 2, 3]);
}

#[tokio::test]
async fn async_commands_receive_the_services() {
    let app = Registry::new(MemoryStore::new())
        .aggregate_with(AggregateSettings::<Counter>::new(Quotes {
            amount: 42,
            interfere: None,
        }))
        .build()
        .await
        .unwrap();
    let done = app.execute::<Counter>("q", IncrementByQuote).await.unwrap();
    assert_eq!(done.state.value, 42);
}

#[tokio::test]
async fn the_same_command_id_appends_once_and_returns_the_first_result() {
    let app = app().await;
    let key = Uuid::now_v7();
    let first = app
        .execute::<Counter>(
            "a",
            Open {
                owner: "ann".into(),
            },
        )
        .command_id(key)
        .await
        .unwrap();
    // Deciding again would be refused (AlreadyOpen); the stored result is returned instead.
    let second = app
        .execute::<Counter>(
            "a",
            Open {
                owner: "ann".into(),
            },
        )
        .command_id(key)
        .await
        .unwrap();
    assert!(second.replayed);
    assert_eq!(second.version, first.version);
    assert_eq!(second.events, first.events);
    assert_eq!(second.state.owner, "ann");
    // Another command under the same id is never answered with the first one's result.
    let other = app
        .execute::<Counter>(
            "a",
            Open {
                owner: "bob".into(),
            },
        )
        .command_id(key)
        .await
        .unwrap_err();
    assert!(
        matches!(other, CommandError::FingerprintMismatch { command_id, .. } if command_id == key),
        "{other:?}"
    );
    assert_eq!(stored_versions(&app, "a").await, vec![1]);
}

#[tokio::test]
async fn a_command_id_reused_for_another_stream_is_refused() {
    let app = app().await;
    let key = Uuid::now_v7();
    app.execute::<Counter>(
        "a",
        Open {
            owner: "ann".into(),
        },
    )
    .command_id(key)
    .await
    .unwrap();
    let error = app
        .execute::<Counter>(
            "b",
            Open {
                owner: "ann".into(),
            },
        )
        .command_id(key)
        .await
        .unwrap_err();
    assert!(
        matches!(error, CommandError::CommandIdReused { ref recorded_stream, .. } if recorded_stream.as_str() == "counter-a")
    );
    assert!(stored_versions(&app, "b").await.is_empty());
}

#[tokio::test]
async fn a_command_deciding_nothing_appends_nothing() {
    let app = app().await;
    open(&app, "a").await;
    let done = app.execute::<Counter>("a", Nothing).await.unwrap();
    assert!(done.events.is_empty());
    assert_eq!(done.version, StreamVersion(1));
    assert_eq!(stored_versions(&app, "a").await, vec![1]);
}

#[tokio::test]
async fn metadata_travels_with_the_events() {
    let app = app().await;
    let correlation = Uuid::now_v7();
    let causation = Uuid::now_v7();
    app.execute::<Counter>(
        "a",
        Open {
            owner: "ann".into(),
        },
    )
    .correlation_id(correlation)
    .causation_id(causation)
    .header("user-agent", "test \"quoted\"")
    .await
    .unwrap();
    let events = app
        .store()
        .read_all(es_core::LogPosition::START, 10, es_core::EventFilter::All)
        .await
        .unwrap();
    let metadata = &events[0].metadata;
    assert_eq!(metadata.correlation_id, Some(correlation));
    assert_eq!(metadata.causation_id, Some(causation));
    assert_eq!(
        metadata.headers.get("user-agent").map(String::as_str),
        Some("test \"quoted\"")
    );
}

#[tokio::test]
async fn snapshots_are_taken_by_policy_and_used_when_loading() {
    let app = app_with(AggregateSettings::default().snapshot_every(2)).await;
    open(&app, "s").await;
    for _ in 0..4 {
        app.execute::<Counter>("s", Increment(1)).await.unwrap();
    }
    let snapshot = app
        .store()
        .load_snapshot(&stream("s"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(snapshot.stream_version, StreamVersion(4));
    assert_eq!(snapshot.schema_version, 1);
    // Prove the loader uses it: a doctored snapshot at v4 shows through, plus the tail (v5).
    let doctored = Counter {
        owner: "from-snapshot".into(),
        value: 1000,
    };
    app.store()
        .save_snapshot(
            &stream("s"),
            Snapshot::new(
                StreamVersion(4),
                1,
                serde_json::value::to_raw_value(&doctored).unwrap(),
            ),
        )
        .await
        .unwrap();
    let loaded = app.load::<Counter>("s").await.unwrap();
    assert_eq!(loaded.state.owner, "from-snapshot");
    assert_eq!(
        (loaded.state.value, loaded.version),
        (1001, StreamVersion(5))
    );
}

#[tokio::test]
async fn a_snapshot_with_another_schema_version_is_ignored() {
    let app = app().await;
    open(&app, "s").await;
    app.execute::<Counter>("s", Increment(3)).await.unwrap();
    let old_shape = json!({"owner": "old", "value": 999});
    app.store()
        .save_snapshot(
            &stream("s"),
            Snapshot::new(
                StreamVersion(2),
                7,
                serde_json::value::to_raw_value(&old_shape).unwrap(),
            ),
        )
        .await
        .unwrap();
    let loaded = app.load::<Counter>("s").await.unwrap();
    assert_eq!(
        (loaded.state.owner.as_str(), loaded.state.value),
        ("ann", 3)
    );
}

#[tokio::test]
async fn load_at_shows_an_earlier_version() {
    let app = app().await;
    open(&app, "t").await;
    app.execute::<Counter>("t", Increment(2)).await.unwrap();
    app.execute::<Counter>("t", Increment(3)).await.unwrap();
    let at_two = app.load_at::<Counter>("t", StreamVersion(2)).await.unwrap();
    assert_eq!((at_two.state.value, at_two.version), (2, StreamVersion(2)));
}

#[tokio::test]
async fn invalid_ids_and_unregistered_aggregates_are_typed_errors() {
    let app = Registry::new(MemoryStore::new()).build().await.unwrap();
    let error = app
        .execute::<Counter>("a", Open { owner: "x".into() })
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        CommandError::NotRegistered {
            aggregate: "counter"
        }
    ));
    let app = app_with(AggregateSettings::default()).await;
    let error = app
        .execute::<Counter>("bad\0id", Open { owner: "x".into() })
        .await
        .unwrap_err();
    assert!(matches!(
        error,
        CommandError::InvalidId {
            aggregate: "counter",
            ..
        }
    ));
    let huge = "x".repeat(10 * 1024 * 1024);
    assert!(matches!(
        app.load::<Counter>(huge).await,
        Err(LoadError::InvalidStreamId(_))
    ));
}

async fn append_raw(
    app: &es_core::App<MemoryStore>,
    id: &str,
    event_type: &str,
    version: u32,
    payload: &str,
) {
    let raw = serde_json::value::RawValue::from_string(payload.to_owned()).unwrap();
    app.store()
        .append(AppendRequest::new(
            stream(id),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                event_type.to_owned(),
                version,
                raw,
                Metadata::new(),
            )],
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn version_one_rows_are_upcast_when_loading() {
    let app = app().await;
    append_raw(&app, "old", "opened", 1, r#"{"owner":"ann"}"#).await;
    append_raw(&app, "old", "counter.incremented", 1, r#"{"by":7}"#).await;
    append_raw(&app, "old", "counter.incremented", 2, r#"{"amount":1}"#).await;
    let loaded = app.load::<Counter>("old").await.unwrap();
    assert_eq!(loaded.state.value, 8);
}

#[tokio::test]
async fn unknown_types_corrupt_payloads_and_future_versions_are_typed_load_errors() {
    let cases = [
        ("gone", "counter.reset", 1, "{}"),
        ("corrupt", "counter.incremented", 2, r#"{"amount":"many"}"#),
        ("future", "counter.incremented", 3, r#"{"amount":1}"#),
        ("unupcastable", "counter.incremented", 1, r#"{"nope":1}"#),
    ];
    let app = app().await;
    for (id, event_type, version, payload) in cases {
        append_raw(&app, id, "opened", 1, r#"{"owner":"ann"}"#).await;
        append_raw(&app, id, event_type, version, payload).await;
        let error = app.load::<Counter>(id).await.unwrap_err();
        let LoadError::Decode {
            stream_id,
            stream_version,
            source,
        } = error
        else {
            panic!("expected a decode error for {id}, got {error:?}");
        };
        assert_eq!(stream_id, stream(id));
        assert_eq!(stream_version, StreamVersion(2));
        assert_eq!(source.event_type(), event_type);
        let kind_matches = match id {
            "gone" => matches!(source, DecodeError::UnknownType { .. }),
            "corrupt" => matches!(source, DecodeError::Payload { .. }),
            "future" => matches!(source, DecodeError::UnsupportedVersion { .. }),
            _ => matches!(
                source,
                DecodeError::Upcast {
                    from_version: 1,
                    ..
                }
            ),
        };
        assert!(kind_matches, "{id}: {source:?}");
        // And a command on such a stream refuses, writing nothing.
        let command = app.execute::<Counter>(id, Increment(1)).await.unwrap_err();
        assert!(matches!(command, CommandError::Load { .. }));
        assert_eq!(stored_versions(&app, id).await, vec![1, 2]);
    }
}

#[tokio::test]
async fn append_conflicts_name_stream_and_versions() {
    let store = MemoryStore::new();
    let id = stream("x");
    store
        .append(AppendRequest::new(
            id.clone(),
            ExpectedVersion::NoStream,
            vec![],
        ))
        .await
        .unwrap();
    append_raw_store(&store, &id).await;
    let error = store
        .append(AppendRequest::new(
            id.clone(),
            ExpectedVersion::NoStream,
            vec![NewEvent::new(
                "opened",
                1,
                serde_json::value::to_raw_value(&json!({"owner": "a"})).unwrap(),
                Metadata::new(),
            )],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "version conflict on stream `counter-x`: expected no stream, found version 1"
    );
    assert!(matches!(
        error,
        AppendError::Conflict {
            actual: StreamVersion(1),
            ..
        }
    ));
}

async fn append_raw_store(store: &MemoryStore, id: &StreamId) {
    store
        .append(AppendRequest::new(
            id.clone(),
            ExpectedVersion::Any,
            vec![NewEvent::new(
                "opened",
                1,
                serde_json::value::to_raw_value(&json!({"owner": "a"})).unwrap(),
                Metadata::new(),
            )],
        ))
        .await
        .unwrap();
}

// The registry refuses ambiguous registrations.

#[event(name = "opened")]
pub struct ClashingOpened {
    pub owner: String,
}

#[derive(Default, Aggregate)]
#[aggregate(name = "ledger", error = CounterError, events(ClashingOpened), commands(Nothing))]
pub struct Ledger;

impl es_core::Apply<ClashingOpened> for Ledger {
    fn apply(&mut self, _: &ClashingOpened) {}
}

impl Handle<Nothing> for Ledger {
    fn handle(&self, _: Nothing) -> Result<Events<Self>, CounterError> {
        Ok(Events::none())
    }
}

#[event]
pub struct Tallied;

/// The events of `Tally`, which cannot be derived.
#[derive(Default, Aggregate)]
#[aggregate(name = "tally", error = CounterError, events(Tallied), commands(Nothing))]
pub struct TallyShape;

/// Written by hand: the derive refuses a `-` in a name at compile time.
#[derive(Default)]
pub struct Tally;

impl Aggregate for Tally {
    const NAME: &'static str = "counter-tally";
    type Event = TallyShapeEvent;
    type Command = Nothing;
    type Error = CounterError;
    type Services = ();
    type Snapshot = es_core::snapshot::NoSnapshots;

    fn apply_event(&mut self, _: &TallyShapeEvent) {}

    fn handle_command<'a>(
        &'a self,
        _: Nothing,
        (): &'a (),
    ) -> impl std::future::Future<Output = Result<Events<Self>, CounterError>> + Send + 'a {
        std::future::ready(Ok(Events::none()))
    }
}

impl es_core::Apply<Tallied> for TallyShape {
    fn apply(&mut self, _: &Tallied) {}
}

impl Handle<Nothing> for TallyShape {
    fn handle(&self, _: Nothing) -> Result<Events<Self>, CounterError> {
        Ok(Events::none())
    }
}

#[tokio::test]
async fn the_registry_refuses_collisions() {
    let error = Registry::new(MemoryStore::new())
        .aggregate::<Counter>()
        .aggregate::<Counter>()
        .build()
        .await
        .unwrap_err();
    assert_eq!(error, RegistryError::DuplicateAggregate { name: "counter" });

    let error = Registry::new(MemoryStore::new())
        .aggregate::<Counter>()
        .aggregate::<Ledger>()
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        error,
        RegistryError::EventTypeClaimedTwice {
            event_type: "opened",
            first: "counter",
            second: "ledger"
        }
    );

    let error = Registry::new(MemoryStore::new())
        .aggregate::<Tally>()
        .aggregate::<Counter>()
        .build()
        .await
        .unwrap_err();
    assert_eq!(
        error,
        RegistryError::InvalidAggregateName {
            name: "counter-tally",
            reason: "contains `-`"
        }
    );

    let error = Registry::new(MemoryStore::new())
        .projection(Totals::default())
        .projection(Totals::default())
        .build()
        .await
        .unwrap_err();
    assert_eq!(error, RegistryError::DuplicateProjection { name: "totals" });
}

// Projections.

#[derive(Default, Clone, Projection)]
#[projection(name = "totals", events(Incremented))]
pub struct Totals {
    sum: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<u64>>>,
    /// The aggregate type and id of every event seen, from its envelope.
    aggregates: Arc<Mutex<Vec<(String, String)>>>,
    /// While set, the handler fails on amounts of 13.
    refuse_thirteen: Arc<AtomicBool>,
}

impl Project<Incremented> for Totals {
    async fn project(
        &mut self,
        event: EventEnvelope<Incremented>,
        (): &mut (),
    ) -> Result<(), HandlerError> {
        if event.event.amount == 13 && self.refuse_thirteen.load(Ordering::SeqCst) {
            return Err(HandlerError::msg("thirteen is unlucky"));
        }
        self.sum.fetch_add(event.event.amount, Ordering::SeqCst);
        self.seen.lock().unwrap().push(event.event.amount);
        self.aggregates.lock().unwrap().push((
            event.aggregate_type().unwrap_or_default().to_owned(),
            event.aggregate_id().unwrap_or_default().to_owned(),
        ));
        Ok(())
    }
}

/// An app with `Counter` and the `totals` projection.
async fn totals_app(
    totals: &Totals,
    settings: es_core::RunnerSettings,
) -> es_core::App<MemoryStore> {
    Registry::new(MemoryStore::new())
        .aggregate::<Counter>()
        .projection(totals.clone())
        .runner_settings(settings)
        .build()
        .await
        .unwrap()
}

#[tokio::test]
async fn catch_up_applies_each_consumed_event_once() {
    let totals = Totals::default();
    let app = totals_app(&totals, es_core::RunnerSettings::default().batch_size(3)).await;
    open(&app, "a").await;
    for amount in 1..=10 {
        app.execute::<Counter>("a", Increment(amount))
            .await
            .unwrap();
    }
    app.catch_up().await.unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(totals.sum.load(Ordering::SeqCst), 55);
    assert_eq!(*totals.seen.lock().unwrap(), (1..=10).collect::<Vec<_>>());
    // The envelope names the aggregate as the commands were sent to it.
    let aggregates = totals.aggregates.lock().unwrap().clone();
    assert_eq!(aggregates, vec![("counter".to_owned(), "a".to_owned()); 10]);
    let status = &app.projection_status()[0];
    assert_eq!(status.name, "totals");
    assert_eq!(status.events_applied, 10);
    assert_eq!(status.checkpoint.position.get(), 11);
    assert!(status.last_error.is_none());
}

#[tokio::test]
async fn events_appended_after_a_read_ahead_are_applied_by_the_next_run() {
    let totals = Totals::default();
    let app = totals_app(&totals, es_core::RunnerSettings::default().batch_size(2)).await;
    open(&app, "a").await;
    // Full batches: each one's successor is read while it is written, the last read finding
    // the end of the log.
    for amount in 1..=4 {
        app.execute::<Counter>("a", Increment(amount))
            .await
            .unwrap();
    }
    app.catch_up().await.unwrap();
    for amount in 5..=7 {
        app.execute::<Counter>("a", Increment(amount))
            .await
            .unwrap();
    }
    app.catch_up().await.unwrap();
    assert_eq!(*totals.seen.lock().unwrap(), (1..=7).collect::<Vec<_>>());
    assert_eq!(app.projection_status()[0].events_applied, 7);
}

#[tokio::test]
async fn a_failing_handler_stops_at_the_event_and_resumes_there() {
    let totals = Totals::default();
    totals.refuse_thirteen.store(true, Ordering::SeqCst);
    let app = totals_app(&totals, es_core::RunnerSettings::default().batch_size(2)).await;
    open(&app, "a").await;
    for amount in [1, 2, 13, 4] {
        app.execute::<Counter>("a", Increment(amount))
            .await
            .unwrap();
    }
    let error = app.catch_up().await.unwrap_err();
    let es_core::RunnerError::Projection(failure) = &error else {
        panic!("expected a projection error, got {error:?}");
    };
    assert_eq!(failure.projection, "totals");
    assert_eq!(failure.event_type, "counter.incremented");
    assert_eq!(failure.position.get(), 4);
    let status = &app.projection_status()[0];
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("thirteen is unlucky")),
        "{status:?}"
    );
    // The batch holding 13 was rolled back: only the batch before it counts.
    assert_eq!(*totals.seen.lock().unwrap(), vec![1, 2]);
    totals.refuse_thirteen.store(false, Ordering::SeqCst);
    app.catch_up().await.unwrap();
    assert_eq!(*totals.seen.lock().unwrap(), vec![1, 2, 13, 4]);
    assert!(app.projection_status()[0].last_error.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_projections_follow_new_events_live() {
    let totals = Totals::default();
    let app = totals_app(
        &totals,
        es_core::RunnerSettings::default().poll_interval(Duration::from_secs(60)),
    )
    .await;
    let workers = app.start_projections();
    open(&app, "a").await;
    app.execute::<Counter>("a", Increment(7)).await.unwrap();
    // Woken by the store's watch, not by the (60 s) poll: wait on the condition, with a deadline.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while totals.sum.load(Ordering::SeqCst) != 7 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "projection did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    workers.shutdown().await;
    assert_eq!(*totals.seen.lock().unwrap(), vec![7]);
}

// Regressions found in review.

/// A memory store whose first `find_command` answers from before the gate, then waits at it: the
/// window in which another run of the same command can commit.
/// Signals "reached the gate", then waits for "release".
type Gate = (
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<()>,
);

#[derive(Clone, Default)]
struct GatedStore {
    inner: MemoryStore,
    gate: Arc<Mutex<Option<Gate>>>,
}

impl es_core::EventLog for GatedStore {
    async fn append(&self, request: AppendRequest) -> Result<es_core::Committed, AppendError> {
        self.inner.append(request).await
    }

    fn load<'a>(
        &'a self,
        stream_id: &'a StreamId,
        after: StreamVersion,
    ) -> impl futures_core::Stream<Item = Result<es_core::RecordedEvent, LoadError>> + Send + 'a
    {
        self.inner.load(stream_id, after)
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<StreamVersion, LoadError> {
        self.inner.stream_version(stream_id).await
    }

    async fn read_all(
        &self,
        after: es_core::LogPosition,
        limit: usize,
        filter: es_core::EventFilter<'_>,
    ) -> Result<Vec<es_core::RecordedEvent>, LoadError> {
        self.inner.read_all(after, limit, filter).await
    }

    async fn head(&self) -> Result<Option<es_core::LogPosition>, LoadError> {
        self.inner.head().await
    }

    fn watch(&self) -> es_core::store::LogWatch {
        self.inner.watch()
    }
}

impl es_core::SnapshotStore for GatedStore {
    async fn save_snapshot(
        &self,
        stream_id: &StreamId,
        snapshot: Snapshot,
    ) -> Result<(), es_core::BackendError> {
        self.inner.save_snapshot(stream_id, snapshot).await
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, LoadError> {
        self.inner.load_snapshot(stream_id).await
    }
}

impl es_core::CommandLog for GatedStore {
    async fn find_command(
        &self,
        id: Uuid,
    ) -> Result<Option<es_core::store::CommandRecord>, LoadError> {
        let found = self.inner.find_command(id).await;
        let gate = self.gate.lock().unwrap().take();
        if let Some((reached, release)) = gate {
            let _ = reached.send(());
            let _ = release.await;
        }
        found
    }
}

/// Runs `retry` until its (stale) command lookup, commits `first` meanwhile, then lets the
/// retry go on; both must report the first run's result.
/// Two runs of one command id race, as they do from two processes (within one application,
/// commands on a stream take turns and cannot race): the one held at its append loses.
async fn race_same_command_id(pinned: bool) {
    let store = GatedStore::default();
    let process = || async {
        Registry::new(store.clone())
            .aggregate::<Counter>()
            .build()
            .await
            .unwrap()
    };
    let (app, other_process) = (process().await, process().await);
    open(&app, "r").await;
    let (reached_tx, reached_rx) = tokio::sync::oneshot::channel();
    let (release_tx, release_rx) = tokio::sync::oneshot::channel();
    *store.gate.lock().unwrap() = Some((reached_tx, release_rx));
    let key = Uuid::now_v7();
    let command = move |app: es_core::App<GatedStore>| async move {
        let execute = app.execute::<Counter>("r", Increment(5)).command_id(key);
        if pinned {
            execute
                .expected_version(ExpectedVersion::Exact(StreamVersion(1)))
                .await
        } else {
            execute.await
        }
    };
    let retry = tokio::spawn(command(other_process));
    reached_rx.await.unwrap();
    let first = command(app.clone()).await.unwrap();
    release_tx.send(()).unwrap();
    let second = retry.await.unwrap().unwrap();
    assert!(second.replayed);
    assert_eq!((second.version, second.state.value), (first.version, 5));
    assert_eq!(app.load::<Counter>("r").await.unwrap().state.value, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_racing_its_first_run_returns_the_first_result() {
    race_same_command_id(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_retry_racing_its_first_run_returns_the_first_result() {
    race_same_command_id(true).await;
}

#[tokio::test]
async fn a_failure_mid_batch_in_memory_applies_nothing_twice() {
    let totals = Totals::default();
    totals.refuse_thirteen.store(true, Ordering::SeqCst);
    let app = totals_app(&totals, es_core::RunnerSettings::default().batch_size(10)).await;
    open(&app, "m").await;
    for amount in [1, 2, 13, 4] {
        app.execute::<Counter>("m", Increment(amount))
            .await
            .unwrap();
    }
    assert!(app.catch_up().await.is_err());
    assert!(
        app.catch_up().await.is_err(),
        "the poison event is not skipped"
    );
    assert_eq!(*totals.seen.lock().unwrap(), vec![1, 2]);
    totals.refuse_thirteen.store(false, Ordering::SeqCst);
    app.catch_up().await.unwrap();
    assert_eq!(*totals.seen.lock().unwrap(), vec![1, 2, 13, 4]);
}

#[tokio::test]
async fn a_zero_batch_size_still_catches_up_and_checkpoints_reach_the_head() {
    let totals = Totals::default();
    let app = totals_app(&totals, es_core::RunnerSettings::default().batch_size(0)).await;
    open(&app, "z").await;
    app.execute::<Counter>("z", Increment(3)).await.unwrap();
    // The last events are of a type the projection ignores: its checkpoint still reaches them.
    app.execute::<Counter>(
        "other",
        Open {
            owner: "bob".into(),
        },
    )
    .await
    .unwrap();
    app.catch_up().await.unwrap();
    assert_eq!(totals.sum.load(Ordering::SeqCst), 3);
    let head = app.store().head().await.unwrap().unwrap();
    assert_eq!(app.projection_status()[0].checkpoint, head);
    use es_core::CheckpointStore as _;
    assert_eq!(app.store().checkpoint("totals").await.unwrap(), head);
}

#[test]
fn fixtures_assert_no_events_and_mixed_event_types() {
    es_core::testing::given::<Counter>([Opened {
        owner: "ann".into(),
    }
    .into()])
    .when(Nothing)
    .then_nothing();
    let state = es_core::testing::given::<Counter>([])
        .when(Open {
            owner: "ann".into(),
        })
        .then_events([Opened {
            owner: "ann".into(),
        }
        .into()]);
    assert_eq!(state.owner, "ann");
}

#[tokio::test]
async fn fixtures_run_async_handlers_on_the_callers_runtime() {
    let state = es_core::testing::given_with_services::<Counter>(
        Quotes {
            amount: 9,
            interfere: None,
        },
        [Opened {
            owner: "ann".into(),
        }
        .into()],
    )
    .when_async(IncrementByQuote)
    .await
    .then([Incremented { amount: 9 }]);
    assert_eq!(state.value, 9);
}
