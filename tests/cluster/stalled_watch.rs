//! A node whose watch of a key-value bucket stalls without an error still takes in what
//! other nodes change there, within a bound: API keys added or revoked, subscriptions
//! created. The stall is made on demand the way async-nats makes it: an ordered consumer
//! that finds a gap in what it was delivered (here a loopback proxy drops one delivery, as a
//! server does to a slow consumer) sets itself up again by itself, retrying for ever and
//! reporting nothing while its create requests fail (an election; here the proxy drops them).
//! The node must notice that its watch no longer follows the bucket. This must never reach
//! beyond loopback.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::api_helpers::{Backend, spawn_app_on};
use crate::keys_cli::answers_within;
use crate::lease::assert_verified_in_order;
use crate::nats::NatsCluster;
use crate::shared::{hooks_node, subscribe_to_processes};
use crate::support::*;
use crate::watches::{lists_by, read_key};

/// How long a node with a stalled watch may take to see a change: two checks of the watch
/// (5 s apart), a watch set up again in vain (a 2 s request timeout), then a read of the
/// whole bucket; with room for a loaded machine.
const SEEN_WITHIN: Duration = Duration::from_secs(25);

/// A TCP proxy to one nats-server that, once armed, stalls every watch of one key-value
/// stream: it drops the next message the server delivers to a consumer of that stream, and
/// every consumer create request for that stream the client sends from then on.
struct Staller {
    port: u16,
    /// What the armed proxy drops.
    armed: Arc<AtomicBool>,
    /// Whether the one delivery was dropped yet.
    lost: Arc<AtomicBool>,
    /// Create requests dropped.
    creates: Arc<AtomicUsize>,
}

impl Staller {
    /// A proxy to `upstream` for watches of the key-value stream `kv_stream` (`KV_<bucket>`).
    async fn start(upstream: &str, kv_stream: &str) -> Staller {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("nats://").to_string();
        let staller = Staller {
            port,
            armed: Arc::default(),
            lost: Arc::default(),
            creates: Arc::default(),
        };
        let pipe = Pipe {
            armed: staller.armed.clone(),
            lost: staller.lost.clone(),
            creates: staller.creates.clone(),
            create: format!("$JS.API.CONSUMER.CREATE.{kv_stream}"),
            // A delivery's reply subject names its stream: `$JS.ACK.<stream>.<consumer>...`.
            delivery: format!("$JS.ACK.{kv_stream}."),
        };
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                tokio::spawn(pipe.clone().run(client, server));
            }
        });
        staller
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Waits (up to 30 s) until the watch lost a delivery and sent a create that was dropped:
    /// it is setting itself up again, in vain.
    async fn wait_until_stalled(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.lost.load(Ordering::SeqCst) || self.creates.load(Ordering::SeqCst) == 0 {
            assert!(
                Instant::now() < deadline,
                "no watch delivery dropped ({}) or no consumer create dropped ({}) in 30 s",
                self.lost.load(Ordering::SeqCst),
                self.creates.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One connection's proxying, with what the [`Staller`] shares.
#[derive(Clone)]
struct Pipe {
    armed: Arc<AtomicBool>,
    lost: Arc<AtomicBool>,
    creates: Arc<AtomicUsize>,
    /// The subject of a create request for the stream (or a prefix of it, before a `.`).
    create: String,
    /// The start of a delivery's reply subject for the stream.
    delivery: String,
}

impl Pipe {
    async fn run(self, mut client: TcpStream, mut server: TcpStream) {
        let below = format!("{}.", self.create);
        let mut from_client = vec![0u8; 64 * 1024];
        let mut from_server = vec![0u8; 64 * 1024];
        let (mut client_pending, mut server_pending) = (Vec::new(), Vec::new());
        loop {
            tokio::select! {
                n = client.read(&mut from_client) => {
                    let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                    client_pending.extend_from_slice(&from_client[..n]);
                    let out = frames(&mut client_pending, |words, frame| {
                        let subject = words.get(1).copied().unwrap_or_default();
                        let create = matches!(words.first(), Some(&"PUB" | &"HPUB"))
                            && (subject == self.create || subject.starts_with(&below));
                        if create && self.armed.load(Ordering::SeqCst) {
                            self.creates.fetch_add(1, Ordering::SeqCst);
                            return Vec::new();
                        }
                        frame.to_vec()
                    });
                    if server.write_all(&out).await.is_err() {
                        return;
                    }
                }
                n = server.read(&mut from_server) => {
                    let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                    server_pending.extend_from_slice(&from_server[..n]);
                    let out = frames(&mut server_pending, |words, frame| {
                        let delivery = matches!(words.first(), Some(&"MSG" | &"HMSG"))
                            && words.iter().any(|w| w.starts_with(&self.delivery));
                        if delivery
                            && self.armed.load(Ordering::SeqCst)
                            && !self.lost.swap(true, Ordering::SeqCst)
                        {
                            return Vec::new();
                        }
                        frame.to_vec()
                    });
                    if client.write_all(&out).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Cuts the whole protocol frames (a line, with the payload a `PUB`, `HPUB`, `MSG` or `HMSG`
/// line announces) off the start of `pending` and answers what `pass` makes of each, given
/// the line's words (the operation upper-cased). A frame not yet whole stays in `pending`.
fn frames(pending: &mut Vec<u8>, mut pass: impl FnMut(&[&str], &[u8]) -> Vec<u8>) -> Vec<u8> {
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some(eol) = pending[at..].windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&pending[at..at + eol]).into_owned();
        let mut words: Vec<&str> = line.split_ascii_whitespace().collect();
        let op = words
            .first()
            .map(|op| op.to_ascii_uppercase())
            .unwrap_or_default();
        if let Some(first) = words.first_mut() {
            *first = &op;
        }
        // The last word of these lines is the payload's size; the payload ends with a CRLF.
        let payload = match words.last() {
            Some(size) if matches!(op.as_str(), "PUB" | "HPUB" | "MSG" | "HMSG") => {
                size.parse::<usize>().unwrap() + 2 // ok: test code
            }
            _ => 0,
        };
        let len = eol + 2 + payload;
        if pending.len() - at < len {
            break;
        }
        out.extend(pass(&words, &pending[at..at + len]));
        at += len;
    }
    pending.drain(..at);
    out
}

#[tokio::test]
async fn keys_added_and_revoked_while_the_keys_watch_is_stalled_are_honoured_within_the_check_bound()
 {
    let cluster = NatsCluster::shared();
    let stream = format!("stalled-keys-{}", Uuid::now_v7().simple());
    let staller = Staller::start(&cluster.urls()[0], &format!("KV_{stream}_keys")).await;
    let node = spawn_app_on(
        &Backend::Nats {
            urls: vec![staller.url()],
            stream: stream.clone(),
        },
        |c| c,
    )
    .await;
    // `annals keys add` / `revoke` go to the cluster directly, not through the proxy.
    let mut nats = node.config.log.nats.clone().unwrap();
    nats.urls = cluster.urls();

    let (before, before_key) = read_key("before");
    annals::keys::add_to_cluster(&nats, &before).await.unwrap();
    answers_within(&node, &before_key, 200, "a key added before", SEEN_WITHIN).await;

    // The watch loses the next change, the key added now, and then cannot set itself up
    // again.
    staller.arm();
    let (after, after_key) = read_key("after");
    annals::keys::add_to_cluster(&nats, &after).await.unwrap();
    staller.wait_until_stalled().await;
    answers_within(
        &node,
        &after_key,
        200,
        "a key added while the watch is stalled",
        SEEN_WITHIN,
    )
    .await;
    annals::keys::revoke_in_cluster(&nats, "before")
        .await
        .unwrap();
    answers_within(
        &node,
        &before_key,
        401,
        "a key revoked while the watch is stalled",
        SEEN_WITHIN,
    )
    .await;
}

#[tokio::test]
async fn a_subscription_created_elsewhere_while_the_webhook_watch_is_stalled_is_listed_and_delivered()
 {
    let cluster = NatsCluster::shared();
    let stream = format!("stalled-hooks-{}", Uuid::now_v7().simple());
    let staller = Staller::start(&cluster.urls()[0], &format!("KV_{stream}_webhooks")).await;
    let folder = tempfile::tempdir().unwrap();
    let key_file = folder.path().join("webhooks.key");
    // A keeps out of delivery: the node whose watch stalls is the only one that delivers.
    let a = hooks_node(
        cluster,
        &key_file,
        json!({"log": {"nats": {"urls": cluster.urls(), "stream": stream}},
               "webhooks": {"deliver": false}}),
    )
    .await;
    let b = hooks_node(
        cluster,
        &key_file,
        json!({"log": {"nats": {"urls": [staller.url()], "stream": stream}}}),
    )
    .await;
    a.seed().await;

    // B's watch loses the next change, the subscription's creation, and then cannot set
    // itself up again.
    staller.arm();
    let rx = Receiver::ok().await;
    let (id, secret) = subscribe_to_processes(&a, &rx).await;
    staller.wait_until_stalled().await;
    lists_by(&b, &id, "B", Instant::now() + SEEN_WITHIN).await;
    let sent = statements(&a, 1, 3).await;
    wait_delivered(&rx, &sent).await;
    assert_verified_in_order(&rx, &secret);
}
