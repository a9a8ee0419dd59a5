//! Many clients on one order, without `If-Match`, on SQLite and on PostgreSQL: the service's
//! commands on one stream take turns, so it never conflicts with itself. For 20 s, 64 clients
//! add items to one order: every request must succeed (no 409, no 5xx), and the order must
//! hold exactly the units the successful requests added. With `If-Match` a stale version is
//! still refused at once with 409.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use support::{Api, Database, Server};

const CLIENTS: usize = 64;
const RUN: Duration = Duration::from_secs(20);

async fn hot_order(database: &Database, kind: &str) {
    let server = Server::start(database).await;
    let api = Api::new(&server.base);
    let id = api.place("hot").await;
    let items = format!("/orders/{id}/items");
    let until = Instant::now() + RUN;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (api, items) = (api.fresh(), items.clone());
            tokio::spawn(async move {
                let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
                let body = format!(
                    r#"{{"sku":"sku-{}","quantity":1,"unit_price_cents":5}}"#,
                    client % 8
                );
                while Instant::now() < until {
                    let answer = api.post(&items, &body).await;
                    *statuses.entry(answer.status).or_default() += 1;
                }
                statuses
            })
        })
        .collect();
    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    for task in tasks {
        for (status, count) in task.await.unwrap() {
            *statuses.entry(status).or_default() += count;
        }
    }
    let added = statuses.get(&200).copied().unwrap_or(0);
    println!(
        "RELIABILITY {CLIENTS} clients on one order for {} s without If-Match ({kind}): {added} items added, statuses {statuses:?}, failures: {}",
        RUN.as_secs(),
        statuses
            .iter()
            .filter(|(status, _)| **status != 200)
            .map(|(_, n)| n)
            .sum::<u64>()
    );
    assert_eq!(
        statuses.keys().copied().collect::<Vec<_>>(),
        [200],
        "every request should succeed: {statuses:?}"
    );
    let order = api.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["item_count"], added, "{:?}", order.body);
    assert_eq!(order.body["version"], added + 1);

    // A caller that pins a version it saw is still told at once that it is stale.
    let stale = api
        .send(
            "POST",
            &items,
            Some(r#"{"sku":"late","quantity":1,"unit_price_cents":5}"#),
            &[("if-match", "1")],
        )
        .await;
    support::assert_error(&stale, 409, "version_conflict");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_on_one_order_on_sqlite_never_conflict() {
    let (database, _dir) = Database::sqlite();
    hot_order(&database, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_clients_on_one_order_on_postgres_never_conflict() {
    let (database, _guard) = Database::postgres();
    hot_order(&database, "postgres").await;
}
