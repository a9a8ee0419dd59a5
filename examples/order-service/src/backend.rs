//! Where the service keeps its events and read model: an SQLite file by default, PostgreSQL
//! when the database URL names one. The HTTP layer and the command-line tools are generic over
//! [`Backend`]; the two implementations differ only in their store and pool types.

use std::future::Future;
use std::sync::Arc;

use es_core::{App, BackendError, CheckpointStore, Registry, RegistryError, RunnerSettings};
use es_postgres::PostgresStore;
use es_sqlite::SqliteStore;
use serde::Serialize;

use crate::domain::{Order, OrderStatus};
use crate::product::Product;
use crate::shipment::{Shipment, Shipping};
use crate::summary_table::{OrderSummaryTable, SummarySql};

/// The database the service uses when none is named.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://orders.db";

/// One row of the `order_summary` read model, as `GET /orders` returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SummaryRow {
    /// The order id.
    #[schema(format = Uuid)]
    #[sqlx(rename = "order_id")]
    pub id: String,
    /// Who placed it.
    pub customer_id: String,
    /// `placed`, `paid`, `shipped` or `cancelled`.
    #[schema(value_type = crate::domain::OrderStatus)]
    pub status: String,
    /// Units over all lines.
    pub item_count: i64,
    /// The total, in cents.
    pub total_cents: i64,
    /// The order's version the row reflects.
    pub version: i64,
}

/// What the read model is asked for.
#[derive(Clone, Debug, Default)]
pub struct SummaryFilter {
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
    /// Only this customer's orders.
    pub customer_id: Option<String>,
    /// At most this many rows.
    pub limit: u32,
    /// Only orders whose id sorts after this one (the last row of the page before).
    pub after: Option<String>,
}

/// Counts over the whole store, for `stats` and `/health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StoreCounts {
    /// Events in the log.
    pub events: i64,
    /// Streams with at least one event.
    pub streams: i64,
}

/// Why the service could not open its database.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store could not be opened or migrated.
    #[error("cannot open the event store at {url}")]
    Store {
        /// The URL, without its password.
        url: String,
        /// Why.
        #[source]
        source: BackendError,
    },
    /// The read model's tables could not be created.
    #[error("cannot create the order_summary tables")]
    ReadModel(#[source] sqlx::Error),
    /// The aggregates and projections could not be wired.
    #[error("cannot register the aggregates and projections")]
    Registry(#[source] RegistryError),
    /// A read-only tool found no event store where it was pointed (and created none).
    #[error("no event store in {place}")]
    NoStore {
        /// The schema and URL, or the file.
        place: String,
    },
    /// A read-only tool could not tell whether the event store is there.
    #[error("cannot look for the event store in {place}")]
    Lookup {
        /// The schema and URL, or the file.
        place: String,
        /// Why.
        #[source]
        source: sqlx::Error,
    },
}

/// A store with its read model: what the HTTP handlers and tools need.
pub trait Backend: Clone + Send + Sync + 'static {
    /// The event store.
    type Store: CheckpointStore;

    /// `sqlite` or `postgres`.
    fn kind(&self) -> &'static str;

    /// The wired application.
    fn app(&self) -> &App<Self::Store>;

    /// Rows of the `order_summary` read model.
    fn summaries(
        &self,
        filter: SummaryFilter,
    ) -> impl Future<Output = Result<Vec<SummaryRow>, sqlx::Error>> + Send;

    /// Events and streams in the store.
    fn counts(&self) -> impl Future<Output = Result<StoreCounts, sqlx::Error>> + Send;

    /// What kind of failure an error of this backend's own queries is, as its store classifies
    /// its own (so that every route maps a database that is down to the same answer).
    fn error_kind(error: &sqlx::Error) -> es_core::BackendErrorKind;
}

/// The service on an SQLite file.
#[derive(Clone, Debug)]
pub struct SqliteBackend {
    app: App<SqliteStore>,
    sql: Arc<SummarySql>,
}

/// The service on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PostgresBackend {
    app: App<PostgresStore>,
    sql: Arc<SummarySql>,
}

/// Either backend, as chosen by the database URL.
#[derive(Clone, Debug)]
pub enum AnyBackend {
    /// An SQLite file.
    Sqlite(SqliteBackend),
    /// A PostgreSQL database.
    Postgres(PostgresBackend),
}

/// How to open the backend.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// `sqlite://file.db`, a file path, or `postgres://...`.
    pub database_url: String,
    /// The PostgreSQL schema for the events and the read model.
    pub postgres_schema: String,
    /// How projections run.
    pub runner: RunnerSettings,
    /// For tools that only read (`stats`, `events`): create, migrate and change nothing, and
    /// fail with [`OpenError::NoStore`] where there is no event store.
    pub read_only: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            postgres_schema: "orders".to_owned(),
            runner: RunnerSettings::default(),
            read_only: false,
        }
    }
}

/// The URL with any password replaced, for messages and logs.
#[must_use]
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Whether `url` names a PostgreSQL database.
#[must_use]
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

impl AnyBackend {
    /// Opens the store named by the URL, creates the read model's tables and wires the
    /// `Order` aggregate and the `order_summary` projection.
    ///
    /// # Errors
    /// [`OpenError`] saying which step failed.
    pub async fn open(options: OpenOptions) -> Result<Self, OpenError> {
        let store_error = |source| OpenError::Store {
            url: redact(&options.database_url),
            source,
        };
        if is_postgres(&options.database_url) {
            let store = PostgresStore::options()
                .schema(options.postgres_schema.clone())
                .run_migrations(!options.read_only)
                .connect(&options.database_url)
                .await
                .map_err(store_error)?;
            let sql = Arc::new(SummarySql::new(&format!("\"{}\".", store.schema())));
            if options.read_only {
                let place = || {
                    format!(
                        "schema `{}` of {}",
                        store.schema(),
                        redact(&options.database_url)
                    )
                };
                let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                    .bind(format!("\"{}\".events", store.schema()))
                    .fetch_one(store.pool())
                    .await
                    .map_err(|source| OpenError::Lookup {
                        place: place(),
                        source,
                    })?;
                if found.is_none() {
                    return Err(OpenError::NoStore { place: place() });
                }
            } else {
                create_read_model(store.pool(), &sql).await?;
            }
            let app = wire(store, &sql, options.runner).await?;
            Ok(Self::Postgres(PostgresBackend { app, sql }))
        } else {
            let place = || format!("the file {}", redact(&options.database_url));
            let store = SqliteStore::options()
                .create_if_missing(!options.read_only)
                .run_migrations(!options.read_only)
                .connect(&options.database_url)
                .await
                .map_err(|source| {
                    // A missing file, for a tool that creates none.
                    if options.read_only && source.kind() == es_core::BackendErrorKind::Unavailable
                    {
                        OpenError::NoStore { place: place() }
                    } else {
                        store_error(source)
                    }
                })?;
            let sql = Arc::new(SummarySql::new(""));
            if options.read_only {
                let found: Option<i64> = sqlx::query_scalar(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'",
                )
                .fetch_optional(store.readers())
                .await
                .map_err(|source| OpenError::Lookup {
                    place: place(),
                    source,
                })?;
                if found.is_none() {
                    return Err(OpenError::NoStore { place: place() });
                }
            } else {
                create_read_model(store.writer(), &sql).await?;
            }
            let app = wire(store, &sql, options.runner).await?;
            Ok(Self::Sqlite(SqliteBackend { app, sql }))
        }
    }
}

/// Creates the read model's tables where they are missing.
async fn create_read_model<'p, D: sqlx::Database>(
    pool: &'p sqlx::Pool<D>,
    sql: &SummarySql,
) -> Result<(), OpenError>
where
    &'p sqlx::Pool<D>: sqlx::Executor<'p, Database = D>,
    for<'q> <D as sqlx::Database>::Arguments: sqlx::IntoArguments<D>,
{
    for statement in &sql.create {
        sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
            .execute(pool)
            .await
            .map_err(OpenError::ReadModel)?;
    }
    Ok(())
}

async fn wire<S>(
    store: S,
    sql: &Arc<SummarySql>,
    runner: RunnerSettings,
) -> Result<App<S>, OpenError>
where
    S: CheckpointStore,
    OrderSummaryTable: es_core::Dispatch<S::Transaction>,
{
    Registry::new(store)
        .aggregate::<Order>()
        .aggregate::<Product>()
        .aggregate::<Shipment>()
        .projection(OrderSummaryTable::new(Arc::clone(sql)))
        .process_manager(Shipping)
        .runner_settings(runner)
        .build()
        .await
        .map_err(OpenError::Registry)
}

/// The queries are the same text on both databases; only the pool differs.
macro_rules! backend_queries {
    ($backend:ty, $store:ty, $kind:literal, $readers:ident, $error_kind:path) => {
        impl Backend for $backend {
            type Store = $store;

            fn error_kind(error: &sqlx::Error) -> es_core::BackendErrorKind {
                $error_kind(error)
            }

            fn kind(&self) -> &'static str {
                $kind
            }

            fn app(&self) -> &App<$store> {
                &self.app
            }

            async fn summaries(
                &self,
                filter: SummaryFilter,
            ) -> Result<Vec<SummaryRow>, sqlx::Error> {
                sqlx::query_as::<_, SummaryRow>(sqlx::AssertSqlSafe(self.sql.list.as_str()))
                    .bind(filter.status.map(OrderStatus::as_str))
                    .bind(filter.customer_id)
                    .bind(i64::from(filter.limit))
                    .bind(filter.after)
                    .fetch_all(self.app.store().$readers())
                    .await
            }

            async fn counts(&self) -> Result<StoreCounts, sqlx::Error> {
                let events_table = self.events_table();
                let (events, streams): (i64, i64) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*), COUNT(DISTINCT stream_id) FROM {events_table}"
                )))
                .fetch_one(self.app.store().$readers())
                .await?;
                Ok(StoreCounts { events, streams })
            }
        }
    };
}

backend_queries!(
    SqliteBackend,
    SqliteStore,
    "sqlite",
    readers,
    es_sqlite::error_kind
);
backend_queries!(
    PostgresBackend,
    PostgresStore,
    "postgres",
    pool,
    es_postgres::error_kind
);

impl SqliteBackend {
    const fn events_table(&self) -> &'static str {
        let _ = self;
        "events"
    }
}

impl PostgresBackend {
    fn events_table(&self) -> String {
        format!("\"{}\".events", self.app.store().schema())
    }
}
