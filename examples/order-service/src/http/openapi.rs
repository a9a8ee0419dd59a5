//! The OpenAPI 3.1 document of the API, served at `GET /openapi.json`: generated from the
//! handlers' attributes and the types they read and answer with, so it cannot drift from them.
//!
//! Answers every route can give whatever it is (a store that is unreachable, a failure of the
//! service, a body too large or too slow) are added here once rather than on each handler.

use std::sync::LazyLock;

use axum::body::Bytes;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{Content, HeaderBuilder, OpenApi as Document, Ref, RefOr, Required};
use utoipa::{OpenApi, ToResponse};

use super::error::{ErrorBody, ErrorCode};
use super::{health, orders, products};

/// `400`: the request is malformed.
#[derive(ToResponse)]
#[response(
    description = "Malformed: JSON that does not parse or has wrong field types (`invalid_json`, \
                   `unreadable_body`), a bad path segment or query (`invalid_path`, \
                   `invalid_query`), or a bad header (`invalid_if_match`, \
                   `invalid_idempotency_key`, `invalid_header`)."
)]
#[expect(dead_code, reason = "describes an answer to the OpenAPI document")]
pub(super) struct BadRequest(ErrorBody);

/// `404`: what the path names does not exist.
#[derive(ToResponse)]
#[response(
    description = "Nothing by that name: `order_not_found` (also for an id not in canonical \
                   form), `product_not_found`, `version_not_found`, `shipment_not_found`."
)]
#[expect(dead_code, reason = "describes an answer to the OpenAPI document")]
pub(super) struct NotFound(ErrorBody);

/// `409`: the aggregate is not at the version the request expected.
#[derive(ToResponse)]
#[response(
    description = "`version_conflict`: `If-Match` named another version than the current one, \
                   which `current_version` and the `ETag` header give; \
                   `idempotency_replay_diverged`: the key's first request was refused and that \
                   refusal cannot be reproduced.",
    headers(("ETag" = String, description = "With `version_conflict`: the current version, quoted."))
)]
#[expect(dead_code, reason = "describes an answer to the OpenAPI document")]
pub(super) struct Conflict(ErrorBody);

/// `422`: well-formed, but refused.
#[derive(ToResponse)]
#[response(
    description = "Refused and nothing stored: a field out of range (`invalid_field`), the \
                   `Idempotency-Key` used for another request (`idempotency_key_reused`), or a \
                   rule of the domain (its own code, such as `wrong_amount` or \
                   `insufficient_stock`)."
)]
#[expect(dead_code, reason = "describes an answer to the OpenAPI document")]
pub(super) struct Unprocessable(ErrorBody);

/// The API: every route, body, view, header and error code.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "order-service",
        description = "The example order service of the es framework: orders and a catalogue, \
                       stored as events. Every error answers `{\"error\": {\"code\", \"message\"}}`; \
                       `code` is one of `ErrorCode`.",
    ),
    paths(
        orders::place_order,
        orders::list_orders,
        orders::get_order,
        orders::add_item,
        orders::remove_item,
        orders::pay,
        orders::ship,
        orders::cancel,
        orders::order_events,
        orders::order_shipment,
        products::list_product,
        products::get_product,
        products::restock,
        products::reserve,
        products::change_price,
        health::health,
        openapi_json,
    ),
    components(
        schemas(ErrorBody, ErrorCode, orders::ListStatus),
        responses(BadRequest, NotFound, Conflict, Unprocessable),
    ),
    tags(
        (name = "orders", description = "Orders, their events and shipments"),
        (name = "products", description = "The catalogue and its stock"),
        (name = "service", description = "Health and this document"),
    ),
)]
struct ApiDoc;

/// The document, with the answers every route shares.
#[must_use]
pub fn document() -> Document {
    let mut document = ApiDoc::openapi();
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            add_shared(operation);
        }
    }
    document
}

/// Adds to `operation` what every route has: the `X-Correlation-Id` header in and out, `500`
/// and `503`, and for a route with a body `408` and `413`.
fn add_shared(operation: &mut Operation) {
    let correlation_in = ParameterBuilder::new()
        .name("X-Correlation-Id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "A UUID tying the request to its log lines and its events' metadata; one is made \
             up when absent or not a UUID.",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(RefOr::T(correlation_in));

    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                Content::new(Some(Ref::from_schema_name("ErrorBody"))),
            )
            .build()
    };
    let responses = &mut operation.responses.responses;
    if operation.request_body.is_some() {
        responses.entry("408".to_owned()).or_insert_with(|| {
            RefOr::T(error(
                "`body_timeout`: the body did not arrive in time; the connection is closed.",
            ))
        });
        responses.entry("413".to_owned()).or_insert_with(|| {
            RefOr::T(error(
                "`body_too_large`: the body (or its announced length) is over the limit; the \
                 connection is closed.",
            ))
        });
    }
    responses.entry("500".to_owned()).or_insert_with(|| {
        RefOr::T(error(
            "`internal`: the service failed; the cause is logged under the `correlation_id` \
             the answer carries.",
        ))
    });
    let unavailable = "`unavailable`: the database cannot be reached; `overloaded`: too many \
                       open connections. Nothing was stored; try again shortly.";
    match responses.get_mut("503") {
        // `/health` answers 503 with its own report; an overloaded server still answers with
        // an error body.
        Some(RefOr::T(own)) => {
            if let Some(RefOr::T(content)) = own.content.get_mut("application/json")
                && let Some(schema) = content.schema.take()
            {
                content.schema = Some(
                    OneOfBuilder::new()
                        .item(schema)
                        .item(Ref::from_schema_name("ErrorBody"))
                        .into(),
                );
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            responses.insert("503".to_owned(), RefOr::T(error(unavailable)));
        }
    }
    let correlation_out = HeaderBuilder::new()
        .schema(Some(uuid_schema()))
        .description(Some("The request's correlation id."))
        .build();
    for response in responses.values_mut() {
        if let RefOr::T(response) = response {
            response
                .headers
                .entry("X-Correlation-Id".to_owned())
                .or_insert_with(|| RefOr::T(correlation_out.clone()));
        }
    }
}

fn uuid_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).format(Some(
        utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid),
    ))
}

/// The document as served, serialized once.
static DOCUMENT_JSON: LazyLock<Bytes> = LazyLock::new(|| {
    serde_json::to_vec_pretty(&document())
        .map(Bytes::from)
        .unwrap_or_default()
});

/// `GET /openapi.json`: this API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object)),
)]
pub(super) async fn openapi_json() -> Response {
    let mut response = DOCUMENT_JSON.clone().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
