//! What a request carries: its JSON body, path, query and headers, checked, and its
//! correlation id.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, Path, Query, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use es_core::StreamVersion;
use serde::de::DeserializeOwned;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::{ApiError, ApiResult, Logged};
use super::{BODY_LIMIT, IDEMPOTENCY_NAMESPACE, MAX_NAME_BYTES, MAX_REASON_CHARS};

/// A JSON body, whatever its content type; every failure is a JSON error (400, or 413 over
/// [`BODY_LIMIT`]).
pub(super) struct JsonBody<T>(pub(super) T);

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
pub(super) fn caused_by<E: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if error.is::<E>() {
            return true;
        }
        cause = error.source();
    }
    false
}

pub(super) fn path<T>(extracted: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    extracted
        .map(|Path(value)| value)
        .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
}

pub(super) fn query<T>(extracted: Result<Query<T>, QueryRejection>) -> ApiResult<T> {
    extracted
        .map(|Query(value)| value)
        .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
}

/// An order id from the path: a UUID in its canonical form, lower-case and hyphenated, as the
/// service writes it. Anything else (upper case, braces, `urn:uuid:`, no hyphens) names no
/// order: one order has one URL.
pub(super) fn order_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::try_parse(raw)
        .ok()
        .filter(|id| id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == raw)
        .ok_or_else(|| ApiError::order_not_found(raw))
}

pub(super) fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
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
pub(super) fn if_match(headers: &HeaderMap) -> ApiResult<Option<IfMatch>> {
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

/// The headers a command on an existing aggregate reads, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "describes headers to the OpenAPI document; read by `if_match`"
)]
pub(super) struct CommandHeaders {
    /// The version the command expects: `N` or `"N"` (the `ETag` the service sends), or `*`
    /// for any. Absent: commands on one aggregate queue and a conflict with another process
    /// is retried; present and not current: `409 version_conflict`.
    #[param(
        rename = "If-Match",
        pattern = r#"^(\*|[0-9]+|"[0-9]+")$"#,
        nullable = false
    )]
    if_match: Option<String>,
    /// Makes a retried request append once and answer as the first time; the same key with
    /// another request is `422 idempotency_key_reused`. 1 to 255 visible ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        nullable = false
    )]
    idempotency_key: Option<String>,
}

/// The header a creating command reads, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(
    dead_code,
    reason = "describes headers to the OpenAPI document; read by `idempotency_key`"
)]
pub(super) struct CreateHeaders {
    /// Makes a retried request create once and answer as the first time; the same key with
    /// another request is `422 idempotency_key_reused`. 1 to 255 visible ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        nullable = false
    )]
    idempotency_key: Option<String>,
}

/// The order id in a path, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(
    dead_code,
    reason = "describes the path to the OpenAPI document; read by `order_id`"
)]
pub(super) struct OrderPath {
    /// The order id: a UUID in canonical form (lower case, hyphenated); any other spelling
    /// names no order.
    id: Uuid,
}

/// The SKU in a path, for the OpenAPI document.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[expect(
    dead_code,
    reason = "describes the path to the OpenAPI document; read by `path`"
)]
pub(super) struct SkuPath {
    /// The product's SKU, percent-encoded.
    sku: String,
}

pub(super) enum IfMatch {
    Exists,
    Version(StreamVersion),
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub(super) fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<&str>> {
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

pub(super) fn derived_id(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, parts.join("\n").as_bytes())
}

/// A short name field: 1 to [`MAX_NAME_BYTES`] bytes of UTF-8, no control characters.
pub(super) fn check_name(field: &str, value: &str) -> ApiResult<()> {
    if value.is_empty() || value.len() > MAX_NAME_BYTES || value.chars().any(char::is_control) {
        return Err(ApiError::invalid_field(format!(
            "`{field}` must be 1 to {MAX_NAME_BYTES} bytes of UTF-8 without control characters"
        )));
    }
    Ok(())
}

pub(super) fn check_reason(value: &str) -> ApiResult<()> {
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

/// The request's correlation id, stored in its events' metadata.
#[derive(Clone, Copy, Debug)]
pub(super) struct CorrelationId(pub(super) Uuid);

pub(super) async fn correlate(mut request: Request, next: Next) -> Response {
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
pub(super) async fn with_correlation_id(response: Response, correlation: Uuid) -> Response {
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
