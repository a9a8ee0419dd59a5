//! Setting up the JetStream side: a connection that keeps reconnecting, and a stream whose
//! duplicate window makes re-published events vanish.
//!
//! # The duplicate window
//!
//! The publisher is at least once: events published after its last checkpoint commit are
//! published again after a crash or a failed commit. JetStream drops such a repeat only while
//! the first copy's id is inside the stream's *duplicate window* (two minutes by default). Set
//! the window longer than the longest time a publisher may be down (or stuck retrying) between
//! publishing an event and committing past it; a restart that takes longer puts a second copy on
//! the stream. The window costs memory per message inside it, and must not exceed the stream's
//! `max_age`, if one is set.

use std::time::Duration;

use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{Config, Info};
use async_nats::jetstream::{self, ErrorCode};

use crate::error::{ConnectError, StreamSetupError};

/// Connects to NATS at `address` (such as `"127.0.0.1:4222"` or `"nats://host:4222"`) with the
/// options a long-running publisher wants, and opens a JetStream context on the connection.
///
/// The client keeps trying to reconnect forever after a lost connection (the `async-nats`
/// default), and also when the server is not up yet at start: this returns at once and the
/// first publishes wait for (and, after the context's time-out, fail until) the connection.
/// Build the client with [`async_nats::ConnectOptions`] instead for credentials, TLS or other
/// time-outs.
///
/// # Errors
/// An address that does not parse.
pub async fn connect(address: &str) -> Result<jetstream::Context, ConnectError> {
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(address)
        .await
        .map_err(|source| ConnectError::new(address.to_owned(), source))?;
    Ok(jetstream::new(client))
}

/// Creates JetStream stream `stream` capturing `subjects` with the given duplicate window, or
/// updates an existing one: adds the subjects it lacks and sets the window, leaving its other
/// settings (storage, limits, replicas) as they are.
///
/// For a publisher's own subjects use
/// [`JetStreamPublisher::ensure_stream`](crate::JetStreamPublisher::ensure_stream). See the
/// [module docs](self) for choosing the window.
///
/// # Errors
/// JetStream refused the lookup, creation or update (an invalid name, subjects that overlap
/// another stream's, a window longer than the stream's `max_age`, a server without JetStream).
pub async fn ensure_stream<I, T>(
    jetstream: &jetstream::Context,
    stream: &str,
    subjects: I,
    duplicate_window: Duration,
) -> Result<Info, StreamSetupError>
where
    I: IntoIterator<Item = T>,
    T: Into<String>,
{
    let subjects: Vec<String> = subjects.into_iter().map(Into::into).collect();
    match jetstream.get_stream(stream).await {
        Ok(existing) => {
            let info = existing.cached_info();
            let mut config = info.config.clone();
            let mut changed = config.duplicate_window != duplicate_window;
            config.duplicate_window = duplicate_window;
            for subject in subjects {
                if !config.subjects.contains(&subject) {
                    config.subjects.push(subject);
                    changed = true;
                }
            }
            if !changed {
                return Ok(info.clone());
            }
            jetstream
                .update_stream(config)
                .await
                .map_err(|source| StreamSetupError::Update {
                    stream: stream.to_owned(),
                    source,
                })
        }
        Err(error) if is_not_found(&error.kind()) => {
            let config = Config {
                name: stream.to_owned(),
                subjects,
                duplicate_window,
                ..Config::default()
            };
            jetstream
                .create_stream(config)
                .await
                .map(|created| created.cached_info().clone())
                .map_err(|source| StreamSetupError::Create {
                    stream: stream.to_owned(),
                    source,
                })
        }
        Err(source) => Err(StreamSetupError::Lookup {
            stream: stream.to_owned(),
            source,
        }),
    }
}

fn is_not_found(kind: &GetStreamErrorKind) -> bool {
    matches!(kind, GetStreamErrorKind::JetStream(error) if error.error_code() == ErrorCode::STREAM_NOT_FOUND)
}
