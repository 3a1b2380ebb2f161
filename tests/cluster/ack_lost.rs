//! An append whose publish the stream stored but whose ack never reached the node (the
//! connection dropped in between, as in a failover): the writer catches up, finds the
//! request's own records and must answer them as what they are, the request's one success.
//! A loopback proxy between the node and one nats-server cuts the connection right after the
//! publish went through, so the ack is lost every time. This must never reach beyond loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::api_helpers::{Backend, source_event, spawn_app_on};
use crate::nats::NatsCluster;

/// A TCP proxy to one nats-server that, once armed, lets the next client message containing
/// `needle` through and then drops everything the server answers on that connection, closing
/// it a second later.
pub(crate) struct AckCutter {
    port: u16,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl AckCutter {
    pub(crate) async fn start(upstream: &str, needle: String) -> AckCutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("nats://").to_string();
        let armed = Arc::new(AtomicBool::new(false));
        let cuts = Arc::new(AtomicUsize::new(0));
        let needle = Arc::new(needle.into_bytes());
        let (a, c) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(pipe(client, server, a.clone(), c.clone(), needle.clone()));
            }
        });
        AckCutter { port, armed, cuts }
    }

    pub(crate) fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub(crate) fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    pub(crate) fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

async fn pipe(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
    needle: Arc<Vec<u8>>,
) {
    let mut from_client = vec![0u8; 64 * 1024];
    let mut from_server = vec![0u8; 64 * 1024];
    let mut cut_at: Option<tokio::time::Instant> = None;
    loop {
        let closing = async {
            match cut_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = client.read(&mut from_client) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                let seen = from_client[..n].windows(needle.len()).any(|w| w == needle.as_slice());
                if cut_at.is_none() && seen && armed.swap(false, Ordering::SeqCst) {
                    cuts.fetch_add(1, Ordering::SeqCst);
                    // Set before the publish goes on: its ack cannot slip through.
                    cut_at = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                }
                if server.write_all(&from_client[..n]).await.is_err() {
                    return;
                }
            }
            n = server.read(&mut from_server) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                if cut_at.is_none() && client.write_all(&from_server[..n]).await.is_err() {
                    return;
                }
            }
            // Both ends dropped: the node sees its connection close and reconnects.
            _ = closing => return,
        }
    }
}

#[tokio::test]
async fn an_append_stored_by_the_stream_whose_ack_was_lost_is_answered_201_once_at_the_position_it_landed()
 {
    // No id: the server mints it, so only this request can have stored it.
    let (_app, body) = append_whose_ack_is_lost(None).await;
    assert_eq!(body["events"][0]["seq"], 1, "{body}");
}

#[tokio::test]
async fn an_append_with_its_own_event_id_whose_ack_was_lost_is_answered_201_and_its_resend_200_duplicate()
 {
    // The client's id: the stream holds it at the seq and hash this node published it with,
    // so it is this request's landing, not a repeat of another's.
    let id = Uuid::now_v7();
    let (app, body) = append_whose_ack_is_lost(Some(id)).await;
    assert_eq!(body["events"][0]["id"], id.to_string(), "{body}");

    let mut event = source_event("src:ack-lost");
    event["id"] = serde_json::json!(id.to_string());
    let again = app.append("registry/sources", &event).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["events"][0]["duplicate"], true, "{again}");
    for field in ["seq", "version", "hash", "recorded_at"] {
        assert_eq!(
            again["events"][0][field], body["events"][0][field],
            "{field}"
        );
    }
}

#[tokio::test]
async fn a_batch_of_a_registry_no_op_and_a_new_event_whose_ack_was_lost_is_answered_201_as_staged()
{
    let cluster = NatsCluster::shared();
    let (stream, cutter, app) = node_behind_a_cutter(cluster).await;
    let first = app
        .append("registry/sources", &source_event("src:known"))
        .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();

    // The retry finds the new event stored and the no-op, as ever, not: still this request's
    // landing, answered as it was staged, not a partial duplicate.
    cutter.arm();
    let batch = json!({"events": [source_event("src:known"), source_event("src:new")]});
    let resp = app.append("registry/sources", &batch).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(cutter.cuts(), 1, "the publish's ack was not cut");
    assert_eq!(status, 201, "{body}");
    let lines = body["events"].as_array().unwrap();
    assert_eq!(lines[0]["duplicate"], true, "{body}");
    assert_eq!(lines[0]["seq"], first["events"][0]["seq"], "{body}");
    assert_eq!(lines[1]["duplicate"], false, "{body}");
    assert_eq!(lines[1]["seq"], 2, "{body}");
    assert_eq!(body["stream_version"], 2, "{body}");
    let page = app.get_json("/events?from=1").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 2, "{page}");
    let js = async_nats::jetstream::new(cluster.client().await);
    let mut s = js.get_stream(&stream).await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 2);
}

/// Appends one source registration (with `id`, or a minted one) through a proxy that cuts
/// the publish's ack, and checks it was answered 201, not a duplicate, and stored once at
/// the seq its answer names. The node, and the answer.
async fn append_whose_ack_is_lost(id: Option<Uuid>) -> (crate::api_helpers::TestApp, Value) {
    let cluster = NatsCluster::shared();
    let (stream, cutter, app) = node_behind_a_cutter(cluster).await;

    cutter.arm();
    let mut event = source_event("src:ack-lost");
    if let Some(id) = id {
        event["id"] = serde_json::json!(id.to_string());
    }
    let resp = app.append("registry/sources", &event).await;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(cutter.cuts(), 1, "the publish's ack was not cut");
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["events"][0]["duplicate"], false, "{body}");

    // Stored once, where the answer says.
    let page = app.get_json("/events?from=1").await;
    let events = page["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{page}");
    assert_eq!(events[0]["id"], body["events"][0]["id"]);
    assert_eq!(events[0]["seq"], body["events"][0]["seq"]);
    let js = async_nats::jetstream::new(cluster.client().await);
    let mut s = js.get_stream(&stream).await.unwrap();
    assert_eq!(s.info().await.unwrap().state.messages, 1);
    (app, body)
}

/// A node on a new stream of `cluster`, linked through a cutter (not armed) of that stream's
/// publishes: the stream's name, the cutter, the node.
async fn node_behind_a_cutter(
    cluster: &NatsCluster,
) -> (String, AckCutter, crate::api_helpers::TestApp) {
    let stream = format!("ack-lost-{}", Uuid::now_v7().simple());
    let cutter = AckCutter::start(&cluster.urls()[0], format!("HPUB {stream}.log ")).await;
    let backend = Backend::Nats {
        urls: vec![cutter.url()],
        stream: stream.clone(),
    };
    let app = spawn_app_on(&backend, |c| c).await;
    (stream, cutter, app)
}
