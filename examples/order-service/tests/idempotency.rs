//! `Idempotency-Key` answers only the request it was made for, on every route that takes one:
//! the same request again gets the first answer and appends nothing; the same key with another
//! body, on another route, or on another order or product is refused with
//! `422 idempotency_key_reused` and changes nothing; a refused request sent again with its key
//! is refused again the same way, and its key cannot be spent on another body. Also under 32
//! concurrent clients sending one key with two bodies, on SQLite and on PostgreSQL.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod support;

use serde_json::Value;
use support::{Api, Database, Server, assert_error};

fn key(name: &str) -> [(&'static str, &str); 1] {
    [("idempotency-key", name)]
}

async fn version_of(api: &Api, path: &str) -> Value {
    api.get(path).await.body["version"].clone()
}

/// `method path body` with `key` succeeds; the same again gets the same answer; each of
/// `others` (another method, path or body under the same key) is refused as a reused key;
/// the resource at `resource` is left at the version the first request gave it.
async fn bound_to_its_request(
    api: &Api,
    (method, path, body): (&str, &str, Option<&str>),
    key_name: &str,
    others: &[(&str, &str, Option<&str>)],
    resource: &str,
) {
    let first = api.send(method, path, body, &key(key_name)).await;
    assert!(
        (200..300).contains(&first.status),
        "{method} {path}: {first:?}"
    );
    let version = version_of(api, resource).await;
    let again = api.send(method, path, body, &key(key_name)).await;
    assert_eq!(
        (again.status, &again.body),
        (first.status, &first.body),
        "{method} {path} sent again with its key"
    );
    for (other_method, other_path, other_body) in others {
        let reused = api
            .send(other_method, other_path, *other_body, &key(key_name))
            .await;
        assert_error(&reused, 422, "idempotency_key_reused");
    }
    assert_eq!(
        version_of(api, resource).await,
        version,
        "{method} {path}: a refused reuse of its key changed {resource}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_binds_its_key_to_its_request() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);

    // POST /orders: the order id comes from the key; another customer under it is refused.
    let placed = api
        .send(
            "POST",
            "/orders",
            Some(r#"{"customer_id":"c1"}"#),
            &key("place"),
        )
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let id = placed.body["id"].as_str().unwrap().to_owned();
    let order = format!("/orders/{id}");
    bound_to_its_request(
        &api,
        ("POST", "/orders", Some(r#"{"customer_id":"c1"}"#)),
        "place",
        &[("POST", "/orders", Some(r#"{"customer_id":"c2"}"#))],
        &order,
    )
    .await;
    let other = api.place("c9").await;
    let other_items = format!("/orders/{other}/items");

    let items = format!("{order}/items");
    let apple = r#"{"sku":"apple","quantity":2,"unit_price_cents":10}"#;
    bound_to_its_request(
        &api,
        ("POST", &items, Some(apple)),
        "add",
        &[
            (
                "POST",
                &items,
                Some(r#"{"sku":"apple","quantity":3,"unit_price_cents":10}"#),
            ),
            ("POST", &other_items, Some(apple)),
            ("POST", &format!("{order}/ship"), None),
        ],
        &order,
    )
    .await;
    api.post(
        &items,
        r#"{"sku":"pear","quantity":1,"unit_price_cents":5}"#,
    )
    .await;
    bound_to_its_request(
        &api,
        ("DELETE", &format!("{items}/pear"), None),
        "remove",
        &[("DELETE", &format!("{items}/apple"), None)],
        &order,
    )
    .await;

    // A refusal is an answer too: the same request is refused again, another body is refused
    // as a reused key, and nothing is appended either way.
    let pay = format!("{order}/pay");
    let wrong = api
        .send("POST", &pay, Some(r#"{"amount_cents":11}"#), &key("pay"))
        .await;
    assert_error(&wrong, 422, "wrong_amount");
    let version = version_of(&api, &order).await;
    assert_error(
        &api.send("POST", &pay, Some(r#"{"amount_cents":20}"#), &key("pay"))
            .await,
        422,
        "idempotency_key_reused",
    );
    let again = api
        .send("POST", &pay, Some(r#"{"amount_cents":11}"#), &key("pay"))
        .await;
    assert_error(&again, 422, "wrong_amount");
    assert_eq!(again.body, wrong.body);
    assert_eq!(version_of(&api, &order).await, version);

    bound_to_its_request(
        &api,
        ("POST", &pay, Some(r#"{"amount_cents":20}"#)),
        "pay-right",
        &[("POST", &pay, Some(r#"{"amount_cents":21}"#))],
        &order,
    )
    .await;
    bound_to_its_request(
        &api,
        ("POST", &format!("{order}/ship"), None),
        "ship",
        &[(
            "POST",
            &format!("{order}/cancel"),
            Some(r#"{"reason":"x"}"#),
        )],
        &order,
    )
    .await;
    bound_to_its_request(
        &api,
        (
            "POST",
            &format!("/orders/{other}/cancel"),
            Some(r#"{"reason":"late"}"#),
        ),
        "cancel",
        &[(
            "POST",
            &format!("/orders/{other}/cancel"),
            Some(r#"{"reason":"early"}"#),
        )],
        &format!("/orders/{other}"),
    )
    .await;

    // Products.
    let kiwi = r#"{"sku":"kiwi","name":"Kiwi","unit_price_cents":30,"stock":5}"#;
    bound_to_its_request(
        &api,
        ("POST", "/products", Some(kiwi)),
        "list",
        &[(
            "POST",
            "/products",
            Some(r#"{"sku":"kiwi","name":"Kiwi","unit_price_cents":31,"stock":5}"#),
        )],
        "/products/kiwi",
    )
    .await;
    api.post(
        "/products",
        r#"{"sku":"fig","name":"Fig","unit_price_cents":30,"stock":5}"#,
    )
    .await;
    for (route, name, body, other_body) in [
        (
            "restock",
            "restock",
            r#"{"quantity":2}"#,
            r#"{"quantity":3}"#,
        ),
        (
            "reserve",
            "reserve",
            r#"{"quantity":1}"#,
            r#"{"quantity":2}"#,
        ),
        (
            "price",
            "price",
            r#"{"unit_price_cents":35}"#,
            r#"{"unit_price_cents":36}"#,
        ),
    ] {
        let path = format!("/products/kiwi/{route}");
        bound_to_its_request(
            &api,
            ("POST", &path, Some(body)),
            name,
            &[
                ("POST", &path, Some(other_body)),
                ("POST", &format!("/products/fig/{route}"), Some(body)),
            ],
            "/products/kiwi",
        )
        .await;
    }
}

/// 32 clients send one key at once, half of them with one body and half with another: one
/// body is appended once; its senders all get its answer, the others `422`.
async fn one_key_two_bodies(database: &Database) {
    let server = Server::start(database).await;
    let api = Api::new(&server.base);
    let id = api.place("c1").await;
    let items = format!("/orders/{id}/items");
    let tasks: Vec<_> = (0..32)
        .map(|n| {
            let (api, items) = (api.fresh(), items.clone());
            tokio::spawn(async move {
                let body = if n % 2 == 0 {
                    r#"{"sku":"even","quantity":1,"unit_price_cents":10}"#
                } else {
                    r#"{"sku":"odd","quantity":1,"unit_price_cents":10}"#
                };
                let answer = api.send("POST", &items, Some(body), &key("shared")).await;
                (n % 2, answer)
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let winners: Vec<_> = answers.iter().filter(|(_, a)| a.status == 200).collect();
    let winning_side = winners.first().expect("one body was appended").0;
    for (side, answer) in &answers {
        if *side == winning_side {
            assert_eq!(answer.status, 200, "{answer:?}");
            assert_eq!(answer.body, winners[0].1.body);
        } else {
            assert_error(answer, 422, "idempotency_key_reused");
        }
    }
    let order = api.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["version"], 2, "{:?}", order.body);
    assert_eq!(order.body["item_count"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_with_two_bodies_from_many_clients_on_sqlite() {
    let (database, _dir) = Database::sqlite();
    one_key_two_bodies(&database).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_key_with_two_bodies_from_many_clients_on_postgres() {
    let (database, _guard) = Database::postgres();
    one_key_two_bodies(&database).await;
}
