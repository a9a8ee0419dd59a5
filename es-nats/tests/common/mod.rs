//! Test support: PostgreSQL schemas and JetStream streams made fresh per test and removed
//! afterwards, a private NATS server that can be stopped and restarted, and helpers to append
//! events and read a stream back.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)] // shared by several test binaries

use std::collections::BTreeMap;
use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use es_core::{
    AppendRequest, CheckpointStore, EventFilter, EventStore, ExpectedVersion, LogPosition,
    Metadata, NewEvent, RecordedEvent, StreamId,
};
use es_nats::JetStreamPublisher;
use es_nats::async_nats::{self, jetstream};
use es_postgres::PostgresStore;
use futures_util::FutureExt as _;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The PostgreSQL server the tests use.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// The shared NATS server the tests use (not the private ones).
pub(crate) fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "127.0.0.1:4222".to_owned())
}

/// A JetStream context whose requests and acknowledgements time out after a second, so a
/// failure shows quickly.
pub(crate) fn context(client: async_nats::Client) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client)
}

/// A client that retries a lost connection every 100 ms.
pub(crate) async fn client(address: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(address)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "no NATS server answers at {address} ({error}); start one with `nats-server -js`"
            )
        })
}

/// What one test made on the servers, removed by [`with_fixture`] whatever the outcome.
#[derive(Clone)]
pub(crate) struct Fixture {
    pub(crate) pool: PgPool,
    pub(crate) jetstream: jetstream::Context,
    schemas: Arc<Mutex<Vec<String>>>,
    streams: Arc<Mutex<Vec<(jetstream::Context, String)>>>,
}

/// A fresh stream name and subject prefix for one test.
pub(crate) struct Names {
    pub(crate) stream: String,
    pub(crate) prefix: String,
    pub(crate) checkpoint: String,
}

impl Fixture {
    /// A PostgreSQL store in a fresh schema.
    pub(crate) async fn store(&self) -> PostgresStore {
        let name = format!("es_nats_test_{}", uuid::Uuid::now_v7().simple());
        self.schemas.lock().unwrap().push(name.clone());
        PostgresStore::options()
            .schema(name)
            .with_pool(self.pool.clone())
            .await
            .expect("store connects and migrates")
    }

    /// A fresh stream name (deleted afterwards from the server behind `jetstream`) and prefix.
    pub(crate) fn names(&self, jetstream: &jetstream::Context) -> Names {
        let id = uuid::Uuid::now_v7().simple().to_string();
        let stream = format!("ES_TEST_{id}");
        self.streams
            .lock()
            .unwrap()
            .push((jetstream.clone(), stream.clone()));
        Names {
            stream,
            prefix: format!("es_test.{id}"),
            checkpoint: format!("nats_test_{id}"),
        }
    }

    async fn clean_up(&self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().unwrap());
        for name in schemas {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .execute(&self.pool)
            .await
            .expect("schema drops");
        }
        let streams = std::mem::take(&mut *self.streams.lock().unwrap());
        for (jetstream, name) in streams {
            // A private server may already be gone, taking its streams with it.
            let _ =
                tokio::time::timeout(Duration::from_secs(3), jetstream.delete_stream(&name)).await;
        }
    }
}

/// Runs `test` with a fixture on the shared servers, then removes what it made, whether the
/// test passed or panicked.
pub(crate) async fn with_fixture<F, Fut>(test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = database_url();
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap_or_else(|error| panic!("no PostgreSQL answers at {url} ({error})"));
    let fixture = Fixture {
        pool,
        jetstream: context(client(&nats_url()).await),
        schemas: Arc::default(),
        streams: Arc::default(),
    };
    let outcome = std::panic::AssertUnwindSafe(test(fixture.clone()))
        .catch_unwind()
        .await;
    fixture.clean_up().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Appends one event of type `event_type` to `stream`, with a correlation id, a causation id
/// and a header in its metadata.
pub(crate) async fn append<S: EventStore>(store: &S, stream: &str, event_type: &str, n: u32) {
    let payload = serde_json::value::to_raw_value(&serde_json::json!({ "n": n })).unwrap();
    let metadata = Metadata::new()
        .with_correlation_id(uuid::Uuid::now_v7())
        .with_causation_id(uuid::Uuid::now_v7())
        .with_header("tenant", format!("t{n}"));
    let event = NewEvent::new(event_type.to_owned(), 1, payload, metadata);
    store
        .append(AppendRequest::new(
            StreamId::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![event],
        ))
        .await
        .expect("append");
}

/// Appends `count` events numbered from `from`, spread over two orders and a customer.
pub(crate) async fn append_many<S: EventStore>(store: &S, from: u32, count: u32) {
    for n in from..from + count {
        let (stream, event_type) = match n % 3 {
            0 => ("order-1", "OrderPlaced"),
            1 => ("order-2", "order.paid"),
            _ => ("customer-7", "CustomerRenamed"),
        };
        append(store, stream, event_type, n).await;
    }
}

/// Every event of the log, in log order, once all `count` of them are visible.
///
/// On PostgreSQL a committed event stays invisible to the gap-free read while an older
/// transaction anywhere on the server is still open, so the tests wait for it.
pub(crate) async fn all_events<S: EventStore>(store: &S, count: usize) -> Vec<RecordedEvent> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let events = store
            .read_all(LogPosition::START, 100_000, EventFilter::All)
            .await
            .expect("read the log");
        if events.len() >= count {
            assert_eq!(events.len(), count, "no more events than appended");
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {count} events became visible",
            events.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `publish_available` until the checkpoint reaches `last` (events may become visible a
/// little after their commit, see [`all_events`]); returns the events and duplicates published.
pub(crate) async fn publish_until<S: CheckpointStore>(
    publisher: &JetStreamPublisher<S>,
    last: LogPosition,
) -> (usize, usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut events, mut duplicates) = (0, 0);
    loop {
        let published = publisher.publish_available().await.expect("publish");
        events += published.events;
        duplicates += published.duplicates;
        if published.checkpoint == last {
            return (events, duplicates);
        }
        assert!(
            Instant::now() < deadline,
            "the checkpoint did not reach {last} (it is at {})",
            published.checkpoint
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every message on JetStream stream `name`, in stream order.
pub(crate) async fn messages(
    jetstream: &jetstream::Context,
    name: &str,
) -> Vec<jetstream::message::StreamMessage> {
    let mut stream = jetstream.get_stream(name).await.expect("stream exists");
    let state = stream.info().await.expect("stream info").state.clone();
    let mut messages = Vec::new();
    if state.messages == 0 {
        return messages;
    }
    for sequence in state.first_sequence..=state.last_sequence {
        messages.push(stream.get_raw_message(sequence).await.expect("message"));
    }
    assert_eq!(messages.len() as u64, state.messages, "no message deleted");
    messages
}

/// How many messages stream `name` holds, or `None` when the server does not answer.
pub(crate) async fn message_count(jetstream: &jetstream::Context, name: &str) -> Option<u64> {
    let mut stream = jetstream.get_stream(name).await.ok()?;
    Some(stream.info().await.ok()?.state.messages)
}

/// Asserts that the stream holds each of `events` exactly once, and nothing else, returning
/// how many times each message id occurs.
pub(crate) async fn assert_each_event_once(
    jetstream: &jetstream::Context,
    stream: &str,
    events: &[RecordedEvent],
) {
    let messages = messages(jetstream, stream).await;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for message in &messages {
        let id = message
            .headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .expect("every message has an id")
            .to_string();
        *seen.entry(id).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = events.iter().map(|e| (e.id.to_string(), 1)).collect();
    assert_eq!(seen, expected, "each event exactly once, nothing else");
    assert_eq!(messages.len(), events.len());
}

/// Waits until `check` holds, failing the test after `timeout`.
pub(crate) async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A NATS server of this test's own, on a free port with JetStream in a temporary directory,
/// so stopping it disturbs no other test. Killed and its directory removed on drop.
pub(crate) struct PrivateNats {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl PrivateNats {
    /// Starts a server and waits until it accepts connections.
    pub(crate) async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("es-nats-test-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = Self {
            child: None,
            port,
            dir,
        };
        server.restart().await;
        server
    }

    /// `127.0.0.1:{port}`.
    pub(crate) fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the server again (same port, same store directory) and waits until it accepts
    /// connections.
    pub(crate) async fn restart(&mut self) {
        assert!(self.child.is_none(), "the server is already running");
        let child = Command::new(nats_server_binary())
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let address = self.address();
        eventually(
            "the private NATS server to listen",
            Duration::from_secs(10),
            || {
                let address = address.clone();
                async move { tokio::net::TcpStream::connect(address).await.is_ok() }
            },
        )
        .await;
    }

    /// Stops the server the way an orderly restart does (SIGTERM) and waits for it to exit.
    pub(crate) async fn stop(&mut self) {
        let mut child = self.child.take().expect("the server is running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not exit on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The `nats-server` program: `$NATS_SERVER`, else the first on `PATH`, else where Debian's
/// package puts it (`/usr/sbin`, which a user's `PATH` may lack).
fn nats_server_binary() -> std::path::PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return path.into();
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/bin".into()])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no nats-server found on PATH, in /usr/sbin or /usr/local/bin: install it \
                 (Debian: apt-get install nats-server) or name it in NATS_SERVER"
            )
        })
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
