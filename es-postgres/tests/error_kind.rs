//! `es_postgres::error_kind` classifies what the server says as the store classifies its own
//! failures: a connection the server terminated is `Unavailable` (SQLSTATE 57P01), so an
//! application's own queries on the store's pool map to the same answers.
#![allow(missing_docs, clippy::expect_used, clippy::unwrap_used)] // test code

use es_core::BackendErrorKind;
use sqlx::Connection as _;

#[tokio::test]
async fn a_terminated_connection_is_unavailable() {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let mut victim = sqlx::PgConnection::connect(&url).await.unwrap();
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut victim)
        .await
        .unwrap();
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .fetch_one(&mut admin)
        .await
        .unwrap();
    assert!(terminated);
    let error = sqlx::query("SELECT 1")
        .execute(&mut victim)
        .await
        .unwrap_err();
    assert_eq!(
        es_postgres::error_kind(&error),
        BackendErrorKind::Unavailable,
        "{error:?}"
    );
    let syntax = sqlx::query("SELEC 1")
        .execute(&mut admin)
        .await
        .unwrap_err();
    assert_eq!(es_postgres::error_kind(&syntax), BackendErrorKind::Other);
}
