//! The order service's router on arbitrary requests: a method, a path and a body taken from
//! the input, sent in-process to a service on an SQLite file. No request may get a 5xx (the
//! database is local and up) or panic.
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use libfuzzer_sys::fuzz_target;
use order_service::backend::{AnyBackend, OpenOptions};
use tower::ServiceExt as _;

const METHODS: &[Method] = &[Method::GET, Method::POST, Method::DELETE, Method::PUT];
const PATHS: &[&str] = &[
    "/orders",
    "/orders/{order}",
    "/orders/{order}/items",
    "/orders/{order}/items/",
    "/orders/{order}/pay",
    "/orders/{order}/ship",
    "/orders/{order}/cancel",
    "/orders/{order}/events",
    "/orders/{order}/shipment",
    "/orders?",
    "/products",
    "/products/",
    "/health",
    "/",
];

struct Service {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    order: String,
}

fn service() -> &'static Service {
    static SERVICE: OnceLock<Service> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = std::env::temp_dir().join(format!("es-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary folder");
        let options = OpenOptions {
            database_url: format!("sqlite://{}", dir.join("orders.db").display()),
            ..OpenOptions::default()
        };
        let (router, order) = runtime.block_on(async {
            let backend = AnyBackend::open(options).await.expect("the service opens");
            let AnyBackend::Sqlite(backend) = backend else {
                unreachable!("an SQLite URL")
            };
            let router = order_service::http::router(backend);
            let placed = router
                .clone()
                .oneshot(
                    Request::post("/orders")
                        .body(Body::from(r#"{"customer_id": "fuzz"}"#))
                        .expect("a request"),
                )
                .await
                .expect("an answer");
            let body = axum::body::to_bytes(placed.into_body(), 1 << 20)
                .await
                .expect("a body");
            let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            (router, value["id"].as_str().expect("an id").to_owned())
        });
        Service {
            runtime,
            router,
            order,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let [method, path, suffix_len, rest @ ..] = data else {
        return;
    };
    let service = service();
    let method = METHODS[usize::from(*method) % METHODS.len()].clone();
    let suffix_len = usize::from(*suffix_len).min(rest.len());
    let (suffix, body) = rest.split_at(suffix_len);
    // The suffix goes into the URI percent-encoded, so any bytes make a valid request line.
    let mut uri = PATHS[usize::from(*path) % PATHS.len()].replace("{order}", &service.order);
    for byte in suffix {
        if byte.is_ascii_alphanumeric() || b"-_.~=&".contains(byte) {
            uri.push(char::from(*byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    let Ok(request) = Request::builder()
        .method(method)
        .uri(&uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_vec()))
    else {
        return;
    };
    let status = service.runtime.block_on(async {
        service
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
            .status()
    });
    assert!(!status.is_server_error(), "{uri} answered {status}");
});
