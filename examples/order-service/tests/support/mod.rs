//! Starting the real `order-service` binary and talking to it over HTTP.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::print_stderr
)] // shared by several test binaries

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The PostgreSQL server for the PostgreSQL variants.
pub fn postgres_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Where a server keeps its events.
#[derive(Clone, Debug)]
pub enum Database {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A schema on the PostgreSQL server.
    Postgres { schema: String },
}

impl Database {
    /// A fresh SQLite file in a fresh folder.
    pub fn sqlite() -> (Self, TempDir) {
        let dir = TempDir::new();
        (Self::Sqlite(dir.0.join("orders.db")), dir)
    }

    /// A fresh PostgreSQL schema, dropped when the guard goes.
    pub fn postgres() -> (Self, SchemaGuard) {
        let schema = format!("es_test_{}", uuid::Uuid::now_v7().simple());
        (
            Self::Postgres {
                schema: schema.clone(),
            },
            SchemaGuard(schema),
        )
    }

    fn args(&self) -> Vec<String> {
        match self {
            Self::Sqlite(path) => vec![
                "--database-url".into(),
                format!("sqlite://{}", path.display()),
            ],
            Self::Postgres { schema } => vec![
                "--database-url".into(),
                postgres_url(),
                "--pg-schema".into(),
                schema.clone(),
            ],
        }
    }
}

/// A temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    fn new() -> Self {
        let path = std::env::temp_dir().join(format!("order-service-{}", uuid::Uuid::now_v7()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Drops its schema on drop (with `psql`-free plain sqlx on a private runtime).
pub struct SchemaGuard(pub String);

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let schema = self.0.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                use sqlx::Connection as _;
                let mut connection = sqlx::PgConnection::connect(&postgres_url()).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
                )))
                .execute(&mut connection)
                .await
                .map(drop)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop schema {}", self.0);
        }
    }
}

/// Runs `order-service <args>` on `database` with `RUST_LOG=<log>`, standard error captured
/// (so not a terminal); its exit status, standard output and standard error.
pub fn run_tool(database: &Database, args: &[&str], log: &str) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_order-service"))
        .args(database.args())
        .args(args)
        .env("RUST_LOG", log)
        .output()
        .expect("the order-service binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:port`.
    pub base: String,
    database: Database,
    port: u16,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `order-service serve` on a free port and waits until `/health` answers.
    pub async fn start(database: &Database) -> Self {
        Self::start_on(database, free_port(), &[]).await
    }

    /// [`start`](Self::start) with more `serve` flags (`--idle-timeout 1`, say).
    pub async fn start_with(database: &Database, flags: &[&str]) -> Self {
        Self::start_on(database, free_port(), flags).await
    }

    async fn start_on(database: &Database, port: u16, flags: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_order-service"))
            .args(database.args())
            .args(["serve", "--addr", &format!("127.0.0.1:{port}")])
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the order-service binary starts");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            database: database.clone(),
            port,
        };
        server.wait_until_healthy().await;
        server
    }

    async fn wait_until_healthy(&self) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/health", self.base)).send().await
                && response.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not become healthy"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILLs the process and waits for it to be gone.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal_term();
        self.child.wait().expect("the server exits")
    }

    /// Sends SIGTERM without waiting.
    pub fn signal_term(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
    }

    /// The exit status, if the process has exited by `deadline`.
    pub fn exited_by(&mut self, deadline: Instant) -> Option<std::process::ExitStatus> {
        loop {
            if let Some(status) = self.child.try_wait().expect("the process can be waited on") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` of the server, for raw sockets.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs a one-shot subcommand (`rebuild`, `events`, `stats`) on the server's database,
    /// stopped or running; its exit status and standard output.
    pub fn tool(&self, args: &[&str]) -> (bool, String) {
        let (ok, out, _) = self.tool_with_stderr(args);
        (ok, out)
    }

    /// [`tool`](Self::tool), with what the tool wrote to standard error too.
    pub fn tool_with_stderr(&self, args: &[&str]) -> (bool, String, String) {
        run_tool(&self.database, args, "warn")
    }

    /// Starts a one-shot subcommand on the server's database and returns the running process,
    /// its standard error piped (to follow what it does, and kill it at a chosen step).
    pub fn spawn_tool(&self, args: &[&str]) -> Child {
        Command::new(env!("CARGO_BIN_EXE_order-service"))
            .args(self.database.args())
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the order-service binary starts")
    }

    /// Starts the server again on the same database and port.
    pub async fn restart(&mut self) {
        self.kill();
        let database = self.database.clone();
        *self = Self::start_on(&database, self.port, &[]).await;
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An HTTP answer: status, selected headers, JSON body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

/// A small client for the API. It remembers every answer, so a test can check them all
/// against the service's OpenAPI document at the end ([`Api::assert_all_documented`]).
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    seen: Arc<Mutex<Vec<(String, String, Answer)>>>,
}

impl Api {
    pub fn new(base: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            base: base.to_owned(),
            seen: Arc::default(),
        }
    }

    /// The same server over a new connection pool: for a request after which the server closes
    /// the connection (a body over the limit is answered before it is read).
    pub fn fresh(&self) -> Self {
        Self {
            client: reqwest::Client::new(),
            ..self.clone()
        }
    }

    /// Asserts that every answer this client (and its `fresh` copies) got is one the
    /// service's `/openapi.json` documents; returns how many were checked.
    pub async fn assert_all_documented(&self) -> usize {
        let document = self.get("/openapi.json").await.body;
        let seen = self.seen.lock().unwrap();
        for (method, path, answer) in seen.iter() {
            if let Err(problem) = check_documented(&document, method, path, answer) {
                panic!("{method} {path}: {problem}: {answer:?}");
            }
        }
        seen.len()
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Answer {
        self.try_send(method, path, body, headers)
            .await
            .expect("the server answers")
    }

    pub async fn try_send(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Answer, reqwest::Error> {
        let method_text = method.to_owned();
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
        };
        let answer = Answer {
            status,
            headers,
            body,
        };
        self.seen.lock().unwrap().push((
            method_text,
            path.to_owned(),
            Answer {
                status: answer.status,
                headers: answer.headers.clone(),
                body: answer.body.clone(),
            },
        ));
        Ok(answer)
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None, &[]).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Answer {
        self.send("POST", path, Some(body), &[]).await
    }

    /// Places an order for `customer` and returns its id.
    pub async fn place(&self, customer: &str) -> String {
        let answer = self
            .post("/orders", &format!(r#"{{"customer_id":"{customer}"}}"#))
            .await;
        assert_eq!(answer.status, 201, "{answer:?}");
        answer.body["id"].as_str().unwrap().to_owned()
    }
}

/// Asserts an error answer: its status and `error.code`, and that it has a message.
pub fn assert_error(answer: &Answer, status: u16, code: &str) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.body["error"]["code"], code, "{answer:?}");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "{answer:?}"
    );
}

/// Whether `document` (the service's OpenAPI document) documents `answer` to `method path`:
/// the route and method exist (or the answer says they do not), the status is one the
/// operation lists, an error's `code` is one of `ErrorCode`'s, and a success's documented
/// `ETag` and `Location` headers are there.
pub fn check_documented(
    document: &Value,
    method: &str,
    path: &str,
    answer: &Answer,
) -> Result<(), String> {
    let path = path.split('?').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    // The template that matches segment for segment, literal segments preferred.
    let template = document["paths"]
        .as_object()
        .ok_or("the document has no paths")?
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            (parts.len() == segments.len()).then_some(())?;
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') {
                    if segment.is_empty() {
                        return None;
                    }
                } else if part == segment {
                    literal += 1;
                } else {
                    return None;
                }
            }
            Some((literal, template.clone()))
        })
        .max()
        .map(|(_, template)| template);
    let code = answer.body["error"]["code"].as_str();
    let Some(template) = template else {
        return if answer.status == 404 && code == Some("route_not_found") {
            Ok(())
        } else {
            Err("no documented route matches".to_owned())
        };
    };
    let Some(operation) = document["paths"][&template].get(method.to_ascii_lowercase()) else {
        return if answer.status == 405 && code == Some("method_not_allowed") {
            Ok(())
        } else {
            Err(format!("{template} documents no {method}"))
        };
    };
    let mut response = operation["responses"]
        .get(answer.status.to_string())
        .ok_or_else(|| format!("{method} {template} does not document {}", answer.status))?;
    if let Some(reference) = response["$ref"].as_str() {
        let name = reference.rsplit('/').next().unwrap_or_default();
        response = &document["components"]["responses"][name];
    }
    if answer.status >= 400 && answer.body.get("error").is_some() {
        let codes = document["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .ok_or("the document has no ErrorCode enum")?;
        let code = code.ok_or("an error without a code")?;
        if !codes.iter().any(|known| known == code) {
            return Err(format!("`{code}` is not in the ErrorCode enum"));
        }
    }
    if answer.status < 300 {
        for header in ["ETag", "Location"] {
            if response["headers"].get(header).is_some() && !answer.headers.contains_key(header) {
                return Err(format!("the documented {header} header is missing"));
            }
        }
    }
    Ok(())
}
