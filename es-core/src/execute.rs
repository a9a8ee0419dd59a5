//! [`Execute`]: a command on its way, built by [`App::execute`] and run when awaited.

use std::any::TypeId;
use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;

use uuid::Uuid;

use crate::aggregate::Aggregate;
use crate::app::App;
use crate::command::error::CommandError;
use crate::command::outcome::Executed;
use crate::command::run::{self, Runway};
use crate::command::settings::{AggregateSettings, CommandOptions};
use crate::metadata::Metadata;
use crate::store::event_store::EventStore;
use crate::stream::{ExpectedVersion, StreamId};

impl<S: EventStore> App<S> {
    /// Starts a command for aggregate `id` of type `A`; `.await` it, after setting options if
    /// needed:
    ///
    /// ```text
    /// app.execute::<Order>(id, AddItem { .. }).expected_version(v).command_id(key).await?;
    /// ```
    pub fn execute<A: Aggregate>(
        &self,
        id: impl fmt::Display,
        command: impl Into<A::Command> + Clone + Send + 'static,
    ) -> Execute<'_, S, A, impl Into<A::Command> + Clone + Send + 'static> {
        Execute {
            app: self,
            stream_id: StreamId::for_aggregate(A::NAME, id),
            command,
            options: CommandOptions::default(),
            unfingerprinted: None,
            aggregate: std::marker::PhantomData,
        }
    }
}

/// A command on its way: set options, then `.await` it.
#[must_use = "a command does nothing until it is awaited"]
pub struct Execute<'a, S, A: Aggregate, C> {
    app: &'a App<S>,
    stream_id: Result<StreamId, crate::stream::InvalidStreamId>,
    command: C,
    options: CommandOptions,
    /// Why the command could not be fingerprinted for its id, if it could not.
    unfingerprinted: Option<crate::fingerprint::FingerprintError>,
    aggregate: std::marker::PhantomData<fn() -> A>,
}

impl<S, A: Aggregate, C> Execute<'_, S, A, C> {
    /// Requires the aggregate to be at `expected`; a mismatch is returned as
    /// [`CommandError::Conflict`] (or [`CommandError::NotFound`] for
    /// [`ExpectedVersion::StreamExists`]) without retrying.
    pub const fn expected_version(mut self, expected: ExpectedVersion) -> Self {
        self.options.expected = expected;
        self
    }

    /// Requires the aggregate to exist ([`CommandError::NotFound`] otherwise).
    pub const fn existing(self) -> Self {
        self.expected_version(ExpectedVersion::StreamExists)
    }

    /// Makes the command idempotent under `command_id` without a fingerprint: for ids that
    /// name one command by construction (a process manager's, derived from the event it
    /// handles), whose command may change shape between a run and its replay.
    pub(crate) const fn command_id_by_construction(mut self, command_id: Uuid) -> Self {
        self.options.command_id = Some(command_id);
        self
    }

    /// Replaces the metadata stored with the command's events.
    pub fn metadata(mut self, metadata: Metadata) -> Self {
        self.options.metadata = metadata;
        self
    }

    /// Sets the correlation id stored with the command's events.
    pub const fn correlation_id(mut self, id: Uuid) -> Self {
        self.options.metadata.correlation_id = Some(id);
        self
    }

    /// Sets the causation id stored with the command's events.
    pub const fn causation_id(mut self, id: Uuid) -> Self {
        self.options.metadata.causation_id = Some(id);
        self
    }

    /// Adds a header stored with the command's events.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.options
            .metadata
            .headers
            .insert(name.into(), value.into());
        self
    }
}

impl<S, A: Aggregate, C: Into<A::Command> + Clone> Execute<'_, S, A, C> {
    /// Makes the command idempotent under `command_id` (an idempotency key): the command is
    /// recorded with it, with a fingerprint of the command, and the same id with the same
    /// command returns the first result (or the same refusal) without deciding again; the same
    /// id with another command is refused ([`CommandError::FingerprintMismatch`],
    /// [`CommandError::CommandIdReused`]). See [`command`](mod@crate::command) for the whole
    /// contract, beside Stripe's idempotency keys.
    ///
    /// The fingerprint is taken from the command's serde form, so every command of the
    /// aggregate must be `Serialize` (`#[derive(Aggregate)]` then makes its command enum
    /// `Serialize`).
    pub fn command_id(mut self, command_id: Uuid) -> Self
    where
        A::Command: serde::Serialize,
    {
        self.options.command_id = Some(command_id);
        let command: A::Command = self.command.clone().into();
        match crate::fingerprint::CommandFingerprint::of(A::NAME, &command) {
            Ok(fingerprint) => self.options.fingerprint = Some(fingerprint),
            Err(error) => self.unfingerprinted = Some(error),
        }
        self
    }
}

impl<'a, S, A, C> IntoFuture for Execute<'a, S, A, C>
where
    S: EventStore,
    A: Aggregate,
    C: Into<A::Command> + Clone + Send + 'static,
{
    type Output = Result<Executed<A>, CommandError<A::Error>>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let stream_id = self.stream_id.map_err(|source| CommandError::InvalidId {
                aggregate: A::NAME,
                source,
            })?;
            if let Some(source) = self.unfingerprinted {
                return Err(CommandError::Fingerprint {
                    aggregate: A::NAME,
                    source,
                });
            }
            let settings = self
                .app
                .inner
                .settings
                .get(&TypeId::of::<A>())
                .and_then(|settings| settings.downcast_ref::<AggregateSettings<A>>())
                .ok_or(CommandError::NotRegistered { aggregate: A::NAME })?;
            let runway = Runway {
                store: &self.app.inner.store,
                settings,
                queue: &self.app.inner.queue,
            };
            run::execute(runway, stream_id, self.command, self.options).await
        })
    }
}
