//! The HTTP API: JSON in and out, every error as `{"error": {"code", "message"}}`.
//!
//! | route | does |
//! | --- | --- |
//! | `POST /orders` `{"customer_id"}` | places an order: 201, `Location`, `{"id", "version": 1, ...}` |
//! | `POST /orders/{id}/items` `{"sku", "quantity", "unit_price_cents"}` | adds an item |
//! | `DELETE /orders/{id}/items/{sku}` | removes an item |
//! | `POST /orders/{id}/pay` `{"amount_cents"}` | pays the exact total |
//! | `POST /orders/{id}/ship`, `POST /orders/{id}/cancel` `{"reason"}` | ships, cancels |
//! | `GET /orders/{id}[?at_version=N]` | the order from its events (read-your-writes) |
//! | `GET /orders?status=&customer_id=&limit=&after=` | rows of the `order_summary` projection, by order id; `limit` 1 to 1,000 (100), `after` the last id of the page before; a `Link: <...>; rel="next"` header when there are more |
//! | `GET /orders/{id}/events` | the stream, with metadata |
//! | `GET /orders/{id}/shipment` | the shipment the `shipping` process manager created once the order was paid |
//! | `GET /health` | store and projection status |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of this API ([`document`]) |
//! | `POST /products` `{"sku", "name", "unit_price_cents", "stock"}` | lists a product: 201 |
//! | `GET /products/{sku}` | the product with its stock and `version` |
//! | `POST /products/{sku}/restock`, `.../reserve` `{"quantity"}` | adds or takes stock |
//! | `POST /products/{sku}/price` `{"unit_price_cents"}` | changes the price |
//!
//! Status codes: 400 malformed JSON, wrong field types or bad headers; 404 unknown order or
//! route; 405 wrong method; 409 version conflict (with `current_version`); 413 body over the
//! limit; 422 a rule the domain refuses or an invalid field; 503 the database is unreachable.
//! A refused request changes nothing stored.
//!
//! `If-Match: <version>` pins the version a command expects; without it, commands on one order
//! queue in the service and conflicts with other processes are retried by the command path.
//! `Idempotency-Key: <key>` makes a retried POST or DELETE append once and answer as the first
//! time (a refusal too); the command id is derived from the key alone, so the same key with
//! another body, route, order or product is `422 idempotency_key_reused`. `X-Correlation-Id` (a
//! UUID; one is made up when absent) is logged and stored in the events' metadata, and echoed in
//! the response.

mod command;
mod correlation;
mod error;
mod extract;
mod health;
mod openapi;
mod orders;
mod products;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use uuid::Uuid;

use correlation::correlate;
pub use error::error_codes;
use error::{method_not_allowed, unknown_route};
use health::health;
pub use openapi::document;
use openapi::openapi_json;
use orders::{
    add_item, cancel, get_order, list_orders, order_events, order_shipment, pay, place_order,
    remove_item, ship,
};
use products::{change_price, get_product, list_product, reserve, restock};

use crate::backend::Backend;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 16 * 1024;
/// The longest customer id, SKU or product name, in bytes of UTF-8: a SKU is part of its
/// product's stream id, which the stores limit in bytes (128 emoji are 512 bytes).
pub const MAX_NAME_BYTES: usize = 128;
/// The longest cancellation reason, in characters.
pub const MAX_REASON_CHARS: usize = 1000;
/// Rows `GET /orders` returns when no `limit` is given, and the most it returns.
pub const LIST_LIMITS: (u32, u32) = (100, 1000);

/// Fixed namespace for ids derived from idempotency keys, so a retried request maps to the same
/// order and command ids.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6f72_6465_7273_2d69_646d_706f_7465_6e74);

/// The router for `backend`.
pub fn router<B: Backend>(backend: B) -> Router {
    Router::new()
        .route("/orders", post(place_order::<B>).get(list_orders::<B>))
        .route("/orders/{id}", get(get_order::<B>))
        .route("/orders/{id}/items", post(add_item::<B>))
        .route("/orders/{id}/items/{sku}", delete(remove_item::<B>))
        .route("/orders/{id}/pay", post(pay::<B>))
        .route("/orders/{id}/ship", post(ship::<B>))
        .route("/orders/{id}/cancel", post(cancel::<B>))
        .route("/orders/{id}/events", get(order_events::<B>))
        .route("/orders/{id}/shipment", get(order_shipment::<B>))
        .route("/products", post(list_product::<B>))
        .route("/products/{sku}", get(get_product::<B>))
        .route("/products/{sku}/restock", post(restock::<B>))
        .route("/products/{sku}/reserve", post(reserve::<B>))
        .route("/products/{sku}/price", post(change_price::<B>))
        .route("/health", get(health::<B>))
        .route("/openapi.json", get(openapi_json))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(correlate))
        .with_state(backend)
}
