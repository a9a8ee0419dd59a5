//! The command-line tools as an operator meets them: the read-only ones (`stats`, `events`)
//! create and change nothing and say so when there is no event store; `stats` agrees with the
//! running service's `/health` about who runs a projection; log lines carry no colour codes
//! when standard error is not a terminal, no PostgreSQL notices, and come as JSON on request.
#![allow(clippy::expect_used, clippy::unwrap_used)] // test code

mod support;

use std::time::{Duration, Instant};

use support::{Api, Database, Server, run_tool};

#[test]
fn read_only_tools_on_a_missing_sqlite_file_create_nothing() {
    let (database, dir) = Database::sqlite();
    let Database::Sqlite(path) = &database else {
        unreachable!("an SQLite database");
    };
    for args in [
        &["stats"][..],
        &["events", "01a251ea-0000-7000-8000-000000000000"][..],
    ] {
        let (ok, _, err) = run_tool(&database, args, "warn");
        assert!(!ok, "{args:?} succeeded on a missing file");
        assert!(
            err.contains("no event store in the file"),
            "{args:?}: {err}"
        );
    }
    assert!(!path.exists(), "a read-only tool created the file");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_tools_on_a_missing_postgres_schema_create_nothing() {
    let (database, _guard) = Database::postgres();
    let Database::Postgres { schema } = &database else {
        unreachable!("a PostgreSQL database");
    };
    let (ok, _, err) = tokio::task::spawn_blocking({
        let database = database.clone();
        move || run_tool(&database, &["stats"], "warn")
    })
    .await
    .unwrap();
    assert!(!ok, "stats succeeded on a missing schema");
    assert!(
        err.contains(&format!("no event store in schema `{schema}`")),
        "{err}"
    );
    let pool = sqlx::PgPool::connect(&support::postgres_url())
        .await
        .unwrap();
    let created: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM information_schema.schemata WHERE schema_name = $1)",
    )
    .bind(schema)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!created, "stats created schema {schema}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_agrees_with_health_about_who_runs_a_projection() {
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    api.place("c1").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let owner = loop {
        let health = api.get("/health").await;
        let owner = health.body["projections"][0]["owner"]
            .as_str()
            .map(str::to_owned);
        if let Some(owner) = owner {
            break owner;
        }
        assert!(Instant::now() < deadline, "{}", health.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let (ok, out, err) = server.tool_with_stderr(&["stats"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("projection order_summary: checkpoint")
            && out.contains(&format!("leased by {owner}")),
        "stats and /health disagree (health: {owner}): {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_logs_carry_no_colour_codes_nor_notices_and_come_as_json_on_request() {
    for (database, _keep) in [
        {
            let (database, dir) = Database::sqlite();
            (database, Box::new(dir) as Box<dyn std::any::Any + Send>)
        },
        {
            let (database, guard) = Database::postgres();
            (database, Box::new(guard) as Box<dyn std::any::Any + Send>)
        },
    ] {
        // Twice: the second run finds every table there, where PostgreSQL says so in notices.
        for _ in 0..2 {
            let (ok, _, err) = tokio::task::spawn_blocking({
                let database = database.clone();
                move || run_tool(&database, &["rebuild", "order_summary"], "info")
            })
            .await
            .unwrap();
            assert!(ok, "{err}");
            assert!(
                !err.contains('\u{1b}'),
                "colour codes on a captured stderr: {err:?}"
            );
            assert!(
                !err.contains("already exists"),
                "a PostgreSQL notice: {err}"
            );
        }
        let (ok, _, err) = tokio::task::spawn_blocking({
            let database = database.clone();
            move || {
                run_tool(
                    &database,
                    &["--log-format", "json", "rebuild", "order_summary"],
                    "debug",
                )
            }
        })
        .await
        .unwrap();
        assert!(ok, "{err}");
        let logged: Vec<&str> = err.lines().filter(|line| line.starts_with('{')).collect();
        assert!(!logged.is_empty(), "no JSON log line: {err}");
        for line in logged {
            let parsed: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}"));
            assert!(parsed.get("level").is_some(), "{line}");
        }
    }
}
