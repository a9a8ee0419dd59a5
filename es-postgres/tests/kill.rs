//! A writer killed with SIGKILL loses nothing it acknowledged, and leaves no stream with a hole.
//!
//! The test runs its own binary again as the child (selected by `ES_KILL_CHILD_SCHEMA`), so no
//! separate program is needed.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

use es_core::EventLog;
mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Command, Stdio};

use es_core::{AppendRequest, ExpectedVersion, Metadata, NewEvent, StreamId, StreamVersion};
use futures_util::TryStreamExt as _;
use uuid::Uuid;

const CHILD_ENV: &str = "ES_KILL_CHILD_SCHEMA";

/// The child: appends forever, printing `acked <stream> <event id>...` after each commit.
#[tokio::test]
async fn child_appends_until_killed() {
    let Ok(schema) = std::env::var(CHILD_ENV) else {
        return; // Only meaningful as the child of the test below.
    };
    let store = es_postgres::PostgresStore::options()
        .schema(schema)
        .connect(&common::database_url())
        .await
        .unwrap();
    let mut stdout = std::io::stdout().lock();
    for round in 0u64.. {
        let stream = format!("account-{}", round % 7);
        let events: Vec<NewEvent> = (0..=round % 3)
            .map(|n| {
                let payload =
                    serde_json::value::to_raw_value(&serde_json::json!({"n": n})).unwrap();
                NewEvent::new("deposited", 1, payload, Metadata::new())
            })
            .collect();
        let ids: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
        let request = AppendRequest::new(
            StreamId::new(stream.clone()).unwrap(),
            ExpectedVersion::Any,
            events,
        );
        store.append(request).await.unwrap();
        writeln!(stdout, "acked {stream} {}", ids.join(" ")).unwrap();
        stdout.flush().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    if std::env::var(CHILD_ENV).is_ok() {
        return;
    }
    common::with_schemas(2, |pool, schemas| async move {
        let schema = schemas.fresh();
        let store = es_postgres::PostgresStore::options()
            .schema(schema.clone())
            .with_pool(pool.clone())
            .await
            .unwrap();
        let mut acked: BTreeMap<String, Vec<Uuid>> = BTreeMap::new();
        // Kill at different points of the child's life: 5 kills, 50 in the long mode.
        let kills: usize = if std::env::var("ES_LONG").is_ok() { 50 } else { 5 };
        let points: Vec<usize> = (0..kills).map(|n| 1 + (n * 37 + 5) % 250).collect();
        for &kill_after in &points {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "child_appends_until_killed",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(CHILD_ENV, &schema)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let stdout = BufReader::new(child.stdout.take().unwrap());
            let mut lines = 0;
            for line in stdout.lines() {
                let line = line.unwrap();
                let mut words = line.split_whitespace();
                if words.next() != Some("acked") {
                    continue;
                }
                let stream = words.next().unwrap().to_owned();
                acked
                    .entry(stream)
                    .or_default()
                    .extend(words.map(|id| id.parse::<Uuid>().unwrap()));
                lines += 1;
                if lines == kill_after {
                    break;
                }
            }
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            assert_eq!(lines, kill_after, "the child stopped before it was killed");
        }

        let mut stored_ids = HashSet::new();
        for (stream, ids) in &acked {
            let stream_id = StreamId::new(stream.clone()).unwrap();
            let events: Vec<_> = store
                .load(&stream_id, StreamVersion::INITIAL)
                .try_collect()
                .await
                .unwrap();
            let versions: Vec<u64> = events.iter().map(|e| e.stream_version.get()).collect();
            assert_eq!(
                versions,
                (1..=events.len() as u64).collect::<Vec<_>>(),
                "hole in {stream}"
            );
            let in_stream: HashSet<Uuid> = events.iter().map(|e| e.id.0).collect();
            for id in ids {
                assert!(
                    in_stream.contains(id),
                    "acknowledged event {id} of {stream} is missing"
                );
            }
            for event in &events {
                assert!(
                    stored_ids.insert(event.id),
                    "event id {} stored twice",
                    event.id
                );
            }
        }
        println!(
            "RELIABILITY writer kills survived: {kills}, acknowledged events checked: {}, failures: 0",
            acked.values().map(Vec::len).sum::<usize>()
        );
    })
    .await;
}
