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

use std::fmt;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use es_core::{
    BackendErrorKind, CommandError, EventStore as _, Executed, ExpectedVersion, LoadError,
    StreamId, StreamVersion,
};
use futures_util::TryStreamExt as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::backend::{Backend, SummaryFilter};
use crate::domain::{
    AddItem, CancelOrder, Order, OrderError, OrderStatus, PayOrder, PlaceOrder, RemoveItem,
    ShipOrder,
};
use crate::product::{ChangePrice, ListProduct, Product, ProductError, ReserveStock, Restock};
use crate::shipment::Shipment;

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
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(correlate))
        .with_state(backend)
}

// ---------------------------------------------------------------------------------------------
// Errors

/// An error answer: status, stable code, message, and extra fields for the error object.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    current_version: Option<u64>,
    /// What went wrong inside, for the log only (server-side failures).
    cause: Option<String>,
}

/// Rides on a server-side error answer (5xx) to the correlation middleware, which logs the
/// cause with the request's correlation id and adds that id to the answer's body, so a caller
/// can quote it and an operator find the log line. The body never carries the cause.
#[derive(Clone, Debug)]
struct Logged {
    cause: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl fmt::Display) -> Self {
        Self {
            status,
            code,
            message: message.to_string(),
            current_version: None,
            cause: None,
        }
    }

    fn with_cause(mut self, cause: &(dyn std::error::Error + 'static)) -> Self {
        self.cause = Some(chain(cause));
        self
    }

    fn bad_request(code: &'static str, message: impl fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn invalid_field(message: impl fmt::Display) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }

    fn order_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "order_not_found",
            format!("no order `{id}`"),
        )
    }

    /// A failure of the service itself: the cause is logged (with the request's correlation
    /// id, from its span), the answer only says where to look.
    fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed; the cause is logged under this answer's correlation_id",
        )
        .with_cause(error)
    }

    fn from_load(error: &LoadError) -> Self {
        match error {
            LoadError::Backend(backend) => Self::from_backend(backend.kind(), error),
            LoadError::InvalidStreamId(_) => Self::bad_request("invalid_id", chain(error)),
            _ => Self::internal(error),
        }
    }

    /// The one place a store failure becomes an answer: unreachable or cut off (the store
    /// crates' classification, SQLSTATE 08xxx and 57xxx on PostgreSQL) is 503, a value the
    /// store refuses 422, anything else 500. The database's own words stay in the log.
    fn from_backend(kind: BackendErrorKind, error: &(dyn std::error::Error + 'static)) -> Self {
        match kind {
            BackendErrorKind::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; try again shortly",
            )
            .with_cause(error),
            BackendErrorKind::InvalidInput => {
                tracing::info!(error = %chain(error), "the store refused a value");
                Self::invalid_field("a field holds a value the store cannot keep")
            }
            _ => Self::internal(error),
        }
    }

    fn product_not_found(sku: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "product_not_found",
            format!("no product `{sku}`"),
        )
    }

    fn from_command<A: Resource>(id: &str, error: &CommandError<A::Error>) -> Self {
        match error {
            CommandError::Rejected(refusal) if A::refuses_as_absent(refusal) => A::not_found(id),
            CommandError::Rejected(refusal) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                A::refusal_code(refusal),
                refusal,
            ),
            CommandError::Conflict { actual, .. } => Self {
                current_version: Some(actual.get()),
                ..Self::new(
                    StatusCode::CONFLICT,
                    "version_conflict",
                    format!("{} `{id}` is at version {actual}", A::NAME),
                )
            },
            CommandError::NotFound { .. } | CommandError::InvalidId { .. } => A::not_found(id),
            CommandError::CommandIdReused { .. } | CommandError::FingerprintMismatch { .. } => {
                Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for another request",
                )
            }
            CommandError::ReplayDiverged { .. } => Self::new(
                StatusCode::CONFLICT,
                "idempotency_replay_diverged",
                "this Idempotency-Key's first request was refused, and the refusal cannot be reproduced",
            ),
            CommandError::Encode { source, .. } => Self::invalid_field(source),
            CommandError::Load { source, .. } => Self::from_load(source),
            CommandError::Append {
                source: es_core::AppendError::Backend(backend),
                ..
            } => Self::from_backend(backend.kind(), error),
            _ => Self::internal(error),
        }
    }
}

/// An error and its sources, joined with `: `, for messages and logs.
#[must_use]
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(version) = self.current_version {
            error["current_version"] = json!(version);
        }
        let mut response = (self.status, Json(json!({ "error": error }))).into_response();
        if let Some(version) = self.current_version {
            response.headers_mut().insert(header::ETAG, etag(version));
        }
        if self.status.is_server_error() {
            response
                .extensions_mut()
                .insert(Logged { cause: self.cause });
        }
        // The request's body was not read whole: the connection cannot carry another request.
        if matches!(
            self.status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::PAYLOAD_TOO_LARGE
        ) {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

async fn unknown_route(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// Extractors

/// A JSON body, whatever its content type; every failure is a JSON error (400, or 413 over
/// [`BODY_LIMIT`]).
struct JsonBody<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the body exceeds {BODY_LIMIT} bytes"),
            )
        };
        // Refused for its announced size at once, without waiting for bytes it may never send.
        let announced = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        if announced.is_some_and(|length| length > BODY_LIMIT as u64) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else if caused_by::<crate::server::BodyTimedOut>(&rejection) {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "body_timeout",
                        "the request body did not arrive in time",
                    )
                } else {
                    ApiError::bad_request("unreadable_body", rejection.body_text())
                }
            })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|error| ApiError::bad_request("invalid_json", error))
    }
}

/// Whether `error` or one of its sources is an `E`.
fn caused_by<E: std::error::Error + 'static>(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

fn path<T>(extracted: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    extracted
        .map(|Path(value)| value)
        .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
}

fn query<T>(extracted: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    extracted
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
}

/// An order id from the path: a UUID in its canonical form, lower-case and hyphenated, as the
/// service writes it. Anything else (upper case, braces, `urn:uuid:`, no hyphens) names no
/// order: one order has one URL.
fn order_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw)
        .ok()
        .filter(|id| id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == raw)
        .ok_or_else(|| ApiError::order_not_found(raw))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    headers
        .get(name)
        .map(|value| {
            value.to_str().map_err(|_| {
                ApiError::bad_request("invalid_header", format!("{name} is not visible ASCII"))
            })
        })
        .transpose()
}

/// `If-Match: 3` or `"3"` (the `ETag` the service sends): the version the command expects;
/// `*`: any existing version. Nothing else: a weak tag (`W/"3"`) never matches for a change,
/// and `+3` or `""3""` is not a version.
fn if_match(headers: &HeaderMap) -> ApiResult<Option<IfMatch>> {
    let Some(value) = header_text(headers, "if-match")? else {
        return Ok(None);
    };
    let value = value.trim();
    if value == "*" {
        return Ok(Some(IfMatch::Exists));
    }
    let bare = value
        .strip_prefix('"')
        .and_then(|quoted| quoted.strip_suffix('"'))
        .unwrap_or(value);
    let digits = !bare.is_empty() && bare.bytes().all(|byte| byte.is_ascii_digit());
    digits
        .then(|| bare.parse::<u64>().ok())
        .flatten()
        .map(|version| Some(IfMatch::Version(StreamVersion(version))))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_if_match",
                format!("If-Match must be a version number, `N` or `\"N\"`, not `{value}`"),
            )
        })
}

enum IfMatch {
    Exists,
    Version(StreamVersion),
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
    let Some(key) = header_text(headers, "idempotency-key")? else {
        return Ok(None);
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key))
}

fn derived_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, parts.join("\n").as_bytes())
}

/// A short name field: 1 to [`MAX_NAME_BYTES`] bytes of UTF-8, no control characters.
fn check_name(field: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(format!(
            "`{field}` must be 1 to {MAX_NAME_BYTES} bytes of UTF-8 without control characters"
        )));
    }
    Ok(())
}

fn check_reason(value: &str) -> ApiResult<()> {
    let chars = value.chars().count();
    let bad_control = value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t');
    if chars > MAX_REASON_CHARS || bad_control {
        return Err(ApiError::invalid_field(format!(
            "`reason` must be at most {MAX_REASON_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Correlation ids and request logs

/// The request's correlation id, stored in its events' metadata.
#[derive(Clone, Copy, Debug)]
struct CorrelationId(Uuid);

async fn correlate(mut request: Request, next: Next) -> Response {
    let correlation = request
        .headers()
        .get("x-correlation-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| Uuid::parse_str(value.trim()).ok())
        .unwrap_or_else(Uuid::now_v7);
    request.extensions_mut().insert(CorrelationId(correlation));
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        correlation_id = %correlation,
    );
    let started = Instant::now();
    let mut response = tracing::Instrument::instrument(next.run(request), span.clone()).await;
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "answered"
        );
    });
    if let Some(Logged { cause }) = response.extensions_mut().remove::<Logged>() {
        let cause = cause.as_deref().unwrap_or("(none given)");
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(%correlation, cause, "answered 503: the database is unavailable");
        } else {
            tracing::error!(%correlation, cause, status = response.status().as_u16(), "request failed");
        }
        response = with_correlation_id(response, correlation).await;
    }
    if let Ok(value) = HeaderValue::from_str(&correlation.to_string()) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
}

/// A logged error's answer with `correlation_id` added to its error object.
async fn with_correlation_id(response: Response, correlation: Uuid) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, BODY_LIMIT).await else {
        return Response::from_parts(parts, axum::body::Body::empty());
    };
    let mut json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if let Some(error) = json
        .get_mut("error")
        .and_then(serde_json::Value::as_object_mut)
    {
        error.insert("correlation_id".to_owned(), json!(correlation));
    }
    let body = serde_json::to_vec(&json).unwrap_or_default();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

// ---------------------------------------------------------------------------------------------
// Views

/// An order as the API shows it.
#[derive(Debug, Serialize)]
struct OrderView {
    id: String,
    version: u64,
    customer_id: String,
    status: OrderStatus,
    items: Vec<LineView>,
    item_count: u64,
    total_cents: u64,
}

#[derive(Debug, Serialize)]
struct LineView {
    sku: String,
    quantity: u64,
    amount_cents: u64,
}

impl OrderView {
    fn new(id: &str, version: StreamVersion, order: &Order) -> Self {
        Self {
            id: id.to_owned(),
            version: version.get(),
            customer_id: order.customer_id.clone(),
            status: order.status,
            items: order
                .lines
                .iter()
                .map(|(sku, line)| LineView {
                    sku: sku.clone(),
                    quantity: line.quantity,
                    amount_cents: line.amount_cents,
                })
                .collect(),
            item_count: order.units(),
            total_cents: order.total_cents(),
        }
    }
}

fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `body` as JSON with the aggregate's `version` as its `ETag`.
fn versioned(status: StatusCode, version: StreamVersion, body: impl Serialize) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(version.get()));
    response
}

// ---------------------------------------------------------------------------------------------
// Commands

/// An aggregate the API exposes: its refusals' codes, its "not found" answer and its view. Its
/// commands are `Serialize`: an `Idempotency-Key` is bound to the command it came with by the
/// command's fingerprint.
trait Resource: es_core::Aggregate<Command: Serialize> {
    /// What the API answers with.
    type View: Serialize;

    fn refusal_code(refusal: &Self::Error) -> &'static str;

    /// Whether the refusal says the aggregate does not exist (never placed or listed): `404`,
    /// whatever `If-Match` said.
    fn refuses_as_absent(refusal: &Self::Error) -> bool;

    fn not_found(id: &str) -> ApiError;

    fn view(id: &str, version: StreamVersion, state: &Self) -> Self::View;
}

impl Resource for Order {
    type View = OrderView;

    fn refusal_code(refusal: &OrderError) -> &'static str {
        refusal.code()
    }

    fn refuses_as_absent(refusal: &OrderError) -> bool {
        matches!(refusal, OrderError::NotPlaced)
    }

    fn not_found(id: &str) -> ApiError {
        ApiError::order_not_found(id)
    }

    fn view(id: &str, version: StreamVersion, state: &Self) -> OrderView {
        OrderView::new(id, version, state)
    }
}

impl Resource for Product {
    type View = ProductView;

    fn refusal_code(refusal: &ProductError) -> &'static str {
        refusal.code()
    }

    fn refuses_as_absent(refusal: &ProductError) -> bool {
        matches!(refusal, ProductError::NotListed)
    }

    fn not_found(id: &str) -> ApiError {
        ApiError::product_not_found(id)
    }

    fn view(id: &str, version: StreamVersion, state: &Self) -> ProductView {
        ProductView::new(id, version, state)
    }
}

/// Runs a command on an existing aggregate and answers 200 with its view.
async fn update<B: Backend, A: Resource, C>(
    backend: &B,
    id: &str,
    command: C,
    headers: &HeaderMap,
    correlation: CorrelationId,
) -> ApiResult<Response>
where
    C: Into<A::Command> + Clone + Send + 'static,
{
    let executed = run::<B, A, C>(backend, id, command, headers, correlation, false).await?;
    Ok(versioned(
        StatusCode::OK,
        executed.version,
        A::view(id, executed.version, &executed.state),
    ))
}

/// Runs `command` on aggregate `id` with the request's options; only a creating command may
/// start a new stream.
async fn run<B: Backend, A: Resource, C>(
    backend: &B,
    id: &str,
    command: C,
    headers: &HeaderMap,
    correlation: CorrelationId,
    creates: bool,
) -> ApiResult<Executed<A>>
where
    C: Into<A::Command> + Clone + Send + 'static,
{
    let id_text = id.to_owned();
    let mut execute = backend
        .app()
        .execute::<A>(id, command)
        .correlation_id(correlation.0);
    if creates {
        execute = execute.expected_version(ExpectedVersion::NoStream);
    } else {
        execute = execute.existing();
        match if_match(headers)? {
            Some(IfMatch::Version(version)) => {
                execute = execute.expected_version(ExpectedVersion::Exact(version));
            }
            Some(IfMatch::Exists) | None => {}
        }
    }
    // The command id comes from the key alone: the same key on another route, order or
    // product is the key reused, which the command path refuses, as it refuses the same key
    // with another body.
    if let Some(key) = idempotency_key(headers)? {
        execute = execute.command_id(derived_id(&[key]));
    }
    execute
        .await
        .map_err(|error| ApiError::from_command::<A>(&id_text, &error))
}

#[derive(Deserialize)]
struct PlaceBody {
    customer_id: String,
}

async fn place_order<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PlaceBody>,
) -> ApiResult<Response> {
    check_name("customer_id", &body.customer_id)?;
    // With an idempotency key the order id is derived from it, so a retry finds the order the
    // first request created instead of placing a second one.
    let id = match idempotency_key(&headers)? {
        Some(key) => derived_id(&["place order", key]),
        None => Uuid::now_v7(),
    };
    let command = PlaceOrder {
        customer_id: body.customer_id,
    };
    let executed = run::<B, Order, _>(
        &backend,
        &id.to_string(),
        command,
        &headers,
        correlation,
        true,
    )
    .await?;
    let id = id.to_string();
    let mut response = versioned(
        StatusCode::CREATED,
        executed.version,
        OrderView::new(&id, executed.version, &executed.state),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/orders/{id}")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

#[derive(Deserialize)]
struct AddItemBody {
    sku: String,
    quantity: u32,
    unit_price_cents: u64,
}

async fn add_item<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<AddItemBody>,
) -> ApiResult<Response> {
    let id = order_id(&path(raw_id)?)?;
    check_name("sku", &body.sku)?;
    let command = AddItem {
        sku: body.sku,
        quantity: body.quantity,
        unit_price_cents: body.unit_price_cents,
    };
    update::<B, Order, _>(&backend, &id.to_string(), command, &headers, correlation).await
}

async fn remove_item<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (raw_id, sku) = path(raw)?;
    let id = order_id(&raw_id)?;
    check_name("sku", &sku)?;
    update::<B, Order, _>(
        &backend,
        &id.to_string(),
        RemoveItem { sku },
        &headers,
        correlation,
    )
    .await
}

#[derive(Deserialize)]
struct PayBody {
    amount_cents: u64,
}

async fn pay<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PayBody>,
) -> ApiResult<Response> {
    let id = order_id(&path(raw_id)?)?;
    let command = PayOrder {
        amount_cents: body.amount_cents,
    };
    update::<B, Order, _>(&backend, &id.to_string(), command, &headers, correlation).await
}

async fn ship<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = order_id(&path(raw_id)?)?;
    update::<B, Order, _>(&backend, &id.to_string(), ShipOrder, &headers, correlation).await
}

#[derive(Deserialize)]
struct CancelBody {
    reason: String,
}

async fn cancel<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<CancelBody>,
) -> ApiResult<Response> {
    let id = order_id(&path(raw_id)?)?;
    check_reason(&body.reason)?;
    let command = CancelOrder {
        reason: body.reason,
    };
    update::<B, Order, _>(&backend, &id.to_string(), command, &headers, correlation).await
}

// ---------------------------------------------------------------------------------------------
// Products

#[derive(Debug, Serialize)]
struct ProductView {
    sku: String,
    version: u64,
    name: String,
    unit_price_cents: u64,
    stock: u64,
}

impl ProductView {
    fn new(sku: &str, version: StreamVersion, product: &Product) -> Self {
        Self {
            sku: sku.to_owned(),
            version: version.get(),
            name: product.name.clone(),
            unit_price_cents: product.unit_price_cents,
            stock: product.stock,
        }
    }
}

#[derive(Deserialize)]
struct ListProductBody {
    sku: String,
    name: String,
    unit_price_cents: u64,
    stock: u64,
}

async fn list_product<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<ListProductBody>,
) -> ApiResult<Response> {
    check_name("sku", &body.sku)?;
    check_name("name", &body.name)?;
    let command = ListProduct {
        name: body.name,
        unit_price_cents: body.unit_price_cents,
        stock: body.stock,
    };
    let executed = run::<B, Product, _>(&backend, &body.sku, command, &headers, correlation, true)
        .await
        .map_err(|error| {
            // Listing an existing SKU is refused by the domain, not a conflict on "no stream".
            if error.code == "version_conflict" {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    ProductError::AlreadyListed.code(),
                    ProductError::AlreadyListed,
                )
            } else {
                error
            }
        })?;
    let mut response = versioned(
        StatusCode::CREATED,
        executed.version,
        ProductView::new(&body.sku, executed.version, &executed.state),
    );
    if let Ok(location) = HeaderValue::from_str(&format!("/products/{}", percent_encode(&body.sku)))
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    Ok(response)
}

/// Percent-encodes everything but unreserved characters, for a path segment or a query value.
fn percent_encode(segment: &str) -> String {
    let mut encoded = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

async fn get_product<B: Backend>(
    State(backend): State<B>,
    raw_sku: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let sku = path(raw_sku)?;
    check_name("sku", &sku).map_err(|_| ApiError::product_not_found(&sku))?;
    let loaded = backend
        .app()
        .load::<Product>(&sku)
        .await
        .map_err(|error| ApiError::from_load(&error))?;
    if loaded.version == StreamVersion::INITIAL {
        return Err(ApiError::product_not_found(&sku));
    }
    Ok(versioned(
        StatusCode::OK,
        loaded.version,
        ProductView::new(&sku, loaded.version, &loaded.state),
    ))
}

#[derive(Deserialize)]
struct QuantityBody {
    quantity: u64,
}

async fn restock<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_sku: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<QuantityBody>,
) -> ApiResult<Response> {
    let sku = path(raw_sku)?;
    check_name("sku", &sku).map_err(|_| ApiError::product_not_found(&sku))?;
    let command = Restock {
        quantity: body.quantity,
    };
    update::<B, Product, _>(&backend, &sku, command, &headers, correlation).await
}

async fn reserve<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_sku: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<QuantityBody>,
) -> ApiResult<Response> {
    let sku = path(raw_sku)?;
    check_name("sku", &sku).map_err(|_| ApiError::product_not_found(&sku))?;
    let command = ReserveStock {
        quantity: body.quantity,
    };
    update::<B, Product, _>(&backend, &sku, command, &headers, correlation).await
}

#[derive(Deserialize)]
struct PriceBody {
    unit_price_cents: u64,
}

async fn change_price<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_sku: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PriceBody>,
) -> ApiResult<Response> {
    let sku = path(raw_sku)?;
    check_name("sku", &sku).map_err(|_| ApiError::product_not_found(&sku))?;
    let command = ChangePrice {
        unit_price_cents: body.unit_price_cents,
    };
    update::<B, Product, _>(&backend, &sku, command, &headers, correlation).await
}

// ---------------------------------------------------------------------------------------------
// Queries

#[derive(Deserialize)]
struct AtVersion {
    at_version: Option<u64>,
}

async fn get_order<B: Backend>(
    State(backend): State<B>,
    raw_id: Result<Path<String>, PathRejection>,
    at: Result<Query<AtVersion>, QueryRejection>,
) -> ApiResult<Response> {
    let raw_id = path(raw_id)?;
    let id = order_id(&raw_id)?;
    let at = query(at)?.at_version;
    let loaded = match at {
        Some(version) => {
            backend
                .app()
                .load_at::<Order>(id, StreamVersion(version))
                .await
        }
        None => backend.app().load::<Order>(id).await,
    }
    .map_err(|error| ApiError::from_load(&error))?;
    if loaded.version == StreamVersion::INITIAL {
        return Err(ApiError::order_not_found(&raw_id));
    }
    if let Some(version) = at
        && loaded.version.get() != version
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "version_not_found",
            format!(
                "order `{id}` has no version {version} (its version is {})",
                loaded.version
            ),
        ));
    }
    Ok(versioned(
        StatusCode::OK,
        loaded.version,
        OrderView::new(&id.to_string(), loaded.version, &loaded.state),
    ))
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    customer_id: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

async fn list_orders<B: Backend>(
    State(backend): State<B>,
    raw: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let raw = query(raw)?;
    let status = match raw.status.as_deref() {
        None | Some("") => None,
        Some("placed") => Some(OrderStatus::Placed),
        Some("paid") => Some(OrderStatus::Paid),
        Some("shipped") => Some(OrderStatus::Shipped),
        Some("cancelled") => Some(OrderStatus::Cancelled),
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("status must be placed, paid, shipped or cancelled, not `{other}`"),
            ));
        }
    };
    let (default_limit, max_limit) = LIST_LIMITS;
    let limit = raw.limit.unwrap_or(default_limit).clamp(1, max_limit);
    let customer_id = raw.customer_id.filter(|customer| !customer.is_empty());
    // One row more than the page: whether there is a next page, without a count.
    let filter = SummaryFilter {
        status,
        customer_id: customer_id.clone(),
        limit: limit + 1,
        after: raw.after.filter(|after| !after.is_empty()),
    };
    let mut rows = backend
        .summaries(filter)
        .await
        .map_err(|error| ApiError::from_backend(B::error_kind(&error), &error))?;
    let next = (rows.len() > limit as usize).then(|| {
        rows.truncate(limit as usize);
        let mut query = vec![format!("limit={limit}")];
        if let Some(status) = status {
            query.push(format!("status={}", status.as_str()));
        }
        if let Some(customer) = &customer_id {
            query.push(format!("customer_id={}", percent_encode(customer)));
        }
        if let Some(last) = rows.last() {
            query.push(format!("after={}", percent_encode(&last.id)));
        }
        format!("</orders?{}>; rel=\"next\"", query.join("&"))
    });
    let mut response = Json(rows).into_response();
    if let Some(link) = next.and_then(|next| HeaderValue::from_str(&next).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// One stored event as `GET /orders/{id}/events` shows it.
#[derive(Serialize)]
struct EventView {
    event_id: String,
    version: u64,
    position: u64,
    #[serde(rename = "type")]
    event_type: String,
    schema_version: u32,
    data: Box<serde_json::value::RawValue>,
    metadata: es_core::Metadata,
    #[serde(with = "time::serde::rfc3339")]
    recorded_at: time::OffsetDateTime,
}

async fn order_events<B: Backend>(
    State(backend): State<B>,
    raw_id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let raw_id = path(raw_id)?;
    let id = order_id(&raw_id)?;
    let stream_id = StreamId::for_aggregate(<Order as es_core::Aggregate>::NAME, id)
        .map_err(|_| ApiError::order_not_found(&raw_id))?;
    let events: Vec<EventView> = backend
        .app()
        .store()
        .load(&stream_id, StreamVersion::INITIAL)
        .map_ok(|event| EventView {
            event_id: event.id.to_string(),
            version: event.stream_version.get(),
            position: event.position.get(),
            event_type: event.event_type,
            schema_version: event.schema_version,
            data: event.payload,
            metadata: event.metadata,
            recorded_at: event.recorded_at,
        })
        .try_collect()
        .await
        .map_err(|error| ApiError::from_load(&error))?;
    if events.is_empty() {
        return Err(ApiError::order_not_found(&raw_id));
    }
    Ok(Json(events).into_response())
}

async fn order_shipment<B: Backend>(
    State(backend): State<B>,
    raw_id: Result<Path<String>, PathRejection>,
) -> ApiResult<Response> {
    let raw_id = path(raw_id)?;
    let id = order_id(&raw_id)?;
    let loaded = backend
        .app()
        .load::<Shipment>(id)
        .await
        .map_err(|error| ApiError::from_load(&error))?;
    if loaded.version == StreamVersion::INITIAL {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "shipment_not_found",
            format!("order `{raw_id}` has no shipment (yet: it is created once the order is paid)"),
        ));
    }
    Ok(Json(json!({
        "order_id": loaded.state.order_id,
        "amount_cents": loaded.state.amount_cents,
        "version": loaded.version.get(),
    }))
    .into_response())
}

async fn health<B: Backend>(State(backend): State<B>) -> Response {
    match backend.app().projection_report().await {
        Ok(reports) => {
            let failing = reports
                .iter()
                .any(|report| report.status.last_error.is_some());
            let head = reports
                .first()
                .and_then(|report| report.head)
                .map(|head| head.position.get());
            let projections: Vec<_> = reports
                .iter()
                .map(|report| {
                    json!({
                        "name": report.status.name,
                        "checkpoint": report.checkpoint.position.get(),
                        "events_behind": report.events_behind,
                        "seconds_behind": report.seconds_behind,
                        "owner": report.owner.as_ref().map(|(owner, _)| owner),
                        "lease_held_here": report.status.lease_held,
                        "events_applied": report.status.events_applied,
                        "last_error": report.status.last_error,
                        "consecutive_failures": report.status.consecutive_failures,
                    })
                })
                .collect();
            Json(json!({
                "status": if failing { "degraded" } else { "ok" },
                "store": { "backend": backend.kind(), "reachable": true, "head": head },
                "projections": projections,
            }))
            .into_response()
        }
        Err(error) => {
            // The database's own words stay in the log.
            tracing::warn!(error = %chain(&error), "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "store": {
                        "backend": backend.kind(),
                        "reachable": false,
                        "error": "the store could not be read; the cause is logged",
                    },
                })),
            )
                .into_response()
        }
    }
}
