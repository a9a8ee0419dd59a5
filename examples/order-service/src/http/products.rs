//! The catalogue routes.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use es_core::StreamVersion;
use serde::{Deserialize, Serialize};

use super::command::{run, update, versioned};
use super::error::{ApiError, ApiResult};
use super::request::{CorrelationId, JsonBody, check_name, path};
use crate::backend::Backend;
use crate::product::{ChangePrice, ListProduct, Product, ProductError, ReserveStock, Restock};

#[derive(Debug, Serialize)]
pub(super) struct ProductView {
    sku: String,
    version: u64,
    name: String,
    unit_price_cents: u64,
    stock: u64,
}

impl ProductView {
    pub(super) fn new(sku: &str, version: StreamVersion, product: &Product) -> Self {
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
pub(super) struct ListProductBody {
    sku: String,
    name: String,
    unit_price_cents: u64,
    stock: u64,
}

pub(super) async fn list_product<B: Backend>(
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
pub(super) fn percent_encode(segment: &str) -> String {
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

pub(super) async fn get_product<B: Backend>(
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
pub(super) struct QuantityBody {
    quantity: u64,
}

pub(super) async fn restock<B: Backend>(
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

pub(super) async fn reserve<B: Backend>(
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
pub(super) struct PriceBody {
    unit_price_cents: u64,
}

pub(super) async fn change_price<B: Backend>(
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
