//! The real binary, driven over HTTP on SQLite and on PostgreSQL: every route, every error code,
//! and that a refused request changes nothing stored.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Api, Database, Server, assert_error};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_error_code_on_sqlite() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    every_route_and_error_code(&Api::new(&server.base)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_and_error_code_on_postgres() {
    let (database, _schema) = Database::postgres();
    let server = Server::start(&database).await;
    every_route_and_error_code(&Api::new(&server.base)).await;
}

/// Waits until `GET /orders?{query}` returns `expected` rows (the projection is asynchronous).
async fn wait_for_summary(api: &Api, query: &str, expected: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = api.get(&format!("/orders?{query}")).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        if &answer.body == expected {
            return answer.body;
        }
        assert!(
            Instant::now() < deadline,
            "order_summary never reached {expected}; last: {}",
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[allow(clippy::too_many_lines)] // one walk through the whole API reads best in one place
async fn every_route_and_error_code(api: &Api) {
    // POST /orders: 201, Location, version 1.
    let placed = api.post("/orders", r#"{"customer_id": "c1"}"#).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let id = placed.body["id"].as_str().unwrap().to_owned();
    assert_eq!(placed.body["version"], 1);
    assert_eq!(placed.body["status"], "placed");
    assert_eq!(placed.headers["location"], format!("/orders/{id}").as_str());
    assert_eq!(placed.headers["etag"], "\"1\"");
    let orders = format!("/orders/{id}");

    // Items in and out.
    let added = api
        .post(
            &format!("{orders}/items"),
            r#"{"sku": "apple", "quantity": 3, "unit_price_cents": 40}"#,
        )
        .await;
    assert_eq!(added.status, 200, "{added:?}");
    assert_eq!(added.body["version"], 2);
    assert_eq!(added.body["total_cents"], 120);
    let added = api
        .post(
            &format!("{orders}/items"),
            r#"{"sku": "pear", "quantity": 1, "unit_price_cents": 90}"#,
        )
        .await;
    assert_eq!(added.body["version"], 3);
    let removed = api
        .send("DELETE", &format!("{orders}/items/pear"), None, &[])
        .await;
    assert_eq!(removed.status, 200, "{removed:?}");
    assert_eq!(removed.body["version"], 4);
    assert_eq!(
        removed.body["items"],
        json!([{"sku": "apple", "quantity": 3, "amount_cents": 120}])
    );

    // 400: malformed JSON, wrong field types, missing fields, bad headers and queries.
    for body in [
        "{",
        "not json",
        r#"{"sku": "x", "quantity": -1, "unit_price_cents": 1}"#,
        r#"{"sku": "x", "quantity": "two", "unit_price_cents": 1}"#,
        r#"{"sku": "x", "quantity": 1}"#,
        r#"{"sku": "x", "quantity": 1, "unit_price_cents": 18446744073709551616}"#,
        "[]",
        "",
    ] {
        let answer = api.post(&format!("{orders}/items"), body).await;
        assert_error(&answer, 400, "invalid_json");
    }
    assert_error(
        &api.post("/orders", r#"{"customer_id": 7}"#).await,
        400,
        "invalid_json",
    );
    assert_error(
        &api.send(
            "POST",
            &format!("{orders}/items"),
            Some(r#"{"sku": "x", "quantity": 1, "unit_price_cents": 1}"#),
            &[("if-match", "yesterday")],
        )
        .await,
        400,
        "invalid_if_match",
    );
    assert_error(
        &api.get(&format!("{orders}?at_version=minus")).await,
        400,
        "invalid_query",
    );
    assert_error(&api.get("/orders?status=lost").await, 400, "invalid_query");

    // 404: unknown orders (well-formed or not), unknown versions, unknown routes.
    let unknown = "01890000-0000-7000-8000-000000000000";
    assert_error(
        &api.get(&format!("/orders/{unknown}")).await,
        404,
        "order_not_found",
    );
    assert_error(&api.get("/orders/not-a-uuid").await, 404, "order_not_found");
    assert_error(
        &api.post(&format!("/orders/{unknown}/pay"), r#"{"amount_cents": 1}"#)
            .await,
        404,
        "order_not_found",
    );
    assert_error(
        &api.get(&format!("/orders/{unknown}/events")).await,
        404,
        "order_not_found",
    );
    assert_error(
        &api.get(&format!("{orders}?at_version=99")).await,
        404,
        "version_not_found",
    );
    assert_error(&api.get("/nowhere").await, 404, "route_not_found");

    // 405 and 413.
    assert_error(
        &api.send("PUT", &orders, Some("{}"), &[]).await,
        405,
        "method_not_allowed",
    );
    let huge = format!(r#"{{"customer_id": "{}"}}"#, "x".repeat(100_000));
    assert_error(
        &api.fresh().post("/orders", &huge).await,
        413,
        "body_too_large",
    );

    // 422: rules the domain refuses, and invalid fields.
    assert_error(
        &api.post(&format!("{orders}/pay"), r#"{"amount_cents": 1}"#)
            .await,
        422,
        "wrong_amount",
    );
    assert_error(
        &api.post(
            &format!("{orders}/items"),
            r#"{"sku": "x", "quantity": 0, "unit_price_cents": 1}"#,
        )
        .await,
        422,
        "zero_quantity",
    );
    assert_error(
        &api.send("DELETE", &format!("{orders}/items/durian"), None, &[])
            .await,
        422,
        "unknown_sku",
    );
    assert_error(
        &api.post(&format!("{orders}/ship"), "").await,
        422,
        "not_paid",
    );
    assert_error(
        &api.post("/orders", r#"{"customer_id": "nul\u0000byte"}"#)
            .await,
        422,
        "invalid_field",
    );
    assert_error(
        &api.post("/orders", r#"{"customer_id": ""}"#).await,
        422,
        "invalid_field",
    );

    // 409: a stale If-Match, with the current version; a matching one passes.
    let stale = api
        .send(
            "POST",
            &format!("{orders}/items"),
            Some(r#"{"sku": "fig", "quantity": 1, "unit_price_cents": 5}"#),
            &[("if-match", "\"2\"")],
        )
        .await;
    assert_error(&stale, 409, "version_conflict");
    assert_eq!(stale.body["error"]["current_version"], 4);

    // Nothing refused above changed the order.
    let order = api.get(&orders).await;
    assert_eq!(order.status, 200);
    assert_eq!(order.body["version"], 4, "{order:?}");
    assert_eq!(order.body["total_cents"], 120);

    let fresh = api
        .send(
            "POST",
            &format!("{orders}/pay"),
            Some(r#"{"amount_cents": 120}"#),
            &[("if-match", "4")],
        )
        .await;
    assert_eq!(fresh.status, 200, "{fresh:?}");
    assert_eq!(fresh.body["status"], "paid");

    // The shipping process manager creates the order's shipment, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let shipment = loop {
        let answer = api.get(&format!("{orders}/shipment")).await;
        if answer.status == 200 {
            break answer;
        }
        assert_error(&answer, 404, "shipment_not_found");
        assert!(Instant::now() < deadline, "no shipment was created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        shipment.body,
        json!({"order_id": id, "amount_cents": 120, "version": 1})
    );

    // 422 after payment; then ship, and nothing more.
    assert_error(
        &api.post(
            &format!("{orders}/items"),
            r#"{"sku": "x", "quantity": 1, "unit_price_cents": 1}"#,
        )
        .await,
        422,
        "already_paid",
    );
    let shipped = api.post(&format!("{orders}/ship"), "").await;
    assert_eq!(shipped.status, 200, "{shipped:?}");
    assert_eq!(shipped.body["version"], 6);
    assert_error(
        &api.post(&format!("{orders}/cancel"), r#"{"reason": "late"}"#)
            .await,
        422,
        "already_shipped",
    );

    // Time travel and the stream with metadata.
    let then = api.get(&format!("{orders}?at_version=3")).await;
    assert_eq!(then.status, 200);
    assert_eq!(then.body["version"], 3);
    assert_eq!(then.body["total_cents"], 210);
    let events = api.get(&format!("{orders}/events")).await;
    assert_eq!(events.status, 200);
    let types: Vec<&str> = events
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "order_placed",
            "item_added",
            "item_added",
            "item_removed",
            "order_paid",
            "order_shipped"
        ]
    );
    assert!(
        events.body[0]["metadata"]["correlation_id"].is_string(),
        "{events:?}"
    );

    // The correlation id a client sends is echoed and stored.
    let correlation = "01890000-1111-7000-8000-000000000000";
    let other = api
        .send(
            "POST",
            "/orders",
            Some(r#"{"customer_id": "c2"}"#),
            &[("x-correlation-id", correlation)],
        )
        .await;
    assert_eq!(other.headers["x-correlation-id"], correlation);
    let other_id = other.body["id"].as_str().unwrap().to_owned();
    let other_events = api.get(&format!("/orders/{other_id}/events")).await;
    assert_eq!(
        other_events.body[0]["metadata"]["correlation_id"],
        correlation
    );

    // Cancel the second order.
    let cancelled = api
        .post(
            &format!("/orders/{other_id}/cancel"),
            r#"{"reason": "changed my mind"}"#,
        )
        .await;
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert_error(
        &api.post(
            &format!("/orders/{other_id}/items"),
            r#"{"sku": "x", "quantity": 1, "unit_price_cents": 1}"#,
        )
        .await,
        422,
        "order_cancelled",
    );

    // Idempotency-Key: a retried POST appends once and answers as the first time.
    let key = [("idempotency-key", "retry-me-1")];
    let first = api
        .send("POST", "/orders", Some(r#"{"customer_id": "c3"}"#), &key)
        .await;
    let again = api
        .send("POST", "/orders", Some(r#"{"customer_id": "c3"}"#), &key)
        .await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.body, again.body);
    let third = first.body["id"].as_str().unwrap().to_owned();
    let add = r#"{"sku": "kiwi", "quantity": 2, "unit_price_cents": 10}"#;
    let key = [("idempotency-key", "add-kiwi")];
    let first = api
        .send("POST", &format!("/orders/{third}/items"), Some(add), &key)
        .await;
    let again = api
        .send("POST", &format!("/orders/{third}/items"), Some(add), &key)
        .await;
    assert_eq!(first.body, again.body);
    assert_eq!(
        api.get(&format!("/orders/{third}")).await.body["version"],
        2
    );
    assert_eq!(
        api.get(&format!("/orders/{third}/events"))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The order_summary projection catches up.
    wait_for_summary(
        api,
        "status=shipped&customer_id=c1",
        &json!([{
            "id": id, "customer_id": "c1", "status": "shipped",
            "item_count": 3, "total_cents": 120, "version": 6
        }]),
    )
    .await;
    wait_for_summary(
        api,
        "customer_id=c2",
        &json!([{
            "id": other_id, "customer_id": "c2", "status": "cancelled",
            "item_count": 0, "total_cents": 0, "version": 2
        }]),
    )
    .await;
    assert_eq!(api.get("/orders?status=paid").await.body, json!([]));

    // Health: the store answers and the projection has no error.
    let health = api.get("/health").await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["status"], "ok", "{health:?}");
    assert_eq!(health.body["store"]["reachable"], true);
    assert_eq!(health.body["projections"][0]["name"], "order_summary");

    // Every answer above, errors included, is one the OpenAPI document describes.
    let checked = api.assert_all_documented().await;
    assert!(checked > 50, "only {checked} answers were checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_product_catalogue_over_http() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let listed = api
        .post(
            "/products",
            r#"{"sku": "apple 1", "name": "Apple", "unit_price_cents": 40, "stock": 1}"#,
        )
        .await;
    assert_eq!(listed.status, 201, "{listed:?}");
    assert_eq!(listed.headers["location"], "/products/apple%201");
    assert_eq!(listed.body["stock"], 1);
    assert_error(
        &api.post(
            "/products",
            r#"{"sku": "apple 1", "name": "Apple", "unit_price_cents": 40, "stock": 1}"#,
        )
        .await,
        422,
        "already_listed",
    );
    assert_error(&api.get("/products/pear").await, 404, "product_not_found");
    assert_error(
        &api.post("/products/pear/restock", r#"{"quantity": 1}"#)
            .await,
        404,
        "product_not_found",
    );
    assert_error(
        &api.post("/products/apple%201/restock", r#"{"quantity": -1}"#)
            .await,
        400,
        "invalid_json",
    );

    // Two clerks reserve the last unit at once: one gets it, the other is refused.
    let (first, second) = tokio::join!(
        api.post("/products/apple%201/reserve", r#"{"quantity": 1}"#),
        api.post("/products/apple%201/reserve", r#"{"quantity": 1}"#),
    );
    let mut statuses = [first.status, second.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 422], "{first:?} {second:?}");
    let loser = if first.status == 422 { &first } else { &second };
    assert_error(loser, 422, "insufficient_stock");

    let restocked = api
        .post("/products/apple%201/restock", r#"{"quantity": 5}"#)
        .await;
    assert_eq!(restocked.body["stock"], 5, "{restocked:?}");
    let repriced = api
        .post("/products/apple%201/price", r#"{"unit_price_cents": 45}"#)
        .await;
    assert_eq!(repriced.body["unit_price_cents"], 45);
    let product = api.get("/products/apple%201").await;
    assert_eq!(product.status, 200);
    assert_eq!(product.body["version"], 4);
    assert_eq!(product.body["stock"], 5);
    api.assert_all_documented().await;
}

/// `/openapi.json` is an OpenAPI 3.1 document of every route the service serves, and
/// `order-service openapi` prints the same document without a store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let served = api.get("/openapi.json").await;
    assert_eq!(served.status, 200);
    assert_eq!(served.headers["content-type"], "application/json");
    let document = served.body;
    assert_eq!(document["openapi"], "3.1.0");
    let routes = [
        ("post", "/orders"),
        ("get", "/orders"),
        ("get", "/orders/{id}"),
        ("post", "/orders/{id}/items"),
        ("delete", "/orders/{id}/items/{sku}"),
        ("post", "/orders/{id}/pay"),
        ("post", "/orders/{id}/ship"),
        ("post", "/orders/{id}/cancel"),
        ("get", "/orders/{id}/events"),
        ("get", "/orders/{id}/shipment"),
        ("post", "/products"),
        ("get", "/products/{sku}"),
        ("post", "/products/{sku}/restock"),
        ("post", "/products/{sku}/reserve"),
        ("post", "/products/{sku}/price"),
        ("get", "/health"),
        ("get", "/openapi.json"),
    ];
    let mut documented = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            assert!(
                routes.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not a route of this test's list"
            );
            documented += 1;
        }
    }
    assert_eq!(documented, routes.len(), "a route is not documented");
    for (method, path) in routes {
        let operation = &document["paths"][path][method];
        let responses = operation["responses"].as_object().unwrap();
        // Every route can fail inside or lose its database.
        for status in ["500", "503"] {
            assert!(
                responses.contains_key(status),
                "{method} {path}: no {status}"
            );
        }
        // A body can be too large or too slow.
        if operation.get("requestBody").is_some() {
            for status in ["400", "408", "413", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path}: no {status}"
                );
            }
        }
        // Commands document the headers they read.
        let headers: Vec<&str> = operation["parameters"]
            .as_array()
            .map(|parameters| {
                parameters
                    .iter()
                    .filter(|parameter| parameter["in"] == "header")
                    .filter_map(|parameter| parameter["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert!(headers.contains(&"X-Correlation-Id"), "{method} {path}");
        if method != "get" {
            assert!(headers.contains(&"Idempotency-Key"), "{method} {path}");
        }
        if method != "get" && !matches!(path, "/orders" | "/products") {
            assert!(headers.contains(&"If-Match"), "{method} {path}");
        }
    }
    // Every error code the service and its domain use is in the enum.
    let codes: Vec<&str> = document["components"]["schemas"]["ErrorCode"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    for code in order_service::http::error_codes() {
        assert!(codes.contains(&code), "{code}");
    }
    for code in [
        "version_conflict",
        "wrong_amount",
        "insufficient_stock",
        "overloaded",
    ] {
        assert!(codes.contains(&code), "{code}");
    }

    // Every reference names something the document holds.
    fn references<'a>(value: &'a serde_json::Value, found: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(reference) = map.get("$ref").and_then(serde_json::Value::as_str) {
                    found.push(reference);
                }
                map.values().for_each(|value| references(value, found));
            }
            serde_json::Value::Array(items) => {
                items.iter().for_each(|value| references(value, found))
            }
            _ => {}
        }
    }
    let mut found = Vec::new();
    references(&document, &mut found);
    assert!(found.len() > 20, "{found:?}");
    for reference in found {
        let pointer = reference.strip_prefix('#').unwrap();
        assert!(
            document.pointer(pointer).is_some(),
            "{reference} names nothing"
        );
    }

    let (ok, printed) = server.tool(&["openapi"]);
    assert!(ok, "{printed}");
    let printed: serde_json::Value = serde_json::from_str(&printed).unwrap();
    assert_eq!(
        printed, document,
        "the printed document differs from the served one"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_and_the_next_start_sees_everything() {
    let (database, _dir) = Database::sqlite();
    let mut server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let id = api.place("c1").await;
    let status = server.terminate();
    assert!(status.success(), "a clean exit on SIGTERM: {status:?}");

    // The tools, on the stopped server's file.
    let (ok, out) = server.tool(&["rebuild", "order_summary"]);
    assert!(ok, "{out}");
    assert!(out.contains("rebuilt order_summary from 1 events"), "{out}");
    let (ok, out) = server.tool(&["events", &id]);
    assert!(ok && out.contains("order_placed"), "{out}");
    let (ok, out) = server.tool(&["stats"]);
    assert!(ok && out.contains("events:   1"), "{out}");
    assert!(out.contains("0 events"), "{out}");
    let (ok, out) = server.tool(&["rebuild", "shipping"]);
    assert!(ok, "{out}");
    let (ok, _) = server.tool(&["rebuild", "nope"]);
    assert!(!ok, "an unknown projection fails");
    server.restart().await;
    let api = Api::new(&server.base);
    let order = api.get(&format!("/orders/{id}")).await;
    assert_eq!(order.body["version"], 1);
    wait_for_summary(
        &api,
        "customer_id=c1",
        &json!([{
            "id": id, "customer_id": "c1", "status": "placed",
            "item_count": 0, "total_cents": 0, "version": 1
        }]),
    )
    .await;
}
