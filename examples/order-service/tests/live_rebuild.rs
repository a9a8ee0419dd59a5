//! Rebuilding `order_summary` while the service runs, on SQLite and on PostgreSQL: the
//! `rebuild` tool (another process) takes the projection's lease from the service's worker
//! before it clears anything, replays, and hands the projection back. Under a write load of
//! 400 orders, after a rebuild with and without `--takeover`, and after a rebuild SIGKILLed
//! half-way and run again, the read model must equal a fold of the log: every order's row
//! as `GET /orders/{id}` (its events) gives it, no row missing, none extra.
//!
//! Also: two services on one SQLite file share the projection, one running it at a time.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

mod support;

use std::io::{BufRead as _, BufReader};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Api, Database, Server};

const ORDERS: usize = 400;
const CLIENTS: usize = 8;

/// Writes `orders` orders from `CLIENTS` concurrent clients, each order placed, given two
/// items, and then paid, cancelled, trimmed or left; returns their ids. Every request must
/// succeed.
async fn write_orders(api: &Api, orders: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for n in (client..orders).step_by(CLIENTS) {
                    ids.push(write_order(&api, n).await);
                }
                ids
            })
        })
        .collect();
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await.unwrap());
    }
    ids
}

async fn write_order(api: &Api, n: usize) -> String {
    let id = api.place(&format!("c{}", n % 5)).await;
    let items = format!("/orders/{id}/items");
    for (sku, quantity) in [(n % 3, n % 4 + 1), (3 + n % 2, 2)] {
        let body = format!(r#"{{"sku":"s{sku}","quantity":{quantity},"unit_price_cents":25}}"#);
        let added = api.post(&items, &body).await;
        assert_eq!(added.status, 200, "{added:?}");
    }
    let last = match n % 4 {
        0 => {
            let order = api.get(&format!("/orders/{id}")).await;
            let total = order.body["total_cents"].as_u64().unwrap();
            api.post(
                &format!("/orders/{id}/pay"),
                &format!(r#"{{"amount_cents":{total}}}"#),
            )
            .await
        }
        1 => {
            api.post(&format!("/orders/{id}/cancel"), r#"{"reason":"late"}"#)
                .await
        }
        2 => {
            api.send("DELETE", &format!("{items}/s{}", 3 + n % 2), None, &[])
                .await
        }
        _ => return id,
    };
    assert_eq!(last.status, 200, "{last:?}");
    id
}

/// Each order's summary row as a fold of its events gives it (`GET /orders/{id}` loads the
/// order from its stream), in the read model's order.
async fn fold_of_the_log(api: &Api, ids: &[String]) -> Vec<Value> {
    let mut rows = Vec::with_capacity(ids.len());
    for id in ids {
        let order = api.get(&format!("/orders/{id}")).await;
        assert_eq!(order.status, 200, "{order:?}");
        let body = &order.body;
        rows.push(json!({
            "id": id,
            "customer_id": body["customer_id"],
            "status": body["status"],
            "item_count": body["item_count"],
            "total_cents": body["total_cents"],
            "version": body["version"],
        }));
    }
    rows.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    rows
}

/// Waits (with a deadline) until the read model holds exactly `expected`; names the first
/// difference otherwise.
async fn assert_read_model_is(api: &Api, expected: &[Value], when: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = api.get("/orders?limit=1000").await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let rows = answer.body.as_array().cloned().unwrap_or_default();
        if rows == expected {
            return;
        }
        if Instant::now() > deadline {
            let wrong = expected
                .iter()
                .find(|row| !rows.contains(row))
                .map(ToString::to_string);
            let extra = rows
                .iter()
                .find(|row| !expected.contains(row))
                .map(ToString::to_string);
            panic!(
                "{when}: the read model has {} rows, the log {} orders; first expected row missing or \
                 different: {wrong:?}; first row not in the fold: {extra:?}",
                rows.len(),
                expected.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the service's own worker runs `order_summary` again.
async fn wait_until_the_service_projects(api: &Api) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = api.get("/health").await;
        let held = health.body["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|p| p["name"] == "order_summary" && p["lease_held_here"] == true);
        if held {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the service never took order_summary back: {}",
            health.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn rebuild_next_to_a_live_service(database: &Database) {
    let server = Server::start(database).await;
    let api = Api::new(&server.base);
    let mut ids = write_orders(&api, 40).await;

    let writer = {
        let api = api.clone();
        tokio::spawn(async move { write_orders(&api, ORDERS - 40).await })
    };
    // Two rebuilds while the orders are written: one waiting for the service's worker to hand
    // the projection over, one taking it over at once.
    for args in [
        &["rebuild", "order_summary"][..],
        &["rebuild", "order_summary", "--takeover"][..],
    ] {
        // The writers go on, on the runtime's other threads, while the tool runs.
        let (ok, out, err) = tokio::task::block_in_place(|| server.tool_with_stderr(args));
        assert!(ok, "{args:?} failed: {out}\n{err}");
        assert!(out.contains("rebuilt order_summary from"), "{out}");
        println!("RELIABILITY live rebuild {args:?}: {}", out.trim());
    }
    ids.extend(writer.await.unwrap());
    assert_eq!(ids.len(), ORDERS);

    let expected = fold_of_the_log(&api, &ids).await;
    assert_read_model_is(&api, &expected, "after two rebuilds under load").await;
    wait_until_the_service_projects(&api).await;
    // The service's worker goes on where the rebuild ended.
    let more = write_orders(&api, 16).await;
    ids.extend(more);
    let expected = fold_of_the_log(&api, &ids).await;
    assert_read_model_is(&api, &expected, "after writes following the rebuilds").await;
    println!(
        "RELIABILITY rebuild next to a live service ({}): {} orders, read model equals the log's fold, failures: 0",
        kind(database),
        ids.len()
    );
}

fn kind(database: &Database) -> &'static str {
    match database {
        Database::Sqlite(_) => "sqlite",
        Database::Postgres { .. } => "postgres",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_next_to_a_live_service_on_sqlite_gives_the_fold_of_the_log() {
    let (database, _dir) = Database::sqlite();
    rebuild_next_to_a_live_service(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_next_to_a_live_service_on_postgres_gives_the_fold_of_the_log() {
    let (database, _guard) = Database::postgres();
    rebuild_next_to_a_live_service(&database).await;
}

async fn rerun_after_a_killed_rebuild(database: &Database) {
    let server = Server::start(database).await;
    let api = Api::new(&server.base);
    let ids = write_orders(&api, ORDERS).await;
    let expected = fold_of_the_log(&api, &ids).await;
    assert_read_model_is(&api, &expected, "before the rebuild").await;

    // Killed as soon as it has cleared the read model: it holds the lease and has replayed
    // nothing, or little.
    let mut tool = server.spawn_tool(&["rebuild", "order_summary"]);
    let stderr = tool.stderr.take().unwrap();
    let mut cleared = false;
    for line in BufReader::new(stderr).lines() {
        if line.unwrap().starts_with("cleared order_summary") {
            cleared = true;
            break;
        }
    }
    tool.kill().unwrap();
    let status = tool.wait().unwrap();
    assert!(cleared, "the rebuild ended before it cleared: {status:?}");

    // Run again at once: it waits for the dead rebuild's lease to run out, then rebuilds.
    let (ok, out, err) = server.tool_with_stderr(&["rebuild", "order_summary"]);
    assert!(ok, "the rerun failed: {out}\n{err}");
    assert!(out.contains("rebuilt order_summary from"), "{out}");
    assert!(
        err.contains("waiting for worker"),
        "the rerun did not say what it waited for: {err}"
    );
    assert_read_model_is(&api, &expected, "after a killed rebuild and its rerun").await;
    wait_until_the_service_projects(&api).await;
    println!(
        "RELIABILITY rebuild SIGKILLed and run again ({}): {} orders, read model equals the log's fold, failures: 0",
        kind(database),
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_killed_half_way_on_sqlite_is_completed_by_a_rerun() {
    let (database, _dir) = Database::sqlite();
    rerun_after_a_killed_rebuild(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rebuild_killed_half_way_on_postgres_is_completed_by_a_rerun() {
    let (database, _guard) = Database::postgres();
    rerun_after_a_killed_rebuild(&database).await;
}

/// How many of the services report holding `order_summary`'s lease.
async fn holders(apis: &[&Api]) -> usize {
    let mut held = 0;
    for api in apis {
        let health = api.get("/health").await;
        held += health.body["projections"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"] == "order_summary" && p["lease_held_here"] == true)
            .count();
    }
    held
}

/// Two services on one SQLite file: one runs the projection at a time (its lease is in the
/// file), the read model equals the fold of both services' writes, and when the holder dies
/// the other takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_services_on_one_sqlite_file_share_the_projection() {
    let (database, _dir) = Database::sqlite();
    let mut first = Server::start(&database).await;
    let second = Server::start(&database).await;
    let (one, two) = (Api::new(&first.base), Api::new(&second.base));
    let (mut ids, more) = tokio::join!(write_orders(&one, 60), write_orders(&two, 60));
    ids.extend(more);
    let expected = fold_of_the_log(&one, &ids).await;
    assert_read_model_is(&two, &expected, "with two services").await;
    assert_eq!(
        holders(&[&one, &two]).await,
        1,
        "not exactly one service runs order_summary"
    );

    first.kill();
    ids.extend(write_orders(&two, 30).await);
    let expected = fold_of_the_log(&two, &ids).await;
    assert_read_model_is(&two, &expected, "after the first service died").await;
    assert_eq!(holders(&[&two]).await, 1);
}
