//! What a request carries, parsed and checked by extractors whose rejection is an
//! [`ApiError`]: a handler gets typed values or never runs, and every malformed part of a
//! request gets its JSON error. Each extractor also describes itself to the OpenAPI document.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use es_core::StreamVersion;
use serde::de::{DeserializeOwned, IntoDeserializer as _};
use serde::{Deserialize, Deserializer};
use utoipa::IntoParams;
use uuid::Uuid;

use super::error::{ApiError, ApiResult};
use super::{BODY_LIMIT, IDEMPOTENCY_NAMESPACE, MAX_NAME_BYTES, MAX_REASON_CHARS};

/// A JSON body, whatever its content type; every failure is a JSON error (400, or 413 over
/// [`BODY_LIMIT`], or 408 when it does not arrive in time).
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

/// Path parameters; a segment that does not decode is `400 invalid_path`.
pub(super) struct ApiPath<T>(pub(super) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request("invalid_path", rejection.body_text()))
    }
}

/// The query string; one that does not parse is `400 invalid_query`.
pub(super) struct ApiQuery<T>(pub(super) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(value)| Self(value))
            .map_err(|rejection| ApiError::bad_request("invalid_query", rejection.body_text()))
    }
}

/// An absent or empty query value as `None`, anything else parsed as a `T` (an enum by its
/// variant names), for filters such as `?status=`.
pub(super) fn empty_as_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<String>::deserialize(deserializer)?.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => T::deserialize(text.into_deserializer()).map(Some),
    }
}

/// The order id in a path: a UUID in its canonical form, lower-case and hyphenated, as the
/// service writes it. Anything else (upper case, braces, `urn:uuid:`, no hyphens) names no
/// order (`404 order_not_found`): one order has one URL.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct OrderPath {
    /// The order id: a UUID in canonical form (lower case, hyphenated); any other spelling
    /// names no order.
    pub(super) id: Uuid,
}

impl<S: Send + Sync> FromRequestParts<S> for OrderPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Segment {
            id: String,
        }
        let ApiPath(Segment { id: raw }) = ApiPath::from_request_parts(parts, state).await?;
        Uuid::try_parse(&raw)
            .ok()
            .filter(|id| id.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == raw.as_str())
            .map(|id| Self { id })
            .ok_or_else(|| ApiError::order_not_found(&raw))
    }
}

/// The SKU in a product's path; one that no product can have is `404 product_not_found`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct SkuPath {
    /// The product's SKU, percent-encoded.
    pub(super) sku: String,
}

impl<S: Send + Sync> FromRequestParts<S> for SkuPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        #[derive(Deserialize)]
        struct Segment {
            sku: String,
        }
        let ApiPath(Segment { sku }) = ApiPath::from_request_parts(parts, state).await?;
        check_name("sku", &sku).map_err(|_| ApiError::product_not_found(&sku))?;
        Ok(Self { sku })
    }
}

/// `If-Match` as a command reads it.
#[derive(Clone, Copy, Debug)]
pub(super) enum IfMatch {
    /// `*`: any existing version.
    Exists,
    /// `N` or `"N"`: exactly this version.
    Version(StreamVersion),
}

/// The headers a command on an existing aggregate reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub(super) struct CommandHeaders {
    /// The version the command expects: `N` or `"N"` (the `ETag` the service sends), or `*`
    /// for any. Absent: commands on one aggregate queue and a conflict with another process
    /// is retried; present and not current: `409 version_conflict`.
    #[param(
        rename = "If-Match",
        value_type = Option<String>,
        pattern = r#"^(\*|[0-9]+|"[0-9]+")$"#,
        nullable = false
    )]
    pub(super) if_match: Option<IfMatch>,
    /// Makes a retried request append once and answer as the first time; the same key with
    /// another request is `422 idempotency_key_reused`. 1 to 255 visible ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        nullable = false
    )]
    pub(super) idempotency_key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for CommandHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self {
            if_match: if_match(&parts.headers)?,
            idempotency_key: idempotency_key(&parts.headers)?,
        })
    }
}

/// The header a creating command reads.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
pub(super) struct CreateHeaders {
    /// Makes a retried request create once and answer as the first time; the same key with
    /// another request is `422 idempotency_key_reused`. 1 to 255 visible ASCII characters.
    #[param(
        rename = "Idempotency-Key",
        pattern = "^[!-~]{1,255}$",
        nullable = false
    )]
    pub(super) idempotency_key: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for CreateHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(Self {
            idempotency_key: idempotency_key(&parts.headers)?,
        })
    }
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

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(key) = header_text(headers, "idempotency-key")? else {
        return Ok(None);
    };
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|byte| byte.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
        ));
    }
    Ok(Some(key.to_owned()))
}

/// An id derived from an idempotency key (and what it names), the same for every retry.
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

/// A cancellation reason: at most [`MAX_REASON_CHARS`] characters, no control characters but
/// newline and tab.
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
