//! The es-core store conformance suite, every case on a fresh database file of its own.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::TempDir;
use futures_util::FutureExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_passes_the_conformance_suite() {
    let dir = TempDir::new("conformance");
    let next = AtomicUsize::new(0);
    let outcome = std::panic::AssertUnwindSafe(es_core::testing::conformance::run_all(|| {
        let name = format!("case-{}.db", next.fetch_add(1, Ordering::Relaxed));
        let dir = &dir;
        async move { dir.store(&name).await }
    }))
    .catch_unwind()
    .await;
    assert_eq!(
        next.load(Ordering::Relaxed),
        es_core::testing::conformance::CASES.len(),
        "every case ran on a store of its own"
    );
    drop(dir);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
