//! Projection tests (issue 3): the read models through HTTP on the demo data, as-of cuts,
//! corrections and retractions, rebuilds under load, restarts from saves, and the
//! incremental fold against a full rebuild (proptest, in-process).

mod actor_index;
mod actor_pages;
mod asof;
mod cli_rebuild;
pub mod compact;
mod demo;
mod engine;
mod evidence;
mod inproc;
mod processes;
mod rebuild;
mod restart;
mod row_pages;
mod save_format;
mod talks_index;

use serde_json::Value;

pub use crate::demo_server::DemoServer;
use crate::helpers::TestApp;

/// GETs a projection path with the read key, waiting for the projections to reach `min_seq`
/// (on a cluster, also from a second node, which must answer the same).
pub async fn view(app: &TestApp, path: &str, min_seq: u64) -> Value {
    crate::helpers::view_on_every_node(app, path, min_seq).await
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
