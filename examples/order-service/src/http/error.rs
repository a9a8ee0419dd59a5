//! The error answer and the one classifier every failure goes through.

use std::fmt;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use es_core::{BackendErrorKind, CommandError, ErrorChain, LoadError};
use serde::Serialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use super::command::{Resource, etag};
use crate::domain::OrderError;
use crate::product::ProductError;

/// An error answer: status, stable code, message, and extra fields for the error object.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    pub(super) code: &'static str,
    message: String,
    current_version: Option<u64>,
    /// What went wrong inside, for the log only (server-side failures).
    cause: Option<String>,
}

/// Rides on a server-side error answer (5xx) to the correlation middleware, which logs the
/// cause with the request's correlation id and adds that id to the answer's body, so a caller
/// can quote it and an operator find the log line. The body never carries the cause.
#[derive(Clone, Debug)]
pub(super) struct Logged {
    pub(super) cause: Option<String>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, code: &'static str, message: impl fmt::Display) -> Self {
        Self {
            status,
            code,
            message: message.to_string(),
            current_version: None,
            cause: None,
        }
    }

    pub(super) fn with_cause(mut self, cause: &(dyn std::error::Error + 'static)) -> Self {
        self.cause = Some(ErrorChain(cause).to_string());
        self
    }

    pub(super) fn bad_request(code: &'static str, message: impl fmt::Display) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub(super) fn invalid_field(message: impl fmt::Display) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }

    pub(super) fn order_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "order_not_found",
            format!("no order `{id}`"),
        )
    }

    /// A failure of the service itself: the cause is logged (with the request's correlation
    /// id, from its span), the answer only says where to look.
    pub(super) fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the service failed; the cause is logged under this answer's correlation_id",
        )
        .with_cause(error)
    }

    pub(super) fn from_load(error: &LoadError) -> Self {
        match error {
            LoadError::Backend(backend) => Self::from_backend(backend.kind(), error),
            LoadError::InvalidStreamId(_) => Self::bad_request("invalid_id", ErrorChain(error)),
            _ => Self::internal(error),
        }
    }

    /// The one place a store failure becomes an answer: unreachable or cut off (the store
    /// crates' classification, SQLSTATE 08xxx and 57xxx on PostgreSQL) is 503, a value the
    /// store refuses 422, anything else 500. The database's own words stay in the log.
    pub(super) fn from_backend(
        kind: BackendErrorKind,
        error: &(dyn std::error::Error + 'static),
    ) -> Self {
        match kind {
            BackendErrorKind::Unavailable => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database is unavailable; try again shortly",
            )
            .with_cause(error),
            BackendErrorKind::InvalidInput => {
                tracing::info!(error = %ErrorChain(error), "the store refused a value");
                Self::invalid_field("a field holds a value the store cannot keep")
            }
            _ => Self::internal(error),
        }
    }

    pub(super) fn product_not_found(sku: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "product_not_found",
            format!("no product `{sku}`"),
        )
    }

    pub(super) fn from_command<A: Resource>(id: &str, error: &CommandError<A::Error>) -> Self {
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

/// The codes the service itself answers with; the domain's refusals add their own
/// ([`OrderError::CODES`], [`ProductError::CODES`]).
pub(super) const SERVICE_CODES: &[&str] = &[
    "body_timeout",
    "body_too_large",
    "idempotency_key_reused",
    "idempotency_replay_diverged",
    "internal",
    "invalid_field",
    "invalid_header",
    "invalid_id",
    "invalid_idempotency_key",
    "invalid_if_match",
    "invalid_json",
    "invalid_path",
    "invalid_query",
    "method_not_allowed",
    "order_not_found",
    "overloaded",
    "product_not_found",
    "route_not_found",
    "shipment_not_found",
    "unavailable",
    "unreadable_body",
    "version_conflict",
    "version_not_found",
];

/// Every `code` an error answer can carry, sorted and without repeats.
#[must_use]
pub fn error_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = SERVICE_CODES
        .iter()
        .chain(OrderError::CODES)
        .chain(ProductError::CODES)
        .copied()
        .collect();
    codes.sort_unstable();
    codes.dedup();
    codes
}

/// The schema of an error's `code`: a string, one of [`error_codes`].
pub(super) struct ErrorCode;

impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Stable and machine-readable: what went wrong. The service's README says what \
                 each code means.",
            ))
            .enum_values(Some(error_codes()))
            .into()
    }
}

impl ToSchema for ErrorCode {}

/// Every error answer's body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorObject,
}

/// What went wrong: a stable code to branch on and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub(super) struct ErrorObject {
    /// Stable and machine-readable; the service's README lists what each means.
    #[schema(value_type = ErrorCode)]
    code: &'static str,
    /// For people; its wording may change.
    message: String,
    /// With `version_conflict`: the version the aggregate is at (also the answer's `ETag`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    current_version: Option<u64>,
    /// With a server-side failure (5xx): the id the cause is logged under.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    correlation_id: Option<Uuid>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorObject {
                code: self.code,
                message: self.message,
                current_version: self.current_version,
                correlation_id: None,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
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

pub(super) type ApiResult<T> = Result<T, ApiError>;

pub(super) async fn unknown_route(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "route_not_found",
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

pub(super) async fn method_not_allowed(request: Request) -> ApiError {
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
