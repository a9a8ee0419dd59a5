//! Running a command from a request: `If-Match`, `Idempotency-Key`, the correlation id, and
//! the answer with the aggregate's view and `ETag`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use es_core::{Executed, ExpectedVersion, StreamVersion};
use serde::Serialize;

use super::correlation::CorrelationId;
use super::error::{ApiError, ApiResult};
use super::extract::{CommandHeaders, IfMatch, derived_id};
use super::orders::OrderView;
use super::products::ProductView;
use crate::backend::Backend;
use crate::domain::{Order, OrderError};
use crate::product::{Product, ProductError};

pub(super) fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// `body` as JSON with the aggregate's `version` as its `ETag`.
pub(super) fn versioned(
    status: StatusCode,
    version: StreamVersion,
    body: impl Serialize,
) -> Response {
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::ETAG, etag(version.get()));
    response
}

/// An aggregate the API exposes: its refusals' codes, its "not found" answer and its view. Its
/// commands are `Serialize`: an `Idempotency-Key` is bound to the command it came with by the
/// command's fingerprint.
pub(super) trait Resource: es_core::Aggregate<Command: Serialize> {
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
pub(super) async fn update<B: Backend, A: Resource, C>(
    backend: &B,
    id: &str,
    command: C,
    headers: CommandHeaders,
    correlation: CorrelationId,
) -> ApiResult<Response>
where
    C: Into<A::Command> + Clone + Send + 'static,
{
    let target = Target::Existing(headers.if_match);
    let key = headers.idempotency_key.as_deref();
    let executed = run::<B, A, C>(backend, id, command, target, key, correlation).await?;
    Ok(versioned(
        StatusCode::OK,
        executed.version,
        A::view(id, executed.version, &executed.state),
    ))
}

/// What a command may act on.
#[derive(Clone, Copy, Debug)]
pub(super) enum Target {
    /// A new stream only (a creating command).
    New,
    /// An existing aggregate, at the version `If-Match` names if it names one.
    Existing(Option<IfMatch>),
}

/// Runs `command` on aggregate `id`, with the request's idempotency key and correlation id.
pub(super) async fn run<B: Backend, A: Resource, C>(
    backend: &B,
    id: &str,
    command: C,
    target: Target,
    idempotency_key: Option<&str>,
    correlation: CorrelationId,
) -> ApiResult<Executed<A>>
where
    C: Into<A::Command> + Clone + Send + 'static,
{
    let mut execute = backend
        .app()
        .execute::<A>(id, command)
        .correlation_id(correlation.0);
    execute = match target {
        Target::New => execute.expected_version(ExpectedVersion::NoStream),
        Target::Existing(Some(IfMatch::Version(version))) => execute
            .existing()
            .expected_version(ExpectedVersion::Exact(version)),
        Target::Existing(Some(IfMatch::Exists) | None) => execute.existing(),
    };
    // The command id comes from the key alone: the same key on another route, order or
    // product is the key reused, which the command path refuses, as it refuses the same key
    // with another body.
    if let Some(key) = idempotency_key {
        execute = execute.command_id(derived_id(&[key]));
    }
    execute
        .await
        .map_err(|error| ApiError::from_command::<A>(id, &error))
}
