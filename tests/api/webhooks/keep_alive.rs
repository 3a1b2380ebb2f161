//! Plain-HTTP targets get keep-alive connections: many deliveries to one subscription reuse
//! one TCP connection, and a receiver that closes its connection after each answer (as a
//! proxy's idle timeout would) still gets every message on its first attempt. The receiver
//! here is a raw TCP server, so it can count connections and close them at will.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::*;

/// A raw HTTP/1.1 receiver on loopback: answers 204 to each request, counts connections and
/// requests; with `close_after_answer`, closes each connection after its first answer
/// without announcing it.
struct RawReceiver {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl RawReceiver {
    async fn start(close_after_answer: bool) -> RawReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, r.clone(), close_after_answer));
            }
        });
        RawReceiver {
            url,
            connections,
            requests,
        }
    }
}

/// Reads requests off one connection (headers, then `content-length` bytes) and answers each.
async fn serve(mut stream: TcpStream, requests: Arc<AtomicUsize>, close_after_answer: bool) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map(|v| v.trim().parse().unwrap())
            .unwrap_or(0);
        while buf.len() < end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + length);
        requests.fetch_add(1, Ordering::SeqCst);
        if stream
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
        if close_after_answer {
            return;
        }
    }
}

#[tokio::test]
async fn deliveries_to_an_http_target_reuse_one_keep_alive_connection() {
    let app = app_with(json!({})).await;
    let rx = RawReceiver::start(false).await;
    subscribe(&app, json!({"url": rx.url})).await;
    statements(&app, 1, 20).await;
    wait_until("20 deliveries", || async {
        rx.requests.load(Ordering::SeqCst) >= 20
    })
    .await;
    assert_eq!(rx.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_receiver_that_closes_each_connection_after_answering_gets_every_message_on_the_first_attempt()
 {
    let app = app_with(json!({})).await;
    let rx = RawReceiver::start(true).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url})).await;
    statements(&app, 1, 10).await;
    wait_until("10 deliveries", || async {
        rx.requests.load(Ordering::SeqCst) >= 10
    })
    .await;
    wait_until("10 attempts recorded", || async {
        attempts(&app, &id).await.len() >= 10
    })
    .await;
    let recorded = attempts(&app, &id).await;
    assert!(
        recorded
            .iter()
            .all(|a| a["outcome"] == "success" && a["attempt"] == 1),
        "every message delivered on its first attempt: {recorded:#?}"
    );
    assert_eq!(rx.requests.load(Ordering::SeqCst), 10);
}
