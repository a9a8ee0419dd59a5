//! Test support: the server at `DATABASE_URL` (default: this machine's test database), and
//! fresh schemas that are dropped afterwards.
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stderr
)] // shared by several test binaries

use es_core::EventLog;
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
    pool_at(&database_url(), connections).await
}

/// A pool on the server at `url`.
pub(crate) async fn pool_at(url: &str, connections: u32) -> PgPool {
    PgPoolOptions::new()
        .max_connections(connections)
        .connect(url)
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
        store_in(pool, self.fresh()).await
    }

    /// A store in a fresh schema on `pool`, with a read-model table `name` (`columns`: its
    /// column definitions) in that schema. Returns the store, the schema and the table's
    /// quoted name.
    pub(crate) async fn store_with_table(
        &self,
        pool: &PgPool,
        name: &str,
        columns: &str,
    ) -> (PostgresStore, String, String) {
        let schema = self.fresh();
        let store = store_in(pool, schema.clone()).await;
        let table = format!("\"{schema}\".{name}");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TABLE {table} ({columns})"
        )))
        .execute(pool)
        .await
        .expect("read-model table is created");
        (store, schema, table)
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

/// A store in `schema` on `pool`, migrated.
async fn store_in(pool: &PgPool, schema: String) -> PostgresStore {
    PostgresStore::options()
        .schema(schema)
        .with_pool(pool.clone())
        .await
        .expect("store connects and migrates")
}

/// Runs `test` with fresh schemas, then drops them whether it passed or panicked.
pub(crate) async fn with_schemas<F, Fut>(connections: u32, test: F)
where
    F: FnOnce(PgPool, Schemas) -> Fut,
    Fut: Future<Output = ()>,
{
    with_schemas_at(&database_url(), connections, test).await;
}

/// [`with_schemas`] on the server at `url`.
pub(crate) async fn with_schemas_at<F, Fut>(url: &str, connections: u32, test: F)
where
    F: FnOnce(PgPool, Schemas) -> Fut,
    Fut: Future<Output = ()>,
{
    use futures_util::FutureExt as _;
    let pool = pool_at(url, connections).await;
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

    #[derive(Clone, serde::Serialize)]
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
pub(crate) use domain::{Account, Deposit, Deposited, Never};

/// A PostgreSQL cluster of the test's own, in a temporary folder: for tests that hold
/// transactions open or pause processes mid-transaction. The gap-free read waits for the oldest
/// open transaction on the whole server, so doing that on the shared server would stall every
/// other test's reads. Stopped and removed on drop.
pub(crate) struct PrivateCluster {
    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub(crate) url: String,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
    port: u16,
}

impl PrivateCluster {
    /// Starts one with `initdb` and `pg_ctl` (as user `postgres` when running as root). Without
    /// them, falls back to the shared server, saying so.
    pub(crate) fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("initdb").exists())
            .max()?;
        let dir = std::env::temp_dir().join(format!("es-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).ok()?;
        let _ = std::process::Command::new("chmod")
            .arg("777")
            .arg(&dir)
            .status();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let cluster = Self {
            url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            dir,
            bin,
            port,
        };
        let data = cluster.dir.join("data");
        let initdb = cluster.as_owner(&cluster.bin.join("initdb"), |command| {
            command
                .arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-A", "trust"])
        });
        if !initdb {
            return None;
        }
        cluster.pg_ctl("start").then_some(cluster)
    }

    /// Runs `pg_ctl <action>` (start, stop, restart) on the cluster, waiting for it.
    pub(crate) fn pg_ctl(&self, action: &str) -> bool {
        let data = self.dir.join("data");
        self.as_owner(&self.bin.join("pg_ctl"), |command| {
            command
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(["-w", "-m", "fast", "-o"])
                .arg(format!(
                    "-p {} -k {} -c listen_addresses=127.0.0.1",
                    self.port,
                    self.dir.display()
                ))
                .arg(action)
        })
    }

    fn as_owner(
        &self,
        program: &std::path::Path,
        args: impl FnOnce(&mut std::process::Command) -> &mut std::process::Command,
    ) -> bool {
        let is_root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|output| output.stdout.starts_with(b"0"));
        let mut command = if is_root {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(program);
            command
        } else {
            std::process::Command::new(program)
        };
        args(&mut command)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        self.as_owner(&self.bin.join("pg_ctl"), |command| {
            command
                .arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "stop"])
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The URL for a disruptive test: a private cluster if one can be started, else the shared
/// server (with a warning: other tests' reads may then stall while this one runs).
pub(crate) fn private_or_shared() -> (String, Option<PrivateCluster>) {
    match PrivateCluster::start() {
        Some(cluster) => (cluster.url.clone(), Some(cluster)),
        None => {
            eprintln!("no initdb: running on the shared server");
            (database_url(), None)
        }
    }
}

/// Waits until `events` events are visible to the gap-free global read: a transaction open
/// elsewhere on the server (another test's) may hold committed events back for a moment.
pub(crate) async fn wait_visible(store: &PostgresStore, events: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let visible = store
            .count_events(es_core::LogPosition::START, es_core::EventFilter::All)
            .await
            .expect("the log can be counted");
        if visible >= events {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {visible} of {events} events became visible"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
