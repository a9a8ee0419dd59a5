//! Publishes the event log to NATS JetStream: every event, at least once, with its event id as
//! the message id so JetStream drops the repeats.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use es_core::MemoryStore;
//! use es_nats::JetStreamPublisher;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new(); // or an es-postgres / es-sqlite store
//! let jetstream = es_nats::connect("127.0.0.1:4222").await?;
//! let publisher = JetStreamPublisher::builder(store, jetstream, "EVENTS")
//!     .subject_prefix("shop.events") // events go to shop.events.{aggregate}.{event type}
//!     .build()?;
//! // A stream capturing `shop.events.>` that de-duplicates within one hour.
//! publisher.ensure_stream(Duration::from_secs(3600)).await?;
//!
//! // Publish what is committed now (a CLI, a test) ...
//! let published = publisher.publish_available().await?;
//! println!("{} events published", published.events);
//!
//! // ... or follow the log until told to stop, riding out NATS restarts.
//! let running = publisher.spawn();
//! // ... and when the service stops:
//! running.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # What is published
//!
//! - Subject: `{prefix}.{aggregate}.{event type}`, the aggregate being the stream id up to its
//!   first `-`; both tokens escaped so that `.`, `*`, `>` and whitespace never change the
//!   subject's shape (see [`subject`]).
//! - Body: the event's JSON payload as stored. Headers: `Nats-Msg-Id` (the event id), the
//!   stream id and version, event type, schema version, log position, record time, correlation
//!   and causation ids (see [`message`]).
//!
//! # Guarantees
//!
//! - At least once: the publisher's checkpoint, kept by the store like a projection's, moves
//!   only past events JetStream has acknowledged. After a crash, what was sent but not
//!   checkpointed is sent again, and JetStream de-duplicates it by message id within the
//!   stream's duplicate window; the window must cover the longest restart (see [`stream`]).
//! - No event skipped: failures are retried with back-off, and the `async-nats` client
//!   reconnects by itself, so [`JetStreamPublisher::run_until`] carries on through a NATS
//!   restart (see [`publisher`]).

pub mod error;
pub mod message;
pub mod publisher;
pub mod stream;
pub mod subject;

pub use error::{ConfigError, ConnectError, PublisherError, StreamSetupError};
pub use publisher::{JetStreamPublisher, Published, PublisherBuilder, PublisherTask};
pub use stream::{connect, ensure_stream};

/// The `async-nats` version this crate is built on, for building clients and contexts that
/// match.
pub use async_nats;
