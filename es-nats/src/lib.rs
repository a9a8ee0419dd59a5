//! Publishing the event log to NATS JetStream (work in progress).
