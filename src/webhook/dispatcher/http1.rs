//! The plain-HTTP client of a subscription: hyper's HTTP/1.1 connections straight over TCP to
//! the addresses the target guard has just checked, kept alive in a small pool of the
//! subscription's own. reqwest (kept for https targets) parsed the URL again, ran its redirect
//! and retry layers and cloned its connector on every attempt: a tenth of the delivery
//! threads' time at 20k deliveries/s. Here the request line and `Host` are made once per task.
//! This module must never follow a redirect (nothing here does), never connect to an address
//! the guard did not check, never read an answer past `webhooks.max_response_bytes`, and
//! never wait longer than the configured timeouts.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HOST, HeaderMap, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use reqwest::Url;

use super::send::root_cause;

/// What a response left: its status, headers and first bytes.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) preview: Vec<u8>,
}

/// Why an attempt got no answer.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    /// No answer (connect included) within `webhooks.timeout_ms`.
    #[error("timed out")]
    Timeout,
    /// No checked address accepted a connection.
    #[error("connection failed: {0}")]
    Connect(String),
    /// The request or its answer failed on the connection.
    #[error("request failed: {0}")]
    Request(String),
}

/// The parts of every request to one target, made once per task.
pub(super) struct Target {
    /// The origin-form request target (path and query).
    uri: Uri,
    /// `Host`: the URL's host, with its port when not the default.
    host: HeaderValue,
}

impl Target {
    /// The parts of an `http` URL's requests; `None` for any other URL (reqwest sends those).
    pub(super) fn new(url: &Url) -> Option<Target> {
        if url.scheme() != "http" {
            return None;
        }
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let host = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        Some(Target {
            uri: path.parse().ok()?,
            host: HeaderValue::from_str(&host).ok()?,
        })
    }
}

/// Idle keep-alive connections to the addresses last checked (a new set empties it).
#[derive(Default)]
pub(super) struct Pool {
    addrs: Vec<SocketAddr>,
    idle: Vec<SendRequest<Full<Bytes>>>,
}

/// The most idle connections a subscription keeps (its in-flight bound is the real limit; a
/// burst beyond this opens connections that are closed after use).
const MAX_IDLE: usize = 64;

/// The limits of one attempt.
pub(super) struct Limits {
    pub(super) timeout: Duration,
    pub(super) connect_timeout: Duration,
    pub(super) max_response_bytes: usize,
    pub(super) preview_bytes: usize,
}

/// Sends one POST to `target` over a pooled connection to `addrs` (or a new one), within the
/// timeout, and reads at most `max_response_bytes` of the answer. `headers` are the request's
/// own (`Host`, `User-Agent` are added here).
pub(super) async fn post(
    pool: &std::sync::Mutex<Pool>,
    target: &Target,
    addrs: &[SocketAddr],
    mut headers: HeaderMap,
    body: Bytes,
    limits: &Limits,
) -> Result<Answer, SendError> {
    headers.insert(HOST, target.host.clone());
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(super::context::USER_AGENT),
    );
    let request = |headers: HeaderMap, body: Bytes| {
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = target.uri.clone();
        *req.headers_mut() = headers;
        req
    };
    let attempt = async {
        // A pooled connection the target closed while it was idle fails without an answer:
        // the close may reach us only after the request went out (a reset). The request then
        // goes again once, on a new connection. The target may have seen it, which at least
        // once allows: the webhook-id is the same, as with an idempotency key, which is when
        // Go's client does the same.
        if let Some(conn) = checkout(pool, addrs)
            && let Ok(answer) = exchange(
                pool,
                addrs,
                conn,
                request(headers.clone(), body.clone()),
                limits,
            )
            .await
        {
            return Ok(answer);
        }
        let conn = connect(addrs, limits.connect_timeout).await?;
        exchange(pool, addrs, conn, request(headers, body), limits).await
    };
    tokio::time::timeout(limits.timeout, attempt)
        .await
        .unwrap_or(Err(SendError::Timeout))
}

/// An idle connection to the same addresses that can take a request now.
fn checkout(
    pool: &std::sync::Mutex<Pool>,
    addrs: &[SocketAddr],
) -> Option<SendRequest<Full<Bytes>>> {
    let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
    if pool.addrs != addrs {
        pool.addrs = addrs.to_vec();
        pool.idle.clear();
        return None;
    }
    while let Some(conn) = pool.idle.pop() {
        if conn.is_ready() {
            return Some(conn);
        }
    }
    None
}

/// Connects to the first checked address that accepts, each within the connect timeout; the
/// connection is driven by a task on this (delivery) thread.
async fn connect(
    addrs: &[SocketAddr],
    connect_timeout: Duration,
) -> Result<SendRequest<Full<Bytes>>, SendError> {
    let mut last = String::from("no address to connect to");
    for addr in addrs {
        let stream =
            match tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    last = format!("{addr}: {e}");
                    continue;
                }
                Err(_) => {
                    last = format!("{addr}: no connection within the connect timeout");
                    continue;
                }
            };
        // Requests are small and one at a time per connection: never wait on Nagle.
        let _ = stream.set_nodelay(true);
        let (mut send, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SendError::Connect(root_cause(&e)))?;
        tokio::spawn(async move {
            // Ends when the connection closes or its sender is dropped; an error here already
            // failed the request it carried.
            let _ = conn.await;
        });
        send.ready()
            .await
            .map_err(|e| SendError::Connect(root_cause(&e)))?;
        return Ok(send);
    }
    Err(SendError::Connect(last))
}

/// One request on `conn`; the connection goes back to the pool once its answer is read whole.
async fn exchange(
    pool: &std::sync::Mutex<Pool>,
    addrs: &[SocketAddr],
    mut conn: SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
    limits: &Limits,
) -> Result<Answer, SendError> {
    let resp = match conn.send_request(req).await {
        Ok(r) => r,
        Err(e) => return Err(SendError::Request(root_cause(&e))),
    };
    let (parts, mut body) = resp.into_parts();
    let mut preview = Vec::new();
    let mut read = 0usize;
    let mut whole = false;
    // Read no more than the cap: a target cannot make us buffer an endless answer.
    loop {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Ok(chunk) = frame.into_data() {
                    read += chunk.len();
                    let room = limits.preview_bytes.saturating_sub(preview.len());
                    preview.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if read >= limits.max_response_bytes {
                        break;
                    }
                }
            }
            None => {
                whole = true;
                break;
            }
            // The status already arrived; a broken body does not change the verdict.
            Some(Err(_)) => break,
        }
    }
    // Only a connection whose answer was read to its end can carry the next request.
    if whole && !conn.is_closed() {
        let mut pool = pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.addrs == addrs && pool.idle.len() < MAX_IDLE {
            pool.idle.push(conn);
        }
    }
    Ok(Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        preview,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_http_target_sends_its_path_and_query_and_names_its_host_with_a_non_default_port() {
        let url = Url::parse("http://example.com:8080/hook/1?x=2").unwrap(); // ok: test code
        let t = Target::new(&url).unwrap(); // ok: test code
        assert_eq!(t.uri, "/hook/1?x=2");
        assert_eq!(t.host, "example.com:8080");
        let url = Url::parse("http://example.com/").unwrap(); // ok: test code
        let t = Target::new(&url).unwrap(); // ok: test code
        assert_eq!(t.uri, "/");
        assert_eq!(t.host, "example.com");
    }

    #[test]
    fn an_https_target_is_left_to_the_tls_client() {
        let url = Url::parse("https://example.com/hook").unwrap(); // ok: test code
        assert!(Target::new(&url).is_none());
    }
}
