//! `GET /health`: the store and every projection.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::chain;
use crate::backend::Backend;

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
            let projections: Vec<_> = reports
                .iter()
                .map(|report| {
                    json!({
                        "name": report.status.name,
                        "checkpoint": report.checkpoint.position.get(),
                        "events_behind": report.events_behind,
                        "seconds_behind": report.seconds_behind,
                        "owner": report.owner.as_ref().map(|(owner, _)| owner),
                        "lease_held_here": report.status.lease_held,
                        "events_applied": report.status.events_applied,
                        "last_error": report.status.last_error,
                        "consecutive_failures": report.status.consecutive_failures,
                    })
                })
                .collect();
            Json(json!({
                "status": if failing { "degraded" } else { "ok" },
                "store": { "backend": backend.kind(), "reachable": true, "head": head },
                "projections": projections,
            }))
            .into_response()
        }
        Err(error) => {
            // The database's own words stay in the log.
            tracing::warn!(error = %chain(&error), "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "store": {
                        "backend": backend.kind(),
                        "reachable": false,
                        "error": "the store could not be read; the cause is logged",
                    },
                })),
            )
                .into_response()
        }
    }
}
