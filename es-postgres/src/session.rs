//! One pooled connection for a whole command (see [`es_core::CommandSession`]).
//!
//! The command path loads a stream, decides and appends, and retries both on a conflict. Each
//! checkout from sqlx's pool costs a round trip (it pings the connection as it hands it out,
//! and sends a `Sync` as it takes it back), and the pool hands out the connection idle
//! longest, so a second checkout runs the append on another backend than the load. The
//! session takes a connection at its first call and keeps it until the command releases it
//! (before a handler that awaits, and before any call on the store itself) or ends.

use std::ops::ControlFlow;

use es_core::store::CommandRecord;
use es_core::{
    AppendError, AppendRequest, BackendError, CommandSession, Committed, LoadError, StoredEvent,
    StreamId, StreamVersion,
};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};
use uuid::Uuid;

use crate::store::PostgresStore;

/// [`PostgresStore`]'s [`CommandSession`]: the connection it holds, if any.
pub(crate) struct Session<'s> {
    store: &'s PostgresStore,
    connection: Option<PoolConnection<Postgres>>,
}

impl<'s> Session<'s> {
    /// A session that holds nothing yet.
    pub(crate) const fn new(store: &'s PostgresStore) -> Self {
        Self {
            store,
            connection: None,
        }
    }

    /// The held connection, taken from the pool first if none is held.
    async fn connection(
        &mut self,
        context: impl FnOnce() -> String,
    ) -> Result<&mut PgConnection, BackendError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            // Boxed: sqlx's acquire future is 8.6 KB, and every future the command path
            // nests around this one would carry it and copy it as it starts.
            None => Box::pin(self.store.acquire(context)).await?,
        };
        Ok(&mut **self.connection.insert(connection))
    }
}

impl CommandSession for Session<'_> {
    async fn fold_stream<'a, F>(
        &'a mut self,
        stream_id: &'a StreamId,
        after: StreamVersion,
        visit: F,
    ) -> Result<(), LoadError>
    where
        F: FnMut(StoredEvent<'_>) -> Result<ControlFlow<()>, LoadError> + Send + 'a,
    {
        let store = self.store;
        let connection = self
            .connection(|| format!("load stream `{stream_id}`"))
            .await?;
        store.fold_on(connection, stream_id, after, visit).await
    }

    async fn append(&mut self, request: AppendRequest) -> Result<Committed, AppendError> {
        let store = self.store;
        let connection = self
            .connection(|| format!("append to stream `{}`", request.stream_id))
            .await?;
        store.append_committing(connection, &request).await
    }

    async fn find_command(&mut self, command_id: Uuid) -> Result<Option<CommandRecord>, LoadError> {
        let store = self.store;
        let connection = self
            .connection(|| format!("find command {command_id}"))
            .await?;
        store.command_on(connection, command_id).await
    }

    fn release(&mut self) {
        self.connection = None;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use es_core::{
        Aggregate, AggregateSettings, Apply, CommandError, Events, HandleAsync, Registry, event,
    };
    use sqlx::postgres::{PgPool, PgPoolOptions};

    use crate::PostgresStore;
    use crate::test_common::{self as common, Account, Deposit};

    /// A pool of `connections` on the test server that counts the idle connections it hands
    /// out, and gives up waiting for one after 5 s.
    async fn counting_pool(connections: u32) -> (PgPool, Arc<AtomicUsize>) {
        let checkouts = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&checkouts);
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(5))
            .before_acquire(move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                Box::pin(async { Ok(true) })
            })
            .connect(&common::database_url())
            .await
            .unwrap();
        (pool, checkouts)
    }

    /// A store in a fresh schema on `pool`, whose announcements take no connection.
    async fn silent_store(pool: &PgPool, schemas: &common::Schemas) -> PostgresStore {
        let store = PostgresStore::options()
            .schema(schemas.fresh())
            .with_pool(pool.clone())
            .await
            .unwrap();
        store.silence_announcements();
        store
    }

    /// A command loads and appends on one checkout, to a new stream or an existing one.
    #[tokio::test]
    async fn a_command_takes_one_connection_for_its_load_and_append() {
        common::with_schemas(1, |_, schemas| async move {
            let (pool, checkouts) = counting_pool(2).await;
            let app = Registry::new(silent_store(&pool, &schemas).await)
                .aggregate::<Account>()
                .build()
                .await
                .unwrap();
            app.execute::<Account>("existing", Deposit(1))
                .await
                .unwrap();
            checkouts.store(0, Ordering::Relaxed);
            for n in 0..5 {
                app.execute::<Account>("existing", Deposit(n))
                    .await
                    .unwrap();
                app.execute::<Account>(format!("new-{n}"), Deposit(n))
                    .await
                    .unwrap();
            }
            assert_eq!(checkouts.load(Ordering::Relaxed), 10);
            let loaded = app.load::<Account>("existing").await.unwrap();
            assert_eq!(loaded.version.get(), 6);
        })
        .await;
    }

    #[event]
    struct Checked {
        answer: i64,
    }

    /// Decided by asking the database, through the same pool the store uses.
    #[derive(Clone)]
    struct CheckWithTheDatabase;

    #[derive(Debug, thiserror::Error)]
    #[error("the handler's query failed: {0}")]
    struct QueryFailed(String);

    #[derive(Debug, Default, Aggregate)]
    #[aggregate(
        name = "checker",
        error = QueryFailed,
        events(Checked),
        async_commands(CheckWithTheDatabase),
        services = PgPool
    )]
    struct Checker;

    impl Apply<Checked> for Checker {
        fn apply(&mut self, _: &Checked) {}
    }

    impl HandleAsync<CheckWithTheDatabase> for Checker {
        async fn handle_async(
            &self,
            _: CheckWithTheDatabase,
            pool: &PgPool,
        ) -> Result<Events<Self>, QueryFailed> {
            let answer: i64 = sqlx::query_scalar("SELECT 42::int8")
                .fetch_one(pool)
                .await
                .map_err(|error| QueryFailed(error.to_string()))?;
            Ok(Events::one(Checked { answer }))
        }
    }

    /// A handler that awaits the store's own pool gets a connection even when the pool has only
    /// one: the command gives its load's connection back while the handler waits, and takes
    /// one again for the append (three checkouts).
    #[tokio::test]
    async fn a_handler_that_awaits_gets_the_connection_its_command_loaded_on() {
        common::with_schemas(1, |_, schemas| async move {
            let (pool, checkouts) = counting_pool(1).await;
            let app = Registry::new(silent_store(&pool, &schemas).await)
                .aggregate_with::<Checker>(AggregateSettings::new(pool.clone()))
                .build()
                .await
                .unwrap();
            app.execute::<Checker>("one", CheckWithTheDatabase)
                .await
                .unwrap();
            checkouts.store(0, Ordering::Relaxed);
            let executed = app
                .execute::<Checker>("one", CheckWithTheDatabase)
                .await
                .unwrap();
            assert_eq!(executed.version.get(), 2);
            assert_eq!(checkouts.load(Ordering::Relaxed), 3);
        })
        .await;
    }

    /// Sixteen tasks of commands on one stream, over a pool of two connections, every other
    /// command idempotent and sent twice: every command lands once, and no command waits for
    /// a second connection while it holds one (a wait the pool would end after 5 s with an
    /// error).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn contended_commands_on_a_small_pool_all_land() {
        const TASKS: i64 = 16;
        const PER_TASK: i64 = 5;
        common::with_schemas(1, |_, schemas| async move {
            let (pool, _) = counting_pool(2).await;
            let app = Registry::new(silent_store(&pool, &schemas).await)
                .aggregate_with::<Account>(AggregateSettings::new(()).max_attempts(10_000))
                .build()
                .await
                .unwrap();
            let app = Arc::new(app);
            let tasks: Vec<_> = (0..TASKS)
                .map(|task| {
                    let app = Arc::clone(&app);
                    tokio::spawn(async move {
                        for n in 0..PER_TASK {
                            let cents = task * 100 + n;
                            if n % 2 == 0 {
                                app.execute::<Account>("shared", Deposit(cents))
                                    .await
                                    .unwrap();
                                continue;
                            }
                            let command_id = uuid::Uuid::new_v4();
                            let first = app
                                .execute::<Account>("shared", Deposit(cents))
                                .command_id(command_id)
                                .await
                                .unwrap();
                            let again = app
                                .execute::<Account>("shared", Deposit(cents))
                                .command_id(command_id)
                                .await;
                            match again {
                                Ok(replayed) => {
                                    assert!(replayed.replayed);
                                    assert_eq!(replayed.version, first.version);
                                }
                                Err(error @ CommandError::Conflict { .. }) => {
                                    panic!("a repeated command conflicted: {error}")
                                }
                                Err(error) => panic!("a repeated command failed: {error}"),
                            }
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let loaded = app.load::<Account>("shared").await.unwrap();
            assert_eq!(
                loaded.version.get(),
                u64::try_from(TASKS * PER_TASK).unwrap()
            );
        })
        .await;
    }
}
