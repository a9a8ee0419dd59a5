//! Building a store from its options: the pool, the schema name checked and quoted, the
//! migrations, the notifier.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use es_core::{BackendError, BackendErrorKind};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::sync::watch;
use uuid::Uuid;

use crate::announce::Announcer;
use crate::error::{BACKEND, classify, millis};
use crate::options::PostgresOptions;
use crate::sql::Queries;
use crate::store::{Inner, PostgresStore};

impl PostgresOptions {
    /// Opens a pool to `url` and builds the store on it.
    ///
    /// # Errors
    /// [`BackendErrorKind::Unavailable`] when the database cannot be reached,
    /// [`BackendErrorKind::InvalidInput`] for a bad schema name,
    /// [`BackendErrorKind::SchemaMismatch`] when the schema was migrated by a newer version.
    pub async fn connect(self, url: &str) -> Result<PostgresStore, BackendError> {
        let pool = PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.connect_timeout)
            .connect(url)
            .await
            .map_err(|error| classify("connect to the database", error))?;
        self.with_pool(pool).await
    }

    /// Builds the store on an existing pool (shared with the application's own queries).
    ///
    /// # Errors
    /// As [`PostgresOptions::connect`].
    pub async fn with_pool(self, pool: PgPool) -> Result<PostgresStore, BackendError> {
        let quoted_schema = quote_schema(&self.schema)?;
        let (head, _) = watch::channel(0);
        let store = PostgresStore {
            pool,
            inner: Arc::new(Inner {
                queries: Queries::new(&quoted_schema),
                channel: format!("es_events_{}", self.schema),
                quoted_schema,
                head: Arc::new(head),
                tasks: Mutex::new(Vec::new()),
                listening: AtomicBool::new(false),
                registered: std::sync::OnceLock::new(),
                announcer: Arc::new(Announcer::new()),
                instance: Uuid::now_v7().to_string(),
                begin_batch: format!(
                    "BEGIN; SET LOCAL idle_in_transaction_session_timeout = {}",
                    millis(self.batch_idle_timeout)
                ),
            }),
        };
        if self.run_migrations {
            store.migrate().await?;
        }
        store.start_notifier();
        Ok(store)
    }
}

/// Checks a schema name and returns it quoted. Only a safe subset is accepted, so the name can
/// be spliced into SQL text: it never comes from a user at run time, but it is still checked.
pub(crate) fn quote_schema(schema: &str) -> Result<String, BackendError> {
    let valid = !schema.is_empty()
        && schema.len() <= 48
        && schema.starts_with(|c: char| c.is_ascii_lowercase())
        && schema
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !valid {
        return Err(BackendError::new(
            BACKEND,
            BackendErrorKind::InvalidInput,
            format!(
                "schema name `{schema}` is not valid: use lower-case letters, digits and `_`, starting with a letter, at most 48 bytes"
            ),
        ));
    }
    Ok(format!("\"{schema}\""))
}
