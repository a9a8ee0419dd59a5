//! The command log: [`CommandLog`] finds idempotent commands by id, and [`CommandSession`] runs
//! one command's load, append and retries on what the store chooses.
//!
//!
//! A command reads its stream, decides and appends, so a store that takes a connection from a
//! pool per call takes two for one command. A checkout is not free (es-postgres's pool pings a
//! connection as it hands it out, and the second checkout lands on another server process
//! than the first). A session lets a store keep the connection of the load for the append
//! that follows, and for the load and append of a retry.
//!
//! A session never holds what it took while the command waits for anything else: the command
//! path calls [`CommandSession::release`] before a handler that awaits a service, and before
//! any call it makes on the store itself. So a command holds at most one connection at a
//! time, and commands racing on a full pool never wait for one another.

use std::future::Future;
use std::ops::ControlFlow;

use uuid::Uuid;

use crate::store::command_record::CommandRecord;
use crate::store::error::{AppendError, LoadError};
use crate::store::log::{AppendRequest, Committed, EventLog, StoredEvent};
use crate::stream::{StreamId, StreamVersion};

/// Keeps the record of every idempotent command (see [`AppendRequest::with_command_id`]), and
/// opens the sessions the command path runs on.
pub trait CommandLog: EventLog {
    /// The record of an idempotent command, if one with this id was appended.
    ///
    /// # Errors
    /// Back-end failures.
    fn find_command(
        &self,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<CommandRecord>, LoadError>> + Send;

    /// A session for one command's load, append and retries (see [`CommandSession`]). The
    /// default runs each call on the store, as its own methods do; a store with a connection
    /// pool may keep one connection for the whole command instead.
    fn command_session(&self) -> impl CommandSession + '_ {
        PerCall(self)
    }
}

/// One command's reads and writes of its stream, opened by [`CommandLog::command_session`].
///
/// Each method keeps the contract of the [`EventLog`] method of the same name; a session
/// only chooses what they run on. Dropping it gives back whatever it holds.
pub trait CommandSession: Send {
    /// As [`EventLog::fold_stream`].
    ///
    /// # Errors
    /// As [`EventLog::fold_stream`].
    fn fold_stream<'a, F>(
        &'a mut self,
        stream_id: &'a StreamId,
        after: StreamVersion,
        visit: F,
    ) -> impl Future<Output = Result<(), LoadError>> + Send + 'a
    where
        F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError> + Send + 'a;

    /// As [`EventLog::append`].
    ///
    /// # Errors
    /// As [`EventLog::append`].
    fn append(
        &mut self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<Committed, AppendError>> + Send + '_;

    /// As [`CommandLog::find_command`].
    ///
    /// # Errors
    /// As [`CommandLog::find_command`].
    fn find_command(
        &mut self,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<CommandRecord>, LoadError>> + Send + '_;

    /// Gives back what the session holds (a pooled connection), because the command is about
    /// to wait for something else; the next call takes it anew.
    fn release(&mut self);
}

/// The session of a store that runs every call on its own: each method calls the store's.
#[derive(Debug)]
pub(crate) struct PerCall<'s, S>(pub(crate) &'s S);

impl<S: EventLog + CommandLog> CommandSession for PerCall<'_, S> {
    fn fold_stream<'a, F>(
        &'a mut self,
        stream_id: &'a StreamId,
        after: StreamVersion,
        visit: F,
    ) -> impl Future<Output = Result<(), LoadError>> + Send + 'a
    where
        F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError> + Send + 'a,
    {
        self.0.fold_stream(stream_id, after, visit)
    }

    fn append(
        &mut self,
        request: AppendRequest,
    ) -> impl Future<Output = Result<Committed, AppendError>> + Send + '_ {
        self.0.append(request)
    }

    fn find_command(
        &mut self,
        command_id: Uuid,
    ) -> impl Future<Output = Result<Option<CommandRecord>, LoadError>> + Send + '_ {
        self.0.find_command(command_id)
    }

    fn release(&mut self) {}
}
