//! The es-core store conformance suite against the real PostgreSQL server, each case in its own
//! schema.

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_passes_the_conformance_suite() {
    common::with_schemas(8, |pool, schemas| async move {
        es_core::testing::conformance::run_all(|| schemas.store(&pool)).await;
    })
    .await;
}
