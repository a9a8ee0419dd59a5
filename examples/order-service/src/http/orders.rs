//! The order routes.

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use es_core::{EventStore as _, StreamId, StreamVersion};
use futures_util::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::LIST_LIMITS;
use super::command::{run, update, versioned};
use super::error::{ApiError, ApiResult};
use super::products::percent_encode;
use super::request::{
    CorrelationId, JsonBody, check_name, check_reason, derived_id, idempotency_key, order_id, path,
    query,
};
use crate::backend::{Backend, SummaryFilter};
use crate::domain::{
    AddItem, CancelOrder, Order, OrderStatus, PayOrder, PlaceOrder, RemoveItem, ShipOrder,
};
use crate::shipment::Shipment;

/// An order as the API shows it.
#[derive(Debug, Serialize)]
pub(super) struct OrderView {
    id: String,
    version: u64,
    customer_id: String,
    status: OrderStatus,
    items: Vec<LineView>,
    item_count: u64,
    total_cents: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct LineView {
    sku: String,
    quantity: u64,
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

#[derive(Deserialize)]
pub(super) struct PlaceBody {
    customer_id: String,
}

pub(super) async fn place_order<B: Backend>(
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
pub(super) struct AddItemBody {
    sku: String,
    quantity: u32,
    unit_price_cents: u64,
}

pub(super) async fn add_item<B: Backend>(
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

pub(super) async fn remove_item<B: Backend>(
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
pub(super) struct PayBody {
    amount_cents: u64,
}

pub(super) async fn pay<B: Backend>(
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

pub(super) async fn ship<B: Backend>(
    State(backend): State<B>,
    axum::Extension(correlation): axum::Extension<CorrelationId>,
    raw_id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = order_id(&path(raw_id)?)?;
    update::<B, Order, _>(&backend, &id.to_string(), ShipOrder, &headers, correlation).await
}

#[derive(Deserialize)]
pub(super) struct CancelBody {
    reason: String,
}

pub(super) async fn cancel<B: Backend>(
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

#[derive(Deserialize)]
pub(super) struct AtVersion {
    at_version: Option<u64>,
}

pub(super) async fn get_order<B: Backend>(
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
pub(super) struct ListQuery {
    status: Option<String>,
    customer_id: Option<String>,
    limit: Option<u32>,
    after: Option<String>,
}

pub(super) async fn list_orders<B: Backend>(
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
pub(super) struct EventView {
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

pub(super) async fn order_events<B: Backend>(
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

pub(super) async fn order_shipment<B: Backend>(
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
