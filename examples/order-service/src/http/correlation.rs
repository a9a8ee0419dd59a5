//! Correlation ids and request logs: every request gets one (the caller's `X-Correlation-Id`
//! or a new one), its log lines carry it, its events' metadata stores it, and its answer
//! echoes it; a server-side failure is logged with its cause under it.

use std::time::Instant;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;
use uuid::Uuid;

use super::BODY_LIMIT;
use super::error::Logged;

/// The request's correlation id, stored in its events' metadata.
#[derive(Clone, Copy, Debug)]
pub(super) struct CorrelationId(pub(super) Uuid);

impl<S: Send + Sync> FromRequestParts<S> for CorrelationId {
    type Rejection = std::convert::Infallible;

    /// The id [`correlate`] gave the request (a new one where the middleware did not run).
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Self>()
            .copied()
            .unwrap_or_else(|| Self(Uuid::now_v7())))
    }
}

/// The middleware: takes or makes the request's correlation id, logs the request and its
/// answer under it, and echoes it in `X-Correlation-Id`.
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
