//! Which NATS subject an event is published on: `{prefix}.{aggregate}.{event type}`.
//!
//! The aggregate is the part of the event's stream id before the first `-` (stream ids are
//! `{aggregate}-{id}`, see [`StreamId::for_aggregate`](es_core::StreamId::for_aggregate)); a
//! stream id without a `-` is its own aggregate. So `order-42`'s `OrderPlaced` goes to
//! `es.events.order.OrderPlaced`, and a consumer of every order event subscribes to
//! `es.events.order.>`.
//!
//! # Escaping
//!
//! Each of the two tokens is escaped so that it is always exactly one valid subject token,
//! whatever the stream id or event type holds:
//!
//! - `.`, `*`, `>`, `%`, whitespace and control characters become `%XX`, one per byte of their
//!   UTF-8 encoding, with upper-case hex digits (`order.paid` becomes `order%2Epaid`, `a b`
//!   becomes `a%20b`);
//! - an empty token becomes a lone `%` (which escaping never produces otherwise);
//! - everything else, non-ASCII letters included, is kept as is.
//!
//! The mapping is injective: two different aggregates (or event types) never share a token.
//! [`token`] computes it, for consumers that build subject filters.

use std::borrow::Cow;
use std::fmt::Write as _;

use es_core::RecordedEvent;

use crate::error::ConfigError;

/// The subject prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "es.events";

/// The token for the empty string.
const EMPTY_TOKEN: &str = "%";

/// Whether `c` cannot appear unescaped in a token.
fn needs_escape(c: char) -> bool {
    matches!(c, '.' | '*' | '>' | '%') || c.is_whitespace() || c.is_control()
}

/// `raw` as exactly one NATS subject token; see the [module docs](self) for the mapping.
///
/// ```
/// assert_eq!(es_nats::subject::token("OrderPlaced"), "OrderPlaced");
/// assert_eq!(es_nats::subject::token("order.paid"), "order%2Epaid");
/// assert_eq!(es_nats::subject::token("a b*>"), "a%20b%2A%3E");
/// assert_eq!(es_nats::subject::token(""), "%");
/// ```
#[must_use]
pub fn token(raw: &str) -> Cow<'_, str> {
    if raw.is_empty() {
        return Cow::Borrowed(EMPTY_TOKEN);
    }
    if !raw.chars().any(needs_escape) {
        return Cow::Borrowed(raw);
    }
    let mut escaped = String::with_capacity(raw.len() + 8);
    for c in raw.chars() {
        if needs_escape(c) {
            let mut bytes = [0; 4];
            for byte in c.encode_utf8(&mut bytes).bytes() {
                // Writing to a `String` cannot fail.
                let _ = write!(escaped, "%{byte:02X}");
            }
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// The aggregate a stream id belongs to: the part before the first `-`, or the whole id.
#[must_use]
pub fn aggregate_of(stream_id: &str) -> &str {
    stream_id
        .split_once('-')
        .map_or(stream_id, |(aggregate, _)| aggregate)
}

/// The subject `event` is published on under `prefix`: `{prefix}.{aggregate}.{event type}`,
/// both tokens escaped by [`token`].
#[must_use]
pub fn for_event(prefix: &str, event: &RecordedEvent) -> String {
    format!(
        "{prefix}.{}.{}",
        token(aggregate_of(event.stream_id.as_str())),
        token(&event.event_type)
    )
}

/// Checks that `prefix` is a usable subject prefix: dot-separated, non-empty tokens without
/// wildcards, whitespace or control characters.
pub(crate) fn check_prefix(prefix: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::InvalidSubjectPrefix {
        prefix: prefix.to_owned(),
        reason,
    };
    if prefix.is_empty() {
        return Err(invalid("it is empty"));
    }
    for part in prefix.split('.') {
        if part.is_empty() {
            return Err(invalid(
                "it has an empty token (a leading, trailing or double `.`)",
            ));
        }
        if part.contains(['*', '>']) {
            return Err(invalid("it holds a wildcard (`*` or `>`)"));
        }
        if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("it holds whitespace or a control character"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tokens_are_kept() {
        assert!(matches!(token("OrderPlaced"), Cow::Borrowed("OrderPlaced")));
        assert_eq!(token("bestellung_ä"), "bestellung_ä");
    }

    #[test]
    fn separators_wildcards_whitespace_and_percent_are_escaped() {
        assert_eq!(token("order.paid"), "order%2Epaid");
        assert_eq!(token("*"), "%2A");
        assert_eq!(token(">"), "%3E");
        assert_eq!(token("a\tb\nc"), "a%09b%0Ac");
        assert_eq!(token("100%"), "100%25");
        // A non-breaking space is whitespace too; its two UTF-8 bytes are escaped.
        assert_eq!(token("a\u{a0}b"), "a%C2%A0b");
    }

    #[test]
    fn the_mapping_is_injective_on_tricky_inputs() {
        let inputs = ["", "%", "%25", ".", "%2E", "_", "a.b", "a%2Eb", " ", "%20"];
        let tokens: std::collections::BTreeSet<_> =
            inputs.iter().map(|raw| token(raw).into_owned()).collect();
        assert_eq!(tokens.len(), inputs.len());
    }

    #[test]
    fn aggregate_is_the_part_before_the_first_dash() {
        assert_eq!(aggregate_of("order-42"), "order");
        assert_eq!(aggregate_of("order-42-7"), "order");
        assert_eq!(aggregate_of("singleton"), "singleton");
        assert_eq!(aggregate_of("-x"), "");
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(check_prefix("es.events").is_ok());
        assert!(check_prefix("events").is_ok());
        for bad in [
            "",
            ".es",
            "es.",
            "es..events",
            "es.*",
            "es.>",
            "es events",
            "es.a>b",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
