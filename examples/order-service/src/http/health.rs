//! `GET /health`: the store and every projection.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::backend::Backend;
use es_core::ErrorChain;

/// The service's health.
#[derive(Serialize, ToSchema)]
pub(super) struct HealthView {
    /// `ok`; `degraded` when a projection's last attempt failed; `unavailable` when the store
    /// cannot be read.
    #[schema(value_type = String, pattern = "^(ok|degraded|unavailable)$")]
    status: &'static str,
    /// The store.
    store: StoreView,
    /// Each projection and process manager (absent when the store cannot be read).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    projections: Option<Vec<ProjectionView>>,
}

/// The event store, as `/health` sees it.
#[derive(Serialize, ToSchema)]
pub(super) struct StoreView {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    /// Whether it answered.
    reachable: bool,
    /// The position of the last event in the log (`null` when empty or unreachable).
    head: Option<u64>,
    /// Why it is not reachable (the cause is in the log).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    error: Option<&'static str>,
}

/// One projection or process manager.
#[derive(Serialize, ToSchema)]
pub(super) struct ProjectionView {
    /// Its registered name.
    name: &'static str,
    /// The log position its committed checkpoint covers.
    checkpoint: u64,
    /// Events of its types after the checkpoint.
    events_behind: u64,
    /// How long the oldest of those has waited.
    seconds_behind: f64,
    /// The worker holding (or last holding) its lease.
    owner: Option<String>,
    /// Whether this process holds the lease.
    lease_held_here: bool,
    /// Events this process applied since it started.
    events_applied: u64,
    /// The error of the last attempt, if it failed.
    last_error: Option<String>,
    /// Attempts failed in a row.
    consecutive_failures: u32,
}

/// The store's reachability and each projection's checkpoint, lag, lease and last error.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "The store answered; `status` is `ok` or `degraded`.", body = HealthView),
        (status = 503, description = "The store cannot be read (`status`: `unavailable`), or the server is overloaded (an error body, `overloaded`).", body = HealthView),
    ),
)]
pub(super) async fn health<B: Backend>(State(backend): State<B>) -> Response {
    match backend.app().projection_report().await {
        Ok(reports) => {
            let failing = reports
                .iter()
                .any(|report| report.status.last_error.is_some());
            let head = reports
                .first()
                .and_then(|report| report.head)
                .map(|head| head.position.get());
            let projections = reports
                .into_iter()
                .map(|report| ProjectionView {
                    name: report.status.name,
                    checkpoint: report.checkpoint.position.get(),
                    events_behind: report.events_behind,
                    seconds_behind: report.seconds_behind,
                    owner: report.owner.map(|(owner, _)| owner),
                    lease_held_here: report.status.lease_held,
                    events_applied: report.status.events_applied,
                    last_error: report.status.last_error,
                    consecutive_failures: report.status.consecutive_failures,
                })
                .collect();
            Json(HealthView {
                status: if failing { "degraded" } else { "ok" },
                store: StoreView {
                    backend: backend.kind(),
                    reachable: true,
                    head,
                    error: None,
                },
                projections: Some(projections),
            })
            .into_response()
        }
        Err(error) => {
            // The database's own words stay in the log.
            tracing::warn!(error = %ErrorChain(&error), "health check failed");
            let view = HealthView {
                status: "unavailable",
                store: StoreView {
                    backend: backend.kind(),
                    reachable: false,
                    head: None,
                    error: Some("the store could not be read; the cause is logged"),
                },
                projections: None,
            };
            (StatusCode::SERVICE_UNAVAILABLE, Json(view)).into_response()
        }
    }
}
