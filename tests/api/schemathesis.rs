//! The served contract survives schemathesis 4 (PyPI), run against the real server with the demo
//! loaded and the demo key: the examples, coverage, fuzzing and stateful phases, every check
//! (`--checks all`), following the document's links (a created subscription to its routes, an
//! append to its event). The run must end with no failure, no error, no unresolvable reference
//! and no operation skipped. The package is installed on first use into
//! `<target>/pydeps-schemathesis` with pip (PyPI is the only network this needs).

use std::path::{Path, PathBuf};
use std::process::Command;

use annals::{Server, StartOptions};
use serde_json::{Value, json};

use crate::helpers::test_config;

/// Test cases per operation and phase. At 10 the whole test takes about 80 s on a 2-core box
/// (the append route's event schema is the slow one to generate); see the report.
const MAX_EXAMPLES: &str = "10";

/// `schemathesis==4.*`, installed under `<target>/pydeps-schemathesis` on first use.
fn ensure_schemathesis() -> PathBuf {
    crate::helpers::python_package(
        "pydeps-schemathesis",
        "schemathesis.cli",
        "schemathesis==4.*",
    )
}

/// What schemathesis is told beyond the command line.
///
/// - `positive_data_acceptance` also expects 422 on the routes whose refusals depend on state
///   no static document can state: a seq or size beyond the log's current head (proofs,
///   export, `min_seq`), an event's references to what the log holds (append), a webhook
///   target's DNS. 400 (malformed input) still fails the check there.
/// - The live feed never ends: one event per response is read and checked.
/// - Webhook targets: every `url` the fuzzer sends is one of the loopback discard addresses
///   below, so no subscription made by the run can ever deliver the demo data to a host on the
///   internet (a fuzzed `https://a.com` may resolve). The server is configured with
///   `webhooks.allow_private_targets = true` so these are accepted, and the stateful phase has
///   real subscriptions to follow links from; their deliveries are refused by the port.
const CONFIG: &str = r#"
[dictionaries.webhook-targets]
values = ["http://127.0.0.1:9/annals", "http://[::1]:9/annals"]

[[operations]]
include-path-regex = "^/(audit/(root|proof|replay)|export|projections|streams/\\{stream\\}/events|subscriptions)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]
include-path = "/events/live"
max-stream-events = 1

[[operations]]
include-path-regex = "^/subscriptions(/\\{id\\})?$"
include-method-regex = "^(POST|PATCH)$"
parameters."body.url" = { dictionary = "webhook-targets", probability = 1.0 }
"#;

/// Runs `st run` against `base` with `key`; returns (exit code, console output, JSON report).
fn run_schemathesis(pythonpath: &Path, work: &Path, base: &str, key: &str) -> (i32, String, Value) {
    let config = work.join("schemathesis.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let report = work.join("report.json");
    let out = Command::new("python3")
        .arg(pythonpath.join("bin").join("st"))
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "all"])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES])
        // One worker: the box has two cores, and the server needs one.
        .args(["--workers", "1"])
        // The event schema's ids combine a kind's prefix with the entity-id pattern; hypothesis
        // draws them by filtering, which this health check (about generation speed, not about
        // the API) counts against the append route.
        .args(["--suppress-health-check", "filter_too_much"])
        .args(["--report", "json", "--report-json-path"])
        .arg(&report)
        .env("PYTHONPATH", pythonpath)
        .env("NO_COLOR", "1")
        .current_dir(work)
        .output()
        .expect("python3 runs schemathesis");
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = std::fs::read(&report)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("schemathesis wrote no JSON report:\n{console}"));
    (out.status.code().unwrap_or(-1), console, report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_failure_no_error_and_skips_no_operation() {
    let pythonpath = tokio::task::spawn_blocking(ensure_schemathesis)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(&dir.path().join("data"))
        .with(json!({"webhooks": {"allow_private_targets": true}}))
        .unwrap();
    let server = Server::start(
        config,
        StartOptions {
            demo: true,
            extra_keys: Vec::new(),
            ..StartOptions::default()
        },
    )
    .await
    .unwrap();
    assert!(server.demo_loaded > 0);
    let key = server.demo_key.clone().unwrap();
    let base = format!("http://{}", server.addr());
    let work = dir.path().to_path_buf();
    let (code, console, report) =
        tokio::task::spawn_blocking(move || run_schemathesis(&pythonpath, &work, &base, &key))
            .await
            .unwrap();
    server.stop().await;

    let what = |field: &str| format!("{field} in {report}\n{console}", report = report[field]);
    assert_eq!(report["complete"], true, "{}", what("complete"));
    let ops = &report["operations"];
    assert!(
        ops["total"].as_u64().unwrap() >= 39,
        "{}",
        what("operations")
    );
    assert_eq!(ops["selected"], ops["total"], "{}", what("operations"));
    assert_eq!(ops["tested"], ops["total"], "{}", what("operations"));
    assert_eq!(ops["skipped"], 0, "{}", what("operations"));
    assert_eq!(ops["errored"], 0, "{}", what("operations"));
    for phase in ["examples", "coverage", "fuzzing", "stateful"] {
        assert_eq!(
            report["phases"][phase]["status"],
            "success",
            "{}",
            what("phases")
        );
    }
    assert_eq!(report["failures"], json!([]), "{}", what("failures"));
    assert_eq!(report["errors"], json!([]), "{}", what("errors"));
    assert_eq!(
        report["test_cases"]["with_failures"],
        0,
        "{}",
        what("test_cases")
    );
    assert_eq!(report["test_cases"]["errored"], 0, "{}", what("test_cases"));
    assert_eq!(
        report["warnings"]["unresolvable_reference"],
        json!([]),
        "{}",
        what("warnings")
    );
    assert_eq!(code, 0, "schemathesis exit code\n{console}");
    // The stateful phase followed links (a subscription created, then used).
    let covered = console
        .split_once("API Links:")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        covered.is_some_and(|n| n > 0),
        "links covered: {covered:?}\n{console}"
    );
}
