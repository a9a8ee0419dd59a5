//! Test support: the server at `DATABASE_URL` (default: this machine's test database), and
//! fresh schemas that are dropped afterwards.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)] // shared by several test binaries

use std::sync::{Arc, Mutex};

use es_postgres::PostgresStore;
use sqlx::postgres::{PgPool, PgPoolOptions};

/// The server the tests use.
pub(crate) fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A pool on the test server, failing with instructions when there is none.
pub(crate) async fn pool(connections: u32) -> PgPool {
    let url = database_url();
    PgPoolOptions::new()
        .max_connections(connections)
        .connect(&url)
        .await
        .unwrap_or_else(|error| {
            panic!(
                "no PostgreSQL answers at {url} ({error}). Start one (or set DATABASE_URL); `bash scripts/test.sh` explains how"
            )
        })
}

/// Schemas handed out by one test, dropped by [`Schemas::drop_all`].
#[derive(Clone, Default)]
pub(crate) struct Schemas(Arc<Mutex<Vec<String>>>);

impl Schemas {
    /// A fresh schema name, remembered for dropping.
    pub(crate) fn fresh(&self) -> String {
        let name = format!("es_test_{}", uuid::Uuid::new_v4().simple());
        self.0.lock().unwrap().push(name.clone());
        name
    }

    /// A store in a fresh schema on `pool`.
    pub(crate) async fn store(&self, pool: &PgPool) -> PostgresStore {
        PostgresStore::options()
            .schema(self.fresh())
            .with_pool(pool.clone())
            .await
            .expect("store connects and migrates")
    }

    /// Drops every schema handed out.
    pub(crate) async fn drop_all(&self, pool: &PgPool) {
        let names = std::mem::take(&mut *self.0.lock().unwrap());
        for name in names {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE"
            )))
            .execute(pool)
            .await
            .expect("schema drops");
        }
    }
}

/// Runs `test` with fresh schemas, then drops them whether it passed or panicked.
pub(crate) async fn with_schemas<F, Fut>(connections: u32, test: F)
where
    F: FnOnce(PgPool, Schemas) -> Fut,
    Fut: Future<Output = ()>,
{
    use futures_util::FutureExt as _;
    let pool = pool(connections).await;
    let schemas = Schemas::default();
    let outcome = std::panic::AssertUnwindSafe(test(pool.clone(), schemas.clone()))
        .catch_unwind()
        .await;
    schemas.drop_all(&pool).await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// A tiny domain for the store's own tests.
mod domain {
    use es_core::{Aggregate, Apply, Events, Handle, event};

    #[event]
    pub(crate) struct Deposited {
        pub(crate) cents: i64,
    }

    #[derive(Clone)]
    pub(crate) struct Deposit(pub(crate) i64);

    #[derive(Debug, thiserror::Error)]
    #[error("never")]
    pub(crate) struct Never;

    #[derive(Debug, Default, Aggregate)]
    #[aggregate(name = "account", error = Never, events(Deposited), commands(Deposit))]
    pub(crate) struct Account;

    impl Apply<Deposited> for Account {
        fn apply(&mut self, _: &Deposited) {}
    }

    impl Handle<Deposit> for Account {
        fn handle(&self, command: Deposit) -> Result<Events<Self>, Never> {
            Ok(Events::one(Deposited { cents: command.0 }))
        }
    }
}

#[allow(unused_imports)] // each test binary uses a different part
pub(crate) use domain::{Account, Deposit, Deposited};
