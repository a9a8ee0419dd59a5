//! What a published message holds: the event's payload as stored, and its envelope in headers.
//!
//! The message body is the event's JSON payload byte for byte, exactly as the store holds it
//! (at its stored [schema version](header::SCHEMA_VERSION), not upcast). Everything else travels
//! in headers, so a consumer can route and filter without parsing the body:
//!
//! | header | value |
//! | --- | --- |
//! | `Nats-Msg-Id` | the event id: JetStream drops a second message with the same id within the stream's duplicate window |
//! | `Nats-Expected-Stream` | the configured stream: a message no stream or another stream would take is refused, not lost |
//! | [`Es-Event-Id`](header::EVENT_ID) | the event id (a UUID) |
//! | [`Es-Stream-Id`](header::STREAM_ID) | the event's stream |
//! | [`Es-Stream-Version`](header::STREAM_VERSION) | its version in the stream (1, 2, 3 ...) |
//! | [`Es-Event-Type`](header::EVENT_TYPE) | its stable name |
//! | [`Es-Schema-Version`](header::SCHEMA_VERSION) | the payload's schema version |
//! | [`Es-Position`](header::POSITION) | its global position |
//! | [`Es-Transaction`](header::TRANSACTION) | the store's commit-order key (with the position, its place in the log) |
//! | [`Es-Recorded-At`](header::RECORDED_AT) | when the store recorded it, RFC 3339 in UTC |
//! | [`Es-Correlation-Id`](header::CORRELATION_ID) | the correlation id, when there is one |
//! | [`Es-Causation-Id`](header::CAUSATION_ID) | the causation id, when there is one |
//! | [`Es-Metadata-Headers`](header::METADATA_HEADERS) | the metadata's free-form headers as a JSON object, when there are any |
//!
//! Header values never hold a line break: stream ids cannot, and a control character in an event
//! type is written as `%XX` (as in [subjects](crate::subject)).

use std::borrow::Cow;
use std::fmt::Write as _;

use async_nats::jetstream::message::PublishMessage;
use async_nats::{HeaderMap, HeaderValue};
use es_core::RecordedEvent;

/// The names of the headers each message carries; see the [module docs](self).
pub mod header {
    /// The event id (also sent as `Nats-Msg-Id`).
    pub const EVENT_ID: &str = "Es-Event-Id";
    /// The stream the event belongs to.
    pub const STREAM_ID: &str = "Es-Stream-Id";
    /// The event's version within its stream.
    pub const STREAM_VERSION: &str = "Es-Stream-Version";
    /// The event's stable name.
    pub const EVENT_TYPE: &str = "Es-Event-Type";
    /// The schema version the payload was written with.
    pub const SCHEMA_VERSION: &str = "Es-Schema-Version";
    /// The event's global position.
    pub const POSITION: &str = "Es-Position";
    /// The store's commit-order key for the event's transaction.
    pub const TRANSACTION: &str = "Es-Transaction";
    /// When the store recorded the event (RFC 3339, UTC, nanoseconds).
    pub const RECORDED_AT: &str = "Es-Recorded-At";
    /// The correlation id, if any.
    pub const CORRELATION_ID: &str = "Es-Correlation-Id";
    /// The causation id, if any.
    pub const CAUSATION_ID: &str = "Es-Causation-Id";
    /// The free-form metadata headers as a compact JSON object, if any.
    pub const METADATA_HEADERS: &str = "Es-Metadata-Headers";
}

/// The message for `event`, bound for JetStream stream `stream`.
pub(crate) fn for_event(event: &RecordedEvent, stream: &str) -> PublishMessage {
    let id = event.id.to_string();
    let mut headers = HeaderMap::new();
    headers.insert(header::EVENT_ID, id.as_str());
    headers.insert(header::STREAM_ID, event.stream_id.as_str());
    headers.insert(
        header::STREAM_VERSION,
        HeaderValue::from(event.stream_version.get()),
    );
    headers.insert(header::EVENT_TYPE, header_safe(&event.event_type).as_ref());
    headers.insert(
        header::SCHEMA_VERSION,
        HeaderValue::from(event.schema_version),
    );
    headers.insert(header::POSITION, HeaderValue::from(event.position.get()));
    headers.insert(header::TRANSACTION, HeaderValue::from(event.transaction));
    headers.insert(
        header::RECORDED_AT,
        rfc3339_utc(
            event.recorded_at.unix_timestamp(),
            event.recorded_at.nanosecond(),
        ),
    );
    if let Some(correlation) = event.metadata.correlation_id {
        headers.insert(header::CORRELATION_ID, correlation.to_string());
    }
    if let Some(causation) = event.metadata.causation_id {
        headers.insert(header::CAUSATION_ID, causation.to_string());
    }
    if !event.metadata.headers.is_empty() {
        // A map of strings always serialises; compact JSON escapes line breaks inside strings.
        if let Ok(json) = serde_json::to_string(&event.metadata.headers) {
            headers.insert(header::METADATA_HEADERS, json);
        }
    }
    PublishMessage::build()
        .payload(event.payload.get().as_bytes().to_vec().into())
        .headers(headers)
        .message_id(id)
        .expected_stream(stream)
}

/// `value` with control characters (line breaks would end the header) written as `%XX`.
fn header_safe(value: &str) -> Cow<'_, str> {
    if !value.chars().any(char::is_control) {
        return Cow::Borrowed(value);
    }
    let mut safe = String::with_capacity(value.len() + 8);
    for c in value.chars() {
        if c.is_control() {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                let _ = write!(safe, "%{byte:02X}");
            }
        } else {
            safe.push(c);
        }
    }
    Cow::Owned(safe)
}

/// A Unix time as RFC 3339 in UTC with nanoseconds (`1970-01-01T00:00:00.000000000Z`).
fn rfc3339_utc(unix_seconds: i64, nanosecond: u32) -> String {
    let days = unix_seconds.div_euclid(86_400);
    let second_of_day = unix_seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanosecond:09}Z",
        second_of_day / 3600,
        second_of_day / 60 % 60,
        second_of_day % 60,
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(rfc3339_utc(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_utc(951_782_400, 5),
            "2000-02-29T00:00:00.000000005Z"
        );
        assert_eq!(
            rfc3339_utc(1_767_225_599, 999_999_999),
            "2025-12-31T23:59:59.999999999Z"
        );
        assert_eq!(rfc3339_utc(-1, 0), "1969-12-31T23:59:59.000000000Z");
        assert_eq!(
            rfc3339_utc(4_107_542_400, 0),
            "2100-03-01T00:00:00.000000000Z"
        );
    }

    #[test]
    fn header_values_never_hold_line_breaks() {
        assert_eq!(header_safe("OrderPlaced"), "OrderPlaced");
        assert_eq!(header_safe("a\r\nb"), "a%0D%0Ab");
    }
}
