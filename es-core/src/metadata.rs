//! What travels with every event besides its payload.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Correlation and causation ids and free-form headers, stored with each event.
///
/// The time an event was recorded is set by the store and read from
/// [`RecordedEvent::recorded_at`](crate::RecordedEvent::recorded_at).
#[derive(Clone, Default, PartialEq, Eq, Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Metadata {
    /// Ties together everything done on behalf of one request or workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<Uuid>,
    /// The command or event that directly caused this event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// Free-form headers (user agent, tenant, ...). Ordered, so stored bytes are stable.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Metadata {
    /// Metadata with no ids and no headers.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the correlation id.
    #[must_use]
    pub fn with_correlation_id(mut self, id: Uuid) -> Self {
        self.correlation_id = Some(id);
        self
    }

    /// Sets the causation id.
    #[must_use]
    pub fn with_causation_id(mut self, id: Uuid) -> Self {
        self.causation_id = Some(id);
        self
    }

    /// Whether it carries nothing: no ids and no headers (stored as `{}`).
    ///
    /// ```
    /// use es_core::Metadata;
    ///
    /// assert!(Metadata::new().is_empty());
    /// assert!(!Metadata::new().with_header("tenant", "t1").is_empty());
    /// assert!(!Metadata::new().with_correlation_id(uuid::Uuid::nil()).is_empty());
    /// ```
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.correlation_id.is_none() && self.causation_id.is_none() && self.headers.is_empty()
    }

    /// Adds or replaces one header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.insert(name.into(), value.into());
        self
    }
}
