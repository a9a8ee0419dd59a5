//! The order routes.

use es_core::EventLog;
use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use es_core::{StreamId, StreamVersion};
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::LIST_LIMITS;
use super::command::{Target, run, update, versioned};
use super::correlation::CorrelationId;
use super::error::{ApiError, ApiResult};
use super::extract::{
    ApiPath, ApiQuery, CommandHeaders, CreateHeaders, JsonBody, OrderPath, check_name,
    check_reason, derived_id, empty_as_none,
};
use super::openapi::{BadRequest, Conflict, NotFound, Unprocessable};
use super::products::percent_encode;
use crate::backend::{Backend, SummaryFilter, SummaryRow};
use crate::domain::{
    AddItem, CancelOrder, Order, OrderStatus, PayOrder, PlaceOrder, RemoveItem, ShipOrder,
};
use crate::shipment::Shipment;

/// An order as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct OrderView {
    /// The order id: a UUID in canonical form.
    #[schema(format = Uuid)]
    id: String,
    /// The order's version: how many events its stream holds (also its `ETag`).
    version: u64,
    /// Who placed it.
    customer_id: String,
    /// Where it is in its life.
    status: OrderStatus,
    /// One line per SKU, in SKU order.
    items: Vec<LineView>,
    /// Units over all lines.
    item_count: u64,
    /// What the order costs, in cents.
    total_cents: u64,
}

/// One SKU's units in an order.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct LineView {
    /// The SKU.
    sku: String,
    /// Units of it.
    quantity: u64,
    /// What those units cost, in cents.
    amount_cents: u64,
}

impl OrderView {
    pub(super) fn new(id: &str, version: StreamVersion, order: &Order) -> Self {
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

/// `POST /orders`.
#[derive(Deserialize, ToSchema)]
pub(super) struct PlaceBody {
    /// Who places the order: 1 to 128 bytes of UTF-8, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    customer_id: String,
}

/// Places an order. With an `Idempotency-Key` the order id is derived from the key, so a
/// retry answers with the order the first request placed.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    request_body = PlaceBody,
    params(CreateHeaders),
    responses(
        (status = 201, description = "Placed.", body = OrderView, headers(
            ("ETag" = String, description = "The order's version, quoted."),
            ("Location" = String, description = "`/orders/{id}`."),
        )),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn place_order<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    headers: CreateHeaders,
    JsonBody(body): JsonBody<PlaceBody>,
) -> ApiResult<Response> {
    check_name("customer_id", &body.customer_id)?;
    let key = headers.idempotency_key.as_deref();
    // With an idempotency key the order id is derived from it, so a retry finds the order the
    // first request created instead of placing a second one.
    let id = key.map_or_else(Uuid::now_v7, |key| derived_id(&["place order", key]));
    let command = PlaceOrder {
        customer_id: body.customer_id,
    };
    let executed = run::<B, Order, _>(
        &backend,
        &id.to_string(),
        command,
        Target::New,
        key,
        correlation,
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

/// `POST /orders/{id}/items`.
#[derive(Deserialize, ToSchema)]
pub(super) struct AddItemBody {
    /// 1 to 128 bytes of UTF-8, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    sku: String,
    /// Units to add: at least 1.
    #[schema(minimum = 1)]
    quantity: u32,
    /// The price of one unit, in cents.
    unit_price_cents: u64,
}

/// Adds units of a SKU to a placed order.
#[utoipa::path(
    post,
    path = "/orders/{id}/items",
    tag = "orders",
    request_body = AddItemBody,
    params(OrderPath, CommandHeaders),
    responses(
        (status = 200, description = "Added.", body = OrderView, headers(("ETag" = String, description = "The order's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn add_item<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    OrderPath { id }: OrderPath,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<AddItemBody>,
) -> ApiResult<Response> {
    check_name("sku", &body.sku)?;
    let command = AddItem {
        sku: body.sku,
        quantity: body.quantity,
        unit_price_cents: body.unit_price_cents,
    };
    update::<B, Order, _>(&backend, &id.to_string(), command, headers, correlation).await
}

/// The SKU of an order line in a path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct LinePath {
    /// The SKU whose line to remove, percent-encoded.
    sku: String,
}

/// Removes a SKU's line from a placed order.
#[utoipa::path(
    delete,
    path = "/orders/{id}/items/{sku}",
    tag = "orders",
    params(OrderPath, LinePath, CommandHeaders),
    responses(
        (status = 200, description = "Removed.", body = OrderView, headers(("ETag" = String, description = "The order's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]
pub(super) async fn remove_item<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    OrderPath { id }: OrderPath,
    ApiPath(LinePath { sku }): ApiPath<LinePath>,
    headers: CommandHeaders,
) -> ApiResult<Response> {
    check_name("sku", &sku)?;
    update::<B, Order, _>(
        &backend,
        &id.to_string(),
        RemoveItem { sku },
        headers,
        correlation,
    )
    .await
}

/// `POST /orders/{id}/pay`.
#[derive(Deserialize, ToSchema)]
pub(super) struct PayBody {
    /// Exactly the order's total, in cents.
    amount_cents: u64,
}

/// Pays a placed order its exact total.
#[utoipa::path(
    post,
    path = "/orders/{id}/pay",
    tag = "orders",
    request_body = PayBody,
    params(OrderPath, CommandHeaders),
    responses(
        (status = 200, description = "Paid.", body = OrderView, headers(("ETag" = String, description = "The order's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn pay<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    OrderPath { id }: OrderPath,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<PayBody>,
) -> ApiResult<Response> {
    let command = PayOrder {
        amount_cents: body.amount_cents,
    };
    update::<B, Order, _>(&backend, &id.to_string(), command, headers, correlation).await
}

/// Ships a paid order.
#[utoipa::path(
    post,
    path = "/orders/{id}/ship",
    tag = "orders",
    params(OrderPath, CommandHeaders),
    responses(
        (status = 200, description = "Shipped.", body = OrderView, headers(("ETag" = String, description = "The order's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]
pub(super) async fn ship<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    OrderPath { id }: OrderPath,
    headers: CommandHeaders,
) -> ApiResult<Response> {
    update::<B, Order, _>(&backend, &id.to_string(), ShipOrder, headers, correlation).await
}

/// `POST /orders/{id}/cancel`.
#[derive(Deserialize, ToSchema)]
pub(super) struct CancelBody {
    /// Why: at most 1,000 characters; no control characters but newline and tab.
    #[schema(max_length = 1000)]
    reason: String,
}

/// Cancels an order that is not shipped.
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    tag = "orders",
    request_body = CancelBody,
    params(OrderPath, CommandHeaders),
    responses(
        (status = 200, description = "Cancelled.", body = OrderView, headers(("ETag" = String, description = "The order's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn cancel<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    OrderPath { id }: OrderPath,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<CancelBody>,
) -> ApiResult<Response> {
    check_reason(&body.reason)?;
    let command = CancelOrder {
        reason: body.reason,
    };
    update::<B, Order, _>(&backend, &id.to_string(), command, headers, correlation).await
}

/// `GET /orders/{id}`'s query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct AtVersion {
    /// The order as it was at this version (1 is just placed); absent: as it is now.
    #[param(nullable = false)]
    at_version: Option<u64>,
}

/// An order, folded from its events: read-your-writes, whatever the read models' lag.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    params(OrderPath, AtVersion),
    responses(
        (status = 200, description = "The order.", body = OrderView, headers(("ETag" = String, description = "The order's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]

pub(super) async fn get_order<B: Backend>(
    State(backend): State<B>,
    OrderPath { id }: OrderPath,
    ApiQuery(AtVersion { at_version: at }): ApiQuery<AtVersion>,
) -> ApiResult<Response> {
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
        return Err(ApiError::order_not_found(&id.to_string()));
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

/// `GET /orders`' query.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only orders in this status (empty: any).
    #[serde(default, deserialize_with = "empty_as_none")]
    #[param(nullable = false)]
    status: Option<ListStatus>,
    /// Only this customer's orders (empty: anyone's).
    #[param(nullable = false)]
    customer_id: Option<String>,
    /// Rows per page: 100 when absent; below 1 counts as 1, above 1,000 as 1,000.
    #[param(nullable = false)]
    limit: Option<u32>,
    /// The last order id of the page before (the `next` link carries it).
    #[param(nullable = false)]
    after: Option<String>,
}

/// The statuses `GET /orders` filters by: those of an order that exists.
#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum ListStatus {
    /// Placed, not paid.
    Placed,
    /// Paid, not shipped.
    Paid,
    /// Shipped.
    Shipped,
    /// Cancelled.
    Cancelled,
}

impl From<ListStatus> for OrderStatus {
    fn from(status: ListStatus) -> Self {
        match status {
            ListStatus::Placed => Self::Placed,
            ListStatus::Paid => Self::Paid,
            ListStatus::Shipped => Self::Shipped,
            ListStatus::Cancelled => Self::Cancelled,
        }
    }
}

/// Rows of the `order_summary` projection, by order id, a page at a time: eventually
/// consistent with the orders.
#[utoipa::path(
    get,
    path = "/orders",
    tag = "orders",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of rows.", body = Vec<SummaryRow>, headers(
            ("Link" = String, description = "`</orders?...>; rel=\"next\"` when there are more rows."),
        )),
        (status = 400, response = BadRequest),
    ),
)]

pub(super) async fn list_orders<B: Backend>(
    State(backend): State<B>,
    ApiQuery(raw): ApiQuery<ListQuery>,
) -> ApiResult<Response> {
    let status = raw.status.map(OrderStatus::from);
    // Nothing stored holds a control character (names refuse them), and PostgreSQL cannot
    // compare text holding NUL: such a filter is malformed, not a question to the store.
    for (name, value) in [("customer_id", &raw.customer_id), ("after", &raw.after)] {
        if value
            .as_deref()
            .is_some_and(|value| value.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(
                "invalid_query",
                format!("`{name}` must not contain control characters"),
            ));
        }
    }
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
#[derive(Serialize, ToSchema)]
pub(super) struct EventView {
    /// The event's id.
    #[schema(format = Uuid)]
    event_id: String,
    /// Its version in the order's stream, from 1.
    version: u64,
    /// Its position in the store's global log.
    position: u64,
    /// Its type, such as `OrderPlaced`.
    #[serde(rename = "type")]
    event_type: String,
    /// The version of its payload's shape.
    schema_version: u32,
    /// Its payload, as stored: any JSON value (`null` for an event without fields).
    #[schema(value_type = Value)]
    data: Box<serde_json::value::RawValue>,
    /// Who and what caused it.
    metadata: MetadataView,
    /// When the store recorded it (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    recorded_at: time::OffsetDateTime,
}

/// An event's metadata.
#[derive(Serialize, ToSchema)]
pub(super) struct MetadataView {
    /// The correlation id of the request that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    correlation_id: Option<Uuid>,
    /// The command or event that caused it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    causation_id: Option<Uuid>,
    /// Free-form headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<String, String>,
}

/// An order's events, oldest first, with their metadata.
#[utoipa::path(
    get,
    path = "/orders/{id}/events",
    tag = "orders",
    params(OrderPath),
    responses(
        (status = 200, description = "The order's stream.", body = Vec<EventView>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]

pub(super) async fn order_events<B: Backend>(
    State(backend): State<B>,
    OrderPath { id }: OrderPath,
) -> ApiResult<Response> {
    let not_found = || ApiError::order_not_found(&id.to_string());
    let stream_id = StreamId::for_aggregate(<Order as es_core::Aggregate>::NAME, id)
        .map_err(|_| not_found())?;
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
            metadata: MetadataView {
                correlation_id: event.metadata.correlation_id,
                causation_id: event.metadata.causation_id,
                headers: event.metadata.headers,
            },
            recorded_at: event.recorded_at,
        })
        .try_collect()
        .await
        .map_err(|error| ApiError::from_load(&error))?;
    if events.is_empty() {
        return Err(not_found());
    }
    Ok(Json(events).into_response())
}

/// The shipment the `shipping` process manager created for an order.
#[derive(Serialize, ToSchema)]
pub(super) struct ShipmentView {
    /// The order shipped.
    #[schema(format = Uuid)]
    order_id: String,
    /// What was paid for it, in cents.
    amount_cents: u64,
    /// The shipment's version.
    version: u64,
}

/// The shipment of a paid order (eventually: the process manager creates it).
#[utoipa::path(
    get,
    path = "/orders/{id}/shipment",
    tag = "orders",
    params(OrderPath),
    responses(
        (status = 200, description = "The shipment.", body = ShipmentView),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]
pub(super) async fn order_shipment<B: Backend>(
    State(backend): State<B>,
    OrderPath { id }: OrderPath,
) -> ApiResult<Response> {
    let loaded = backend
        .app()
        .load::<Shipment>(id)
        .await
        .map_err(|error| ApiError::from_load(&error))?;
    if loaded.version == StreamVersion::INITIAL {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "shipment_not_found",
            format!("order `{id}` has no shipment (yet: it is created once the order is paid)"),
        ));
    }
    Ok(Json(ShipmentView {
        order_id: loaded.state.order_id,
        amount_cents: loaded.state.amount_cents,
        version: loaded.version.get(),
    })
    .into_response())
}
