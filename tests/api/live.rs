//! The live feed (`GET /events/live`, Server-Sent Events): catch-up from a position, a `live`
//! marker, then new records as they become durable; type filters; resuming with
//! Last-Event-ID; and a reader that falls too far behind is cut off with an `error` event that
//! says where to resume, while the writer is never slowed.
//!
//! The timeouts below are hang guards (a broken feed fails instead of hanging the suite), not
//! timing assertions.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{Value, json};

use crate::helpers::*;

/// How long one read may wait before the test fails as hung.
const HANG_GUARD: Duration = Duration::from_secs(10);

const PROBLEMS: &str = "https://annals.dev/problems/";

/// One Server-Sent Event.
#[derive(Debug)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: String,
}

impl SseEvent {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("{} data is not JSON ({e}): {}", self.event, self.data))
    }
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A minimal SSE client: splits the byte stream on blank lines and reads the `event:`, `id:`
/// and `data:` fields; comments (keep-alives) are skipped.
struct Sse {
    body: Body,
    /// Bytes received and not yet parsed, without carriage returns.
    buf: Vec<u8>,
    ended: bool,
    /// Comment-only blocks (keep-alives) seen so far.
    comments: usize,
}

impl Sse {
    /// Opens the feed at `path` with the read key (and a Last-Event-ID header if given).
    async fn open(app: &TestApp, path: &str, last_event_id: Option<&str>) -> Sse {
        let mut req = app.client.get(app.url(path)).bearer_auth(&app.keys.read);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = tokio::time::timeout(HANG_GUARD, req.send())
            .await
            .expect("hang guard: the feed did not answer")
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        Sse::from_response(resp)
    }

    /// Reads the feed from an answer already received.
    fn from_response(resp: reqwest::Response) -> Sse {
        let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ctype.starts_with("text/event-stream"), "{ctype}");
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: Vec::new(),
            ended: false,
            comments: 0,
        }
    }

    /// The next event, or `None` once the server has ended the stream.
    async fn next(&mut self) -> Option<SseEvent> {
        loop {
            while let Some(block) = self.take_block() {
                match parse_block(&block) {
                    Some(event) => return Some(event),
                    None => self.comments += 1,
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads until a comment-only block (a keep-alive) arrives; no event may come first.
    async fn keep_alive(&mut self) {
        let seen = self.comments;
        while self.comments == seen {
            while let Some(block) = self.take_block() {
                match parse_block(&block) {
                    Some(event) => panic!("expected a keep-alive, got {event:?}"),
                    None => self.comments += 1,
                }
            }
            if self.comments == seen {
                assert!(self.fill().await, "the feed ended; expected a keep-alive");
            }
        }
    }

    /// Reads one chunk into the buffer; false once the stream has ended.
    async fn fill(&mut self) -> bool {
        if self.ended {
            return false;
        }
        match tokio::time::timeout(HANG_GUARD, self.body.next()).await {
            Err(_) => panic!("hang guard: no SSE data within {HANG_GUARD:?}"),
            Ok(None) => {
                self.ended = true;
                false
            }
            // A CR byte is only ever a line terminator, never inside a UTF-8 sequence.
            Ok(Some(Ok(chunk))) => {
                self.buf.extend(chunk.iter().filter(|b| **b != b'\r'));
                true
            }
            Ok(Some(Err(e))) => panic!("the feed broke instead of ending: {e}"),
        }
    }

    /// The next event, which must be named `name`.
    async fn expect(&mut self, name: &str) -> SseEvent {
        let event = self
            .next()
            .await
            .unwrap_or_else(|| panic!("the feed ended; expected a `{name}` event"));
        assert_eq!(event.event, name, "{event:?}");
        event
    }

    /// The next event, which must be a `record`; returns its envelope. Its SSE id is its seq.
    async fn record(&mut self) -> Value {
        let event = self.expect("record").await;
        let envelope = event.json();
        assert_eq!(
            event.id.as_deref(),
            Some(envelope["seq"].to_string().as_str()),
            "the SSE id is the seq"
        );
        envelope
    }

    /// The next event, which must be the `live` marker; returns its seq.
    async fn live(&mut self) -> u64 {
        let event = self.expect("live").await;
        event.json()["seq"].as_u64().expect("live marker seq")
    }

    /// The next complete block (up to a blank line), if the buffer holds one.
    fn take_block(&mut self) -> Option<String> {
        let end = self.buf.windows(2).position(|w| w == b"\n\n")?;
        let block: Vec<u8> = self.buf.drain(..end + 2).take(end).collect();
        Some(String::from_utf8(block).expect("SSE blocks are UTF-8"))
    }
}

/// Parses one event block; `None` for a block of comments only.
fn parse_block(block: &str) -> Option<SseEvent> {
    let (mut event, mut id, mut data) = (None, None, Vec::new());
    for line in block.lines() {
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_string()),
            "id" => id = Some(value.to_string()),
            "data" => data.push(value.to_string()),
            _ => {}
        }
    }
    if event.is_none() && id.is_none() && data.is_empty() {
        return None;
    }
    Some(SseEvent {
        event: event.unwrap_or_else(|| "message".into()),
        id,
        data: data.join("\n"),
    })
}

/// Appends `event` and returns the answer's first position (asserting 201). The writer must
/// never wait for live readers, so a hung append fails the test.
async fn append_ok(app: &TestApp, stream: &str, event: &Value) -> Value {
    let resp = tokio::time::timeout(HANG_GUARD, app.append(stream, event))
        .await
        .expect("hang guard: an append did not answer");
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    let shown: String = body.to_string().chars().take(400).collect();
    assert_eq!(status, 201, "{shown}");
    body["events"][0].clone()
}

/// The value of a metric whose name ends with `name` (any namespace prefix).
async fn metric(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (metric, value) = l.rsplit_once(' ')?;
            (metric == name || metric.ends_with(&format!("_{name}"))).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

#[tokio::test]
async fn catch_up_then_the_live_marker_then_new_appends_arrive_in_order() {
    let app = spawn_app().await;
    app.seed().await;
    append_ok(&app, "process/p", &statement(1)).await;
    append_ok(&app, "process/p", &statement(2)).await;

    let mut feed = Sse::open(&app, "/events/live?from=1", None).await;
    let mut previous_hash = "0".repeat(64);
    // The seed's five records, then the two statements.
    for seq in 1..=7 {
        let rec = feed.record().await;
        assert_eq!(rec["seq"], seq);
        assert_eq!(rec["prev_hash"], previous_hash, "the chain, in order");
        previous_hash = rec["hash"].as_str().unwrap().to_string();
    }
    assert_eq!(feed.live().await, 7);

    let fourth = append_ok(&app, "process/p", &statement(3)).await;
    let fifth = append_ok(&app, "process/p", &meeting("meeting:m1")).await;
    let rec = feed.record().await;
    assert_eq!(rec["seq"], 8);
    assert_eq!(rec["hash"], fourth["hash"]);
    assert_eq!(rec["prev_hash"], previous_hash);
    assert_eq!(rec["data"]["content"], "Statement number 3.");
    let rec = feed.record().await;
    assert_eq!(rec["seq"], 9);
    assert_eq!(rec["id"], fifth["id"]);
    assert_eq!(rec["type"], "meeting.held");
    assert_eq!(rec["stream"], "process/p");
    assert_eq!(rec["recorded_by"], "test-desk");
}

#[tokio::test]
async fn without_from_the_feed_starts_at_the_head_and_sends_only_new_events() {
    let app = spawn_app().await;
    app.seed().await;
    append_ok(&app, "process/p", &statement(1)).await;
    append_ok(&app, "process/p", &statement(2)).await;

    let mut feed = Sse::open(&app, "/events/live", None).await;
    // Nothing to catch up: the marker comes first.
    assert_eq!(feed.live().await, 7);
    append_ok(&app, "process/p", &statement(3)).await;
    let rec = feed.record().await;
    assert_eq!(rec["seq"], 8);
    assert_eq!(rec["data"]["content"], "Statement number 3.");
}

#[tokio::test]
async fn a_type_filter_sends_only_matching_records_in_catch_up_and_live() {
    let app = spawn_app().await;
    app.seed().await;
    append_ok(&app, "process/p", &statement(1)).await; // 6
    append_ok(&app, "process/p", &meeting("meeting:m1")).await; // 7
    append_ok(&app, "process/p", &statement(2)).await; // 8
    append_ok(&app, "process/p", &meeting("meeting:m2")).await; // 9

    let mut feed = Sse::open(&app, "/events/live?from=1&type=meeting.*", None).await;
    let rec = feed.record().await;
    assert_eq!(
        (rec["seq"].as_u64(), rec["type"].as_str()),
        (Some(7), Some("meeting.held"))
    );
    let rec = feed.record().await;
    assert_eq!(
        (rec["seq"].as_u64(), rec["type"].as_str()),
        (Some(9), Some("meeting.held"))
    );
    assert_eq!(feed.live().await, 9);

    append_ok(&app, "process/p", &statement(3)).await; // 10
    append_ok(&app, "process/p", &meeting("meeting:m3")).await; // 11
    let rec = feed.record().await;
    assert_eq!(rec["seq"], 11, "the statement at 10 is skipped");
    assert_eq!(rec["data"]["meeting_id"], "meeting:m3");
}

#[tokio::test]
async fn a_rare_type_filter_crosses_many_search_windows_to_its_match() {
    let app = spawn_app_with(|mut c| {
        c.limits.max_scan_per_read = 3;
        c
    })
    .await;
    app.seed().await;
    for i in 0..20 {
        append_ok(&app, "process/p", &statement(i)).await; // 6..=25
    }
    append_ok(&app, "process/p", &meeting("meeting:m1")).await; // 26

    let mut feed = Sse::open(&app, "/events/live?from=1&type=meeting.*", None).await;
    let rec = feed.record().await;
    assert_eq!(
        (rec["seq"].as_u64(), rec["type"].as_str()),
        (Some(26), Some("meeting.held"))
    );
    assert_eq!(feed.live().await, 26);
}

#[tokio::test]
async fn last_event_id_resumes_after_that_seq_and_wins_over_from() {
    let app = spawn_app().await;
    app.seed().await;
    for n in 1..=4 {
        append_ok(&app, "process/p", &statement(n)).await;
    }
    // A reconnecting browser repeats its URL (from=1) and adds the last id it saw.
    let mut feed = Sse::open(&app, "/events/live?from=1", Some("7")).await;
    assert_eq!(feed.record().await["seq"], 8);
    assert_eq!(feed.record().await["seq"], 9);
    assert_eq!(feed.live().await, 9);
    append_ok(&app, "process/p", &statement(5)).await;
    assert_eq!(feed.record().await["seq"], 10);
}

#[tokio::test]
async fn a_from_beyond_the_head_delivers_records_from_that_seq_on() {
    let app = spawn_app().await;
    app.seed().await;
    let mut feed = Sse::open(&app, "/events/live?from=8", None).await;
    feed.expect("live").await;
    for n in 1..=3 {
        append_ok(&app, "process/p", &statement(n)).await; // 6, 7, 8
    }
    let rec = feed.record().await;
    assert_eq!(rec["seq"], 8, "6 and 7 come before `from`");
}

#[tokio::test]
async fn the_live_marker_reports_the_head_even_when_from_is_beyond_it() {
    let app = spawn_app().await;
    app.seed().await;
    let mut feed = Sse::open(&app, "/events/live?from=10", None).await;
    assert_eq!(feed.live().await, 5, "the contract: data {{\"seq\": head}}");
}

#[tokio::test]
async fn an_idle_feed_gets_keep_alive_comments() {
    let app = spawn_app_with(|c| c.with(json!({"live": {"keep_alive_secs": 1}})).unwrap()).await;
    let mut feed = Sse::open(&app, "/events/live", None).await;
    assert_eq!(feed.live().await, 0);
    feed.keep_alive().await;
    // Still a working feed afterwards.
    app.seed().await;
    assert_eq!(feed.record().await["seq"], 1);
}

#[tokio::test]
async fn stopping_the_server_ends_a_live_feed_that_is_waiting_for_records() {
    let app = spawn_app().await;
    app.seed().await;
    let mut feed = Sse::open(&app, "/events/live?from=1", None).await;
    for seq in 1..=5 {
        assert_eq!(feed.record().await["seq"], seq);
    }
    assert_eq!(feed.live().await, 5);
    tokio::time::timeout(Duration::from_secs(30), app.stop())
        .await
        .expect("hang guard: Server::stop did not finish");
    let after = feed.next().await;
    assert!(after.is_none(), "the feed ends cleanly: {after:?}");
}

#[tokio::test]
async fn the_feed_needs_the_read_scope_and_refuses_malformed_positions() {
    let app = spawn_app().await;
    let anon = app
        .client
        .get(app.url("/events/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let appender = app
        .client
        .get(app.url("/events/live"))
        .bearer_auth(&app.keys.append)
        .send()
        .await
        .unwrap();
    assert_eq!(appender.status(), 403);

    let bad_from = app.get("/events/live?from=abc").await;
    assert_eq!(bad_from.status(), 400);
    let p: Value = bad_from.json().await.unwrap();
    assert_eq!(p["type"], format!("{PROBLEMS}bad-query"));
    assert_eq!(p["errors"][0]["pointer"], "?from");

    let bad_id = app
        .client
        .get(app.url("/events/live"))
        .bearer_auth(&app.keys.read)
        .header("last-event-id", "not-a-seq")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_id.status(), 400);
    let p: Value = bad_id.json().await.unwrap();
    assert_eq!(p["type"], format!("{PROBLEMS}bad-query"));
}

#[tokio::test]
async fn a_last_event_id_at_the_largest_seq_is_answered_not_dropped() {
    let app = spawn_app().await;
    let resp = app
        .client
        .get(app.url("/events/live"))
        .bearer_auth(&app.keys.read)
        .header("last-event-id", u64::MAX.to_string())
        .send()
        .await
        .expect("an HTTP answer, not a dropped connection");
    // Either refused as a position that cannot exist, or a feed that waits beyond the head.
    match resp.status().as_u16() {
        200 => assert_eq!(Sse::from_response(resp).live().await, 0),
        400 => {
            let p: Value = resp.json().await.unwrap();
            assert_eq!(p["type"], format!("{PROBLEMS}bad-query"));
        }
        other => panic!("unexpected status {other}"),
    }
    // And the server goes on serving.
    assert_eq!(app.get("/log").await.status(), 200);
}

/// Reads what a feed sends after falling behind: the records (which must continue without a
/// gap from `first_new`), then the `error` event, then the end of the stream. Returns the
/// seqs read and the problem.
async fn read_until_cut_off(feed: &mut Sse, first_new: u64) -> (Vec<u64>, Value) {
    let mut seqs = Vec::new();
    loop {
        let event = feed
            .next()
            .await
            .expect("the feed ended without an `error` event");
        match event.event.as_str() {
            "record" => {
                let seq = event.json()["seq"].as_u64().unwrap();
                assert_eq!(seq, first_new + seqs.len() as u64, "no gap, no repeat");
                seqs.push(seq);
            }
            "error" => {
                let problem = event.json();
                let after = feed.next().await;
                assert!(
                    after.is_none(),
                    "the stream ends after the error: {after:?}"
                );
                return (seqs, problem);
            }
            other => panic!("unexpected `{other}` event: {event:?}"),
        }
    }
}

/// Asserts the cut-off problem and returns its `resume_from`.
fn assert_too_slow(problem: &Value, seqs: &[u64], first_new: u64, head: u64) -> u64 {
    assert_eq!(
        problem["type"],
        format!("{PROBLEMS}reader-too-slow"),
        "{problem}"
    );
    assert_eq!(problem["status"], 429, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("max_lag"),
        "the detail names the limit: {problem}"
    );
    let resume_from = problem["resume_from"].as_u64().expect("resume_from");
    assert_eq!(
        resume_from,
        seqs.last().map_or(first_new, |s| s + 1),
        "{problem}"
    );
    assert!(
        resume_from + 5 <= head,
        "it was more than max_lag behind: {problem}"
    );
    resume_from
}

/// Reconnecting at `resume_from` catches up on everything (catch-up is never cut off).
async fn assert_resumes(app: &TestApp, resume_from: u64, head: u64) {
    let mut again = Sse::open(app, &format!("/events/live?from={resume_from}"), None).await;
    for seq in resume_from..=head {
        assert_eq!(again.record().await["seq"], seq);
    }
    assert_eq!(again.live().await, head);
}

/// The most bytes the kernel may hold between the server and a client that does not read:
/// the largest send buffer plus the largest receive buffer (Linux; a generous guess elsewhere).
fn socket_buffer_budget() -> usize {
    let max_of = |paths: &[&str]| -> Option<usize> {
        paths
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .filter_map(|s| s.split_whitespace().last()?.parse::<usize>().ok())
            .max()
    };
    let send = max_of(&["/proc/sys/net/ipv4/tcp_wmem", "/proc/sys/net/core/wmem_max"]);
    let recv = max_of(&["/proc/sys/net/ipv4/tcp_rmem", "/proc/sys/net/core/rmem_max"]);
    match (send, recv) {
        (Some(s), Some(r)) => s + r,
        _ => 64 << 20,
    }
}

/// A statement carrying about `size` bytes of claims (texts are at most 4000 characters),
/// so that a few hundred fill the socket buffers.
fn bulky_statement(n: u64, size: usize) -> Value {
    let mut event = statement(n);
    let claims: Vec<String> = (0..size.div_ceil(4000))
        .map(|i| format!("{n}.{i} {}", "x".repeat(3980)))
        .collect();
    event["data"]["claims"] = json!(claims);
    event
}

const BULK: usize = 100_000;

/// A server whose events may carry `BULK` bytes and whose live readers may lag by 5.
async fn spawn_bulky_app() -> TestApp {
    spawn_app_with(|c| {
        c.with(json!({
            "server": {"shutdown_grace_secs": 1},
            "live": {"max_lag": 5},
            // max_lag must cover one group commit, so groups and batches stay within 5.
            "log": {"durability": "os", "max_group_events": 5},
            "limits": {"max_event_bytes": BULK + 10_000, "max_events_per_request": 5}
        }))
        .unwrap()
    })
    .await
}

/// Opens a live feed and, without reading it, appends one event per request until the
/// kernel's socket buffers must be full (and then some): the server side of the feed has to
/// stop and wait for the reader. Returns the feed and the head.
async fn stall_a_live_reader(app: &TestApp) -> (Sse, u64) {
    app.seed().await;
    let mut feed = Sse::open(app, "/events/live", None).await;
    assert_eq!(feed.live().await, 5, "after the seed's five records");
    let count = (socket_buffer_budget() / BULK + 50) as u64;
    for n in 0..count {
        // One event per request: the head moves by one at a time, so only a reader whose
        // buffers are full can fall behind.
        append_ok(app, "process/p", &bulky_statement(n, BULK)).await;
    }
    let head = app.head().await.0;
    assert_eq!(head, count + 5);
    (feed, head)
}

#[tokio::test]
async fn a_reader_that_stops_reading_is_cut_off_once_its_buffers_are_full_and_never_slows_appends()
{
    let app = spawn_bulky_app().await;
    let (mut feed, head) = stall_a_live_reader(&app).await;

    // Now read: what the buffers held arrives, then the cut-off.
    let (seqs, problem) = read_until_cut_off(&mut feed, 6).await;
    let resume_from = assert_too_slow(&problem, &seqs, 6, head);
    assert!(
        (seqs.len() as u64) < head - 5,
        "it was cut off before the end"
    );
    assert!(metric(&app, "live_cutoffs_total").await >= 1.0);
    assert_resumes(&app, resume_from, head).await;
}

#[tokio::test]
async fn stopping_the_server_finishes_while_a_live_reader_does_not_read() {
    let app = spawn_bulky_app().await;
    let (_feed, _head) = stall_a_live_reader(&app).await;
    // The reader keeps its connection open and never reads again.
    tokio::time::timeout(Duration::from_secs(60), app.stop())
        .await
        .expect("hang guard: Server::stop did not finish while a live reader was stalled");
}

#[tokio::test]
async fn after_stop_the_folder_opens_again_with_every_record_though_a_stalled_reader_is_connected()
{
    let app = spawn_bulky_app().await;
    let (_feed, head) = stall_a_live_reader(&app).await;
    let dir = tokio::time::timeout(Duration::from_secs(60), app.stop())
        .await
        .expect("hang guard: Server::stop did not finish while a live reader was stalled");
    // "Closes the store": flushed and let go of, so it opens again at once with every record.
    let again = annals::Server::start(test_config(dir.path()), annals::StartOptions::default())
        .await
        .unwrap();
    assert_eq!(again.log().head().seq, head);
    again.stop().await;
}
