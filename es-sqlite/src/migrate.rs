//! The embedded migrations (`migrations/`), applied on the writer connection.

use es_core::{BackendError, BackendErrorKind};
use sqlx::migrate::MigrateError;
use sqlx::sqlite::SqlitePool;

use crate::error::{BACKEND, classify, error_kind};

/// Applies the migrations `file`'s store lacks, recorded in `_es_migrations`.
pub(crate) async fn migrate(writer: &SqlitePool, file: &str) -> Result<(), BackendError> {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_es_migrations");
    let context = || format!("migrate the event store in `{file}`");
    let mut connection = writer
        .acquire()
        .await
        .map_err(|error| classify(context(), error))?;
    migrator
        .run_direct(None, &mut *connection, false)
        .await
        .map_err(|error| {
            let kind = match error {
                MigrateError::VersionMissing(_)
                | MigrateError::VersionMismatch(_)
                | MigrateError::VersionNotPresent(_)
                | MigrateError::VersionTooOld(..)
                | MigrateError::VersionTooNew(..)
                | MigrateError::Dirty(_) => BackendErrorKind::SchemaMismatch,
                MigrateError::Execute(ref inner) | MigrateError::ExecuteMigration(ref inner, _) => {
                    error_kind(inner)
                }
                _ => BackendErrorKind::Other,
            };
            BackendError::new(BACKEND, kind, context()).with_source(error)
        })
}
