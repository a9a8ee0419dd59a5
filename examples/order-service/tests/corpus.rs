//! The bad-input corpus (`tests/corpus/http.jsonl`): every hostile request gets its documented
//! status and error code, never a 5xx, and nothing stored changes.
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stdout)] // test code

mod support;

use serde::Deserialize;
use support::{Api, Database, Server, assert_error};

/// One corpus line.
#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    method: String,
    #[serde(default)]
    path: String,
    /// `[left, n, right]`: the path `left + middle * n + right`.
    path_repeat: Option<(String, usize, String)>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// `[name, n, char]`: a header of `n` copies of `char`.
    headers_repeat: Option<(String, usize, String)>,
    body: Option<String>,
    /// The body as hex bytes (for invalid UTF-8).
    body_hex: Option<String>,
    /// `[left, n, right]`: `left + middle * n + right` with `repeat_middle`, else
    /// `left * n + right * n`.
    body_repeat: Option<(String, usize, String)>,
    repeat_middle: Option<String>,
    status: u16,
    code: String,
    #[serde(default)]
    fresh_connection: bool,
}

impl Case {
    fn repeat(&self, (left, n, right): &(String, usize, String)) -> String {
        match &self.repeat_middle {
            Some(middle) => format!("{left}{}{right}", middle.repeat(*n)),
            None => format!("{}{}", left.repeat(*n), right.repeat(*n)),
        }
    }

    fn path(&self, order: &str) -> String {
        match &self.path_repeat {
            Some(repeat) => self.repeat(repeat),
            None => self.path.replace("{order}", order),
        }
    }

    fn body(&self) -> Option<Vec<u8>> {
        if let Some(hex) = &self.body_hex {
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            return Some(bytes);
        }
        if let Some(repeat) = &self.body_repeat {
            return Some(self.repeat(repeat).into_bytes());
        }
        self.body.clone().map(String::into_bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_error_and_changes_nothing() {
    let corpus = include_str!("corpus/http.jsonl");
    let cases: Vec<Case> = corpus
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{error}: {line}")))
        .collect();
    let (database, _dir) = Database::sqlite();
    let server = Server::start(&database).await;
    let api = Api::new(&server.base);
    let order = api.place("c0").await;
    let client = reqwest::Client::new();
    let document = api.get("/openapi.json").await.body;

    for case in &cases {
        let client = if case.fresh_connection {
            reqwest::Client::new()
        } else {
            client.clone()
        };
        let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
        let url = format!("{}{}", server.base, case.path(&order));
        let mut request = client.request(method, &url);
        for (name, value) in &case.headers {
            request = request.header(name, value);
        }
        if let Some((name, n, char)) = &case.headers_repeat {
            request = request.header(name, char.repeat(*n));
        }
        if let Some(body) = case.body() {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{}: no answer: {error}", case.name));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: not JSON ({error}): {text}", case.name));
        let answer = support::Answer {
            status,
            headers,
            body,
        };
        assert!(status < 500, "{}: a server error: {answer:?}", case.name);
        assert_error(&answer, case.status, &case.code);
        let path = url.trim_start_matches(&server.base);
        if let Err(problem) = support::check_documented(&document, &case.method, path, &answer) {
            panic!("{}: not as /openapi.json documents: {problem}", case.name);
        }
    }

    // Nothing refused above was stored.
    let order_now = api.get(&format!("/orders/{order}")).await;
    assert_eq!(order_now.body["version"], 1, "{order_now:?}");
    let events = api.get(&format!("/orders/{order}/events")).await;
    assert_eq!(events.body.as_array().unwrap().len(), 1);
    let summaries = api.get("/orders?limit=1000").await.body;
    assert!(summaries.as_array().unwrap().len() <= 1, "{summaries}");
    println!("RELIABILITY bad inputs tried: {}, failures: 0", cases.len());
}
