//! Projection tests (issue 3): the read models through HTTP on the demo data, as-of cuts,
//! corrections and retractions, rebuilds under load, restarts from saves, and the
//! incremental fold against a full rebuild (proptest, in-process).

mod asof;
mod cli_rebuild;
mod demo;
mod engine;
mod inproc;
mod rebuild;
mod restart;
mod save_format;

use std::path::Path;

use annals::{Server, StartOptions};
use serde_json::Value;

use crate::helpers::{TestApp, encode, test_config};

/// GETs a projection path with the read key, waiting for the projections to reach `min_seq`.
pub async fn view(app: &TestApp, path: &str, min_seq: u64) -> Value {
    let sep = if path.contains('?') { '&' } else { '?' };
    app.get_json(&format!("{path}{sep}min_seq={min_seq}")).await
}

/// The appended event's id and seq from an append response.
pub async fn appended(resp: reqwest::Response) -> (String, u64) {
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.unwrap();
    (
        v["events"][0]["id"].as_str().unwrap().to_string(),
        v["events"][0]["seq"].as_u64().unwrap(),
    )
}

/// The status line of one projection in a `GET /projections` answer.
pub fn status_line(all: &Value, name: &str) -> Value {
    all["projections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no status line for {name}: {all}"))
}

/// The status line of one projection from `GET /projections`.
pub async fn status(app: &TestApp, name: &str) -> Value {
    status_line(&app.get_json("/projections").await, name)
}

/// An in-process server over `dir` with the demo data (loaded only into an empty folder) and
/// the demo key, which has every scope.
pub struct DemoServer {
    pub server: Server,
    key: String,
    client: reqwest::Client,
}

impl DemoServer {
    pub async fn start(dir: &Path) -> DemoServer {
        let server = Server::start(
            test_config(dir),
            StartOptions {
                demo: true,
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
        let key = server.demo_key.clone().unwrap();
        DemoServer {
            server,
            key,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr())
    }

    /// GETs `path` with the demo key; it must answer 200 with JSON.
    pub async fn get(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// Appends `body` to `stream`; it must answer 201.
    pub async fn append(&self, stream: &str, body: &Value) {
        let resp = self
            .client
            .post(self.url(&format!("/streams/{}/events", encode(stream))))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    }

    /// The status line of one projection.
    pub async fn status(&self, name: &str) -> Value {
        status_line(&self.get("/projections").await, name)
    }
}
