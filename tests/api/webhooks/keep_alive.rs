//! Plain-HTTP targets get keep-alive connections: many deliveries to one subscription reuse
//! one TCP connection, and a receiver that closes its connection after each answer (as a
//! proxy's idle timeout would) still gets every message on its first attempt. An answer is
//! read by its framing (a length, chunks, the close, after an interim 100), whole however
//! the target splits its writes. The receiver here is a raw TCP server, so it can count
//! connections, close them and shape its answers at will.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::support::*;

/// How the raw receiver answers.
#[derive(Clone, Copy)]
enum Answers {
    /// 204 to each request, the connection kept.
    NoContent,
    /// 204, then the connection closed without announcing it.
    CloseAfterAnswer,
    /// The n-th request overall (from 0) gets answer `n % 4` of [`framed`]: every framing a
    /// target may use, each written in pieces.
    Framed,
}

/// The `i % 4`-th framed answer, in the pieces it is written in (a pause between them, so
/// they arrive apart), and whether the connection ends after it: a length, chunks with an
/// extension and a trailer, an interim 100 before a 204, a body that ends with the close.
fn framed(i: usize) -> (Vec<&'static [u8]>, bool) {
    match i % 4 {
        0 => (
            vec![
                b"HTTP/1.1 200 OK\r\nContent-Le",
                b"ngth: 5\r\n\r\nhel",
                b"lo",
            ],
            false,
        ),
        1 => (
            vec![
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nhel\r",
                b"\n2\r\nlo\r\n0\r\nx-trailer: t\r\n",
                b"\r\n",
            ],
            false,
        ),
        2 => (
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
            ],
            false,
        ),
        _ => (
            vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhel", b"lo"],
            true,
        ),
    }
}

/// A raw HTTP/1.1 receiver on loopback: answers each request as `answers` says, counts
/// connections and requests.
struct RawReceiver {
    url: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl RawReceiver {
    async fn start(answers: Answers) -> RawReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (connections.clone(), requests.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(stream, r.clone(), answers));
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
async fn serve(mut stream: TcpStream, requests: Arc<AtomicUsize>, answers: Answers) {
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
        let n = requests.fetch_add(1, Ordering::SeqCst);
        let (pieces, close) = match answers {
            Answers::NoContent => (vec![&b"HTTP/1.1 204 No Content\r\n\r\n"[..]], false),
            Answers::CloseAfterAnswer => (vec![&b"HTTP/1.1 204 No Content\r\n\r\n"[..]], true),
            Answers::Framed => framed(n),
        };
        for piece in pieces {
            if stream.write_all(piece).await.is_err() || stream.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if close {
            return;
        }
    }
}

#[tokio::test]
async fn deliveries_to_an_http_target_reuse_one_keep_alive_connection() {
    let app = app_with(json!({})).await;
    let rx = RawReceiver::start(Answers::NoContent).await;
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
    let rx = RawReceiver::start(Answers::CloseAfterAnswer).await;
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

#[tokio::test]
async fn an_answer_is_read_whole_by_its_length_its_chunks_or_its_close_however_it_is_split() {
    let app = app_with(json!({})).await;
    let rx = RawReceiver::start(Answers::Framed).await;
    let (id, _) = subscribe(&app, json!({"url": rx.url})).await;
    statements(&app, 1, 12).await;
    wait_until("12 attempts recorded", || async {
        attempts(&app, &id).await.len() >= 12
    })
    .await;
    let mut recorded = attempts(&app, &id).await;
    recorded.sort_by_key(|a| a["seq"].as_u64());
    assert!(
        recorded
            .iter()
            .all(|a| a["outcome"] == "success" && a["attempt"] == 1),
        "every message delivered on its first attempt: {recorded:#?}"
    );
    // Ordered: the n-th message got the n-th answer. The body the attempt kept is the one
    // the target sent, without chunk sizes, extensions or trailers.
    for (i, a) in recorded.iter().enumerate() {
        let expected = if i % 4 == 2 { "" } else { "hello" };
        assert_eq!(
            a["response"].as_str().unwrap_or(""),
            expected,
            "answer {i}: {a:#}"
        );
    }
    assert_eq!(rx.requests.load(Ordering::SeqCst), 12);
    // A connection is kept after a length, chunks and a 204, and ends with a body that ends
    // with the close: the 4th and the 8th answer each cost one new connection.
    assert_eq!(rx.connections.load(Ordering::SeqCst), 3);
}
