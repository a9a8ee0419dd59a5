//! The server SIGKILLed under 200 concurrent requests, then restarted: every answered request
//! is in the orders, and the `order_summary` projection catches up to the same state. Plus a
//! small load run in which no request gets a 5xx.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use support::{Api, Database, Server};

const ORDERS: usize = 20;
const REQUESTS: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_every_answered_request_on_sqlite() {
    let (database, _dir) = Database::sqlite();
    killed_mid_way(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_every_answered_request_on_postgres() {
    let (database, _schema) = Database::postgres();
    killed_mid_way(&database).await;
}

async fn killed_mid_way(database: &Database) {
    let mut server = Server::start(database).await;
    let api = Api::new(&server.base);
    let mut orders = Vec::new();
    for n in 0..ORDERS {
        orders.push(api.place(&format!("customer-{}", n % 3)).await);
    }

    // 200 concurrent AddItem requests, each a distinct SKU; the server dies part-way through.
    let answered = Arc::new(AtomicUsize::new(0));
    let requests: Vec<_> = (0..REQUESTS)
        .map(|n| {
            let api = api.clone();
            let order = orders[n % ORDERS].clone();
            let answered = Arc::clone(&answered);
            tokio::spawn(async move {
                let body = format!(r#"{{"sku":"sku-{n}","quantity":1,"unit_price_cents":{n}}}"#);
                let outcome = api
                    .try_send("POST", &format!("/orders/{order}/items"), Some(&body), &[])
                    .await;
                answered.fetch_add(1, Ordering::SeqCst);
                match outcome {
                    Ok(answer) => {
                        assert!(
                            answer.status == 200 || answer.status == 503,
                            "request {n}: {answer:?}"
                        );
                        (n, order, answer.status == 200)
                    }
                    Err(_) => (n, order, false),
                }
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered.load(Ordering::SeqCst) < REQUESTS / 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    server.kill();
    let mut acknowledged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut acked = 0;
    for request in requests {
        let (n, order, ok) = request.await.unwrap();
        if ok {
            acked += 1;
            acknowledged
                .entry(order)
                .or_default()
                .push(format!("sku-{n}"));
        }
    }
    assert!(acked > 0, "some requests were answered before the kill");
    assert!(
        acked < REQUESTS,
        "the kill came before every request was answered"
    );

    server.restart().await;
    let api = Api::new(&server.base);
    let mut states = BTreeMap::new();
    for order in &orders {
        let answer = api.get(&format!("/orders/{order}")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let skus: Vec<&str> = answer.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["sku"].as_str().unwrap())
            .collect();
        for sku in acknowledged.get(order).into_iter().flatten() {
            assert!(
                skus.contains(&sku.as_str()),
                "acknowledged {sku} missing from order {order}"
            );
        }
        let version = answer.body["version"].as_u64().unwrap();
        assert_eq!(
            version,
            1 + skus.len() as u64,
            "each stored line is one event after the placement"
        );
        states.insert(
            order.clone(),
            (
                version,
                answer.body["item_count"].clone(),
                answer.body["total_cents"].clone(),
            ),
        );
    }

    // The projection, killed mid-batch as well, catches up to exactly the orders' state.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rows = api.get("/orders?limit=1000").await.body;
        let summary: BTreeMap<String, _> = rows
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                (
                    row["id"].as_str().unwrap().to_owned(),
                    (
                        row["version"].as_u64().unwrap(),
                        row["item_count"].clone(),
                        row["total_cents"].clone(),
                    ),
                )
            })
            .collect();
        if summary == states {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "order_summary never matched the orders:\n{summary:?}\n{states:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_load_run_gets_no_server_errors() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let started = Instant::now();
    // 16 clients, 10 orders each, six requests per order: 960 requests, bounded in time too.
    let clients: Vec<_> = (0..16)
        .map(|client| {
            let api = api.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                for n in 0..10 {
                    if started.elapsed() > Duration::from_secs(60) {
                        break;
                    }
                    let id = api.place(&format!("load-{client}")).await;
                    for sku in ["a", "b", "c"] {
                        let body = format!(
                            r#"{{"sku":"{sku}","quantity":{},"unit_price_cents":100}}"#,
                            n + 1
                        );
                        answers.push(api.post(&format!("/orders/{id}/items"), &body).await.status);
                    }
                    let total = 3 * (n + 1) * 100;
                    answers.push(
                        api.post(
                            &format!("/orders/{id}/pay"),
                            &format!(r#"{{"amount_cents":{total}}}"#),
                        )
                        .await
                        .status,
                    );
                    answers.push(api.post(&format!("/orders/{id}/ship"), "").await.status);
                    answers.push(api.get(&format!("/orders/{id}")).await.status);
                }
                answers
            })
        })
        .collect();
    let mut count = 0;
    for client in clients {
        for status in client.await.unwrap() {
            assert_eq!(status, 200, "every request of the load run succeeds");
            count += 1;
        }
    }
    assert!(count > 0);
}
