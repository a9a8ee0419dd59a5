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

/// An order has one URL: its id in canonical form. Upper case, braces, `urn:uuid:` or no
/// hyphens name no order, as the API's docs say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_canonical_id_names_an_order() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let id = api.place("c1").await;
    assert_eq!(api.get(&format!("/orders/{id}")).await.status, 200);
    for other in [
        id.to_uppercase(),
        format!("%7B{id}%7D"),
        format!("urn:uuid:{id}"),
        id.replace('-', ""),
    ] {
        let answer = api.get(&format!("/orders/{other}")).await;
        support::assert_error(&answer, 404, "order_not_found");
    }
}

/// `GET /orders` pages by order id: `limit` rows, a `Link` to the next page while there is
/// one, and following the links visits every row once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_list_pages_with_next_links() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let mut ids = Vec::new();
    for n in 0..7 {
        ids.push(api.place(&format!("pager {}", n % 2)).await);
    }
    ids.sort();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while api
        .get("/orders?limit=1000")
        .await
        .body
        .as_array()
        .map(Vec::len)
        != Some(7)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the read model never caught up"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let mut seen = Vec::new();
    let mut next = Some("/orders?limit=3".to_owned());
    let mut pages = 0;
    while let Some(path) = next.take() {
        let page = api.get(&path).await;
        assert_eq!(page.status, 200, "{page:?}");
        let rows = page.body.as_array().unwrap();
        assert!(rows.len() <= 3);
        seen.extend(
            rows.iter()
                .map(|row| row["id"].as_str().unwrap().to_owned()),
        );
        next = page.headers.get("link").map(|link| {
            let link = link.to_str().unwrap();
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            link.trim_start_matches('<')
                .split('>')
                .next()
                .unwrap()
                .to_owned()
        });
        pages += 1;
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    // Filters carry over to the next page.
    let first = api.get("/orders?limit=2&customer_id=pager%201").await;
    let link = first.headers["link"].to_str().unwrap().to_owned();
    assert!(link.contains("customer_id=pager%201"), "{link}");
}
