//! Test support: unique database files in a temp directory that is removed afterwards, and a
//! tiny domain.
#![allow(dead_code, unreachable_pub, clippy::expect_used, clippy::unwrap_used)] // shared by several test binaries

use std::path::{Path, PathBuf};

use es_sqlite::SqliteStore;

/// A fresh directory under the system temp dir, removed (with everything in it) on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty, uniquely named directory.
    pub fn new(purpose: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "es-sqlite-test-{purpose}-{}",
            uuid::Uuid::now_v7().simple()
        ));
        std::fs::create_dir_all(&path).expect("temp dir is created");
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The path of a database file `name` in the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A store in a fresh file `name` of the directory.
    pub async fn store(&self, name: &str) -> SqliteStore {
        SqliteStore::open(self.file(name))
            .await
            .expect("store opens and migrates")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A tiny domain for the store's own tests.
mod domain {
    use es_core::{Aggregate, Apply, Events, Handle, event};

    #[event]
    pub struct Deposited {
        pub cents: i64,
    }

    #[derive(Clone)]
    pub struct Deposit(pub i64);

    #[derive(Debug)]
    pub struct Never;

    impl std::fmt::Display for Never {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("never")
        }
    }

    impl std::error::Error for Never {}

    #[derive(Debug, Default, Aggregate)]
    #[aggregate(name = "account", error = Never, events(Deposited), commands(Deposit))]
    pub struct Account {
        pub balance: i64,
    }

    impl Apply<Deposited> for Account {
        fn apply(&mut self, event: &Deposited) {
            self.balance += event.cents;
        }
    }

    impl Handle<Deposit> for Account {
        fn handle(&self, command: Deposit) -> Result<Events<Self>, Never> {
            Ok(Events::one(Deposited { cents: command.0 }))
        }
    }
}

#[allow(unused_imports)] // each test binary uses a different part
pub use domain::{Account, Deposit, Deposited};
