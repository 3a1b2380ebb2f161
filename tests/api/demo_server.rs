//! The one in-process demo server of the tests: `Server::start` with `demo: true` over a temp
//! folder, and the demo key (which has every scope).

use std::path::Path;

use annals::server::DemoData;
use annals::{Server, StartOptions};
use serde_json::Value;

use crate::helpers::{encode, test_config};

/// An in-process server over `dir` with the demo data (loaded only into an empty folder) and
/// the demo key, which has every scope.
pub struct DemoServer {
    pub server: Server,
    key: String,
    client: reqwest::Client,
}

impl DemoServer {
    pub async fn start(dir: &Path) -> DemoServer {
        DemoServer::start_with(dir, DemoData::default()).await
    }

    /// The same, loading the example data sets `data` names.
    pub async fn start_with(dir: &Path, data: DemoData) -> DemoServer {
        let server = Server::start(
            test_config(dir),
            StartOptions {
                demo: true,
                demo_data: data,
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
        crate::projections::status_line(&self.get("/projections").await, name)
    }
}
