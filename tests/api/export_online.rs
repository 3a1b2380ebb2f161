//! `annals export --server`, the online export, against the real binary serving the demo log:
//! it writes byte for byte what the offline export of the same folder writes (whole, and up to
//! `--to`), so an audit no longer needs the server stopped; a refused key and an unreachable
//! server end it with a clear message and the documented exit code.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::*;

/// `annals serve --demo` on its own folder; killed if the test ends before stopping it.
struct DemoBinary {
    child: Child,
    _stdout: BufReader<ChildStdout>,
    base: String,
    key: String,
}

impl DemoBinary {
    fn start(data: &Path) -> DemoBinary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
            .args(["serve", "--demo", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env("ANNALS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let (mut first, mut second) = (String::new(), String::new());
        stdout.read_line(&mut first).unwrap();
        stdout.read_line(&mut second).unwrap();
        let base = first
            .trim_end()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {first:?}"))
            .to_string();
        let key = second
            .trim_end()
            .strip_prefix("demo key: ")
            .unwrap_or_else(|| panic!("unexpected second line: {second:?}"))
            .to_string();
        DemoBinary {
            child,
            _stdout: stdout,
            base,
            key,
        }
    }

    /// SIGTERM, as an operator stopping the service would, and waits for a clean exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "serve did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for DemoBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `annals` with extra environment variables; returns (exit code, stdout, stderr).
fn run_cli_env(args: &[&str], envs: &[(&str, &str)]) -> (i32, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(args)
        .env("ANNALS_LOG", "warn")
        .env_remove("ANNALS_KEY")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn online_export_is_byte_identical_to_the_offline_export_of_the_same_folder_whole_and_up_to_to() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = DemoBinary::start(&data);

    let (code, online, err) = run_cli_env(
        &["export", "--server", &server.base, "--key", &server.key],
        &[],
    );
    assert_eq!(code, 0, "annals export --server: {err}");
    // The key from the environment, and a prefix of the log.
    let (code, online_to, err) = run_cli_env(
        &["export", "--server", &server.base, "--to", "10"],
        &[("ANNALS_KEY", &server.key)],
    );
    assert_eq!(code, 0, "annals export --server --to 10: {err}");
    server.stop();

    wait_until_released(&data);
    let (code, offline, err) = run_cli_env(&["export", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "annals export: {err}");
    let lines = annals::server::DEMO_NDJSON
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    assert_eq!(offline.iter().filter(|b| **b == b'\n').count(), lines);

    assert!(
        online == offline,
        "the online export differs from the offline one:\nonline:\n{}\noffline:\n{}",
        String::from_utf8_lossy(&online),
        String::from_utf8_lossy(&offline)
    );
    let first_ten: usize = offline
        .split_inclusive(|b| *b == b'\n')
        .take(10)
        .map(<[u8]>::len)
        .sum();
    assert!(
        online_to == offline[..first_ten],
        "--to 10 is not the first 10 lines of the offline export:\n{}",
        String::from_utf8_lossy(&online_to)
    );
}

#[test]
fn online_export_with_a_key_the_server_does_not_know_exits_2_naming_the_401_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = DemoBinary::start(&dir.path().join("data"));
    let stranger = TestKeys::new().read;
    let (code, out, err) = run_cli_env(
        &["export", "--server", &server.base, "--key", &stranger],
        &[],
    );
    assert_eq!(code, 2, "stderr: {err}");
    assert!(err.contains("401"), "{err}");
    assert!(
        err.contains("--key"),
        "the message says how to give a key: {err}"
    );
    assert!(
        !err.contains(&stranger),
        "the key must not be echoed: {err}"
    );
    assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
    server.stop();
}

#[test]
fn online_export_from_a_server_that_is_not_there_exits_1_saying_it_cannot_reach_it() {
    // A port that was free a moment ago: nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let (code, out, err) = run_cli_env(&["export", "--server", &base, "--key", "ak_x"], &[]);
    assert_eq!(code, 1, "stderr: {err}");
    assert!(err.contains("cannot reach"), "{err}");
    assert!(err.contains(&base), "{err}");
    assert!(out.is_empty());
}
