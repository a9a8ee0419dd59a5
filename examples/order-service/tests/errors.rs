//! Error answers never carry the service's or the database's own words: a failure of the service
//! is a `500` whose body names only the request's correlation id (the cause is logged under it).
//! A stored event that no longer decodes is such a failure.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod support;

use support::{Api, Database, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_names_the_correlation_id_and_nothing_internal() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let id = api.place("c1").await;

    // An event of the order's stream rewritten behind the service's back: it no longer decodes.
    let Database::Sqlite(path) = &database else {
        unreachable!("the database is an SQLite file");
    };
    let mut file = <sqlx::SqliteConnection as sqlx::Connection>::connect(&format!(
        "sqlite://{}",
        path.display()
    ))
    .await
    .unwrap();
    sqlx::query("UPDATE events SET payload = '{\"customer_id\": 42}' WHERE stream_id = ?1")
        .bind(format!("order-{id}"))
        .execute(&mut file)
        .await
        .unwrap();

    let correlation = "0193a9a0-0000-7000-8000-000000000001";
    let answer = api
        .send(
            "GET",
            &format!("/orders/{id}"),
            None,
            &[("x-correlation-id", correlation)],
        )
        .await;
    assert_eq!(answer.status, 500, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], "internal");
    assert_eq!(answer.body["error"]["correlation_id"], correlation);
    assert_eq!(answer.headers["x-correlation-id"], correlation);
    let text = answer.body.to_string();
    for internal in ["decode", "invalid type", "customer_id", "order-", "sqlite"] {
        assert!(
            !text.contains(internal),
            "the answer leaks `{internal}`: {text}"
        );
    }
}
