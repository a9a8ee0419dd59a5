//! The catalogue routes.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use es_core::StreamVersion;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::command::{Target, run, update, versioned};
use super::correlation::CorrelationId;
use super::error::{ApiError, ApiResult};
use super::extract::{CommandHeaders, CreateHeaders, JsonBody, SkuPath, check_name};
use super::openapi::{BadRequest, Conflict, NotFound, Unprocessable};
use crate::backend::Backend;
use crate::product::{ChangePrice, ListProduct, Product, ProductError, ReserveStock, Restock};

/// A product as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ProductView {
    /// Its SKU.
    sku: String,
    /// The product's version: how many events its stream holds (also its `ETag`).
    version: u64,
    /// Its name.
    name: String,
    /// The price of one unit, in cents.
    unit_price_cents: u64,
    /// Units in stock.
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

/// `POST /products`.
#[derive(Deserialize, ToSchema)]
pub(super) struct ListProductBody {
    /// 1 to 128 bytes of UTF-8, no control characters; part of the product's URL.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    sku: String,
    /// 1 to 128 bytes of UTF-8, no control characters.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\x00-\x1f\x7f-\x9f]+$"
    )]
    name: String,
    /// The price of one unit, in cents.
    unit_price_cents: u64,
    /// Units in stock to begin with.
    stock: u64,
}

/// Lists a product in the catalogue.
#[utoipa::path(
    post,
    path = "/products",
    tag = "products",
    request_body = ListProductBody,
    params(CreateHeaders),
    responses(
        (status = 201, description = "Listed.", body = ProductView, headers(
            ("ETag" = String, description = "The product's version, quoted."),
            ("Location" = String, description = "`/products/{sku}`, the SKU percent-encoded."),
        )),
        (status = 400, response = BadRequest),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn list_product<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    headers: CreateHeaders,
    JsonBody(body): JsonBody<ListProductBody>,
) -> ApiResult<Response> {
    check_name("sku", &body.sku)?;
    check_name("name", &body.name)?;
    let command = ListProduct {
        name: body.name,
        unit_price_cents: body.unit_price_cents,
        stock: body.stock,
    };
    let key = headers.idempotency_key.as_deref();
    let executed =
        run::<B, Product, _>(&backend, &body.sku, command, Target::New, key, correlation)
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

/// A product, folded from its events.
#[utoipa::path(
    get,
    path = "/products/{sku}",
    tag = "products",
    params(SkuPath),
    responses(
        (status = 200, description = "The product.", body = ProductView, headers(("ETag" = String, description = "The product's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
    ),
)]
pub(super) async fn get_product<B: Backend>(
    State(backend): State<B>,
    SkuPath { sku }: SkuPath,
) -> ApiResult<Response> {
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

/// `POST /products/{sku}/restock` and `.../reserve`.
#[derive(Deserialize, ToSchema)]
pub(super) struct QuantityBody {
    /// Units: at least 1.
    #[schema(minimum = 1)]
    quantity: u64,
}

/// Adds units to a product's stock.
#[utoipa::path(
    post,
    path = "/products/{sku}/restock",
    tag = "products",
    request_body = QuantityBody,
    params(SkuPath, CommandHeaders),
    responses(
        (status = 200, description = "Restocked.", body = ProductView, headers(("ETag" = String, description = "The product's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn restock<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    SkuPath { sku }: SkuPath,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<QuantityBody>,
) -> ApiResult<Response> {
    let command = Restock {
        quantity: body.quantity,
    };
    update::<B, Product, _>(&backend, &sku, command, headers, correlation).await
}

/// Takes units from a product's stock; never more than it holds.
#[utoipa::path(
    post,
    path = "/products/{sku}/reserve",
    tag = "products",
    request_body = QuantityBody,
    params(SkuPath, CommandHeaders),
    responses(
        (status = 200, description = "Reserved.", body = ProductView, headers(("ETag" = String, description = "The product's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]
pub(super) async fn reserve<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    SkuPath { sku }: SkuPath,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<QuantityBody>,
) -> ApiResult<Response> {
    let command = ReserveStock {
        quantity: body.quantity,
    };
    update::<B, Product, _>(&backend, &sku, command, headers, correlation).await
}

/// `POST /products/{sku}/price`.
#[derive(Deserialize, ToSchema)]
pub(super) struct PriceBody {
    /// The new price of one unit, in cents.
    unit_price_cents: u64,
}

/// Changes a product's price (orders already placed keep theirs).
#[utoipa::path(
    post,
    path = "/products/{sku}/price",
    tag = "products",
    request_body = PriceBody,
    params(SkuPath, CommandHeaders),
    responses(
        (status = 200, description = "Changed.", body = ProductView, headers(("ETag" = String, description = "The product's version, quoted."))),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 422, response = Unprocessable),
    ),
)]

pub(super) async fn change_price<B: Backend>(
    State(backend): State<B>,
    correlation: CorrelationId,
    SkuPath { sku }: SkuPath,
    headers: CommandHeaders,
    JsonBody(body): JsonBody<PriceBody>,
) -> ApiResult<Response> {
    let command = ChangePrice {
        unit_price_cents: body.unit_price_cents,
    };
    update::<B, Product, _>(&backend, &sku, command, headers, correlation).await
}
