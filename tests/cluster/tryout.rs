//! The README's try-out cluster ("Run a cluster"): `config/cluster/run.sh`, one command, starts 3
//! NATS nodes and 2 Annals nodes on loopback that share one log. Run from a copy of
//! `config/cluster/` in a temp folder (the script works under the folder it sits in, so its
//! state stays there), with this build's `annals` and the tests' `nats-server`. It uses the fixed
//! ports the README names (4222-4224, 6222-6224, 8222-8224, 8081, 8082); every process it starts
//! is killed when the test ends.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use uuid::Uuid;

use crate::api_helpers::source_event;
use crate::nats::server_binary;

/// The script's process group: every server it started is in it. Killed on drop.
struct Tryout {
    child: Child,
    stopped: bool,
}

impl Tryout {
    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let kill = |signal: &str| {
            let _ = Command::new("kill")
                .args([signal, "--", &group])
                .stderr(Stdio::null())
                .status();
        };
        // TERM first: the script's trap stops its servers; then anything left.
        kill("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        kill("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Tryout {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The two nodes' addresses and demo keys, as they printed them (two processes writing to one
/// pipe: their lines may interleave, so a key is not paired with the address before it).
fn printed(lines: &mpsc::Receiver<String>) -> (Vec<String>, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(180);
    let (mut addrs, mut keys) = (Vec::new(), Vec::new());
    while keys.len() < 2 || addrs.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|e| panic!("the try-out cluster printed {addrs:?} by now: {e}"));
        if let Some(a) = line.strip_prefix("listening on ") {
            addrs.push(a.to_string());
        } else if let Some(k) = line.strip_prefix("demo key: ") {
            keys.push(k.to_string());
        }
    }
    addrs.sort();
    (addrs, keys)
}

/// A key of `keys` that the node at `base` takes for reads.
async fn key_of(client: &reqwest::Client, base: &str, keys: &[String]) -> String {
    for key in keys {
        if head(client, base, key).await.is_some() {
            return key.clone();
        }
    }
    panic!("{base} takes none of the printed keys");
}

async fn head(client: &reqwest::Client, base: &str, key: &str) -> Option<u64> {
    let resp = client
        .get(format!("{base}/log"))
        .bearer_auth(key)
        .send()
        .await
        .ok()?;
    let v: Value = resp.json().await.ok()?;
    v["seq"].as_u64()
}

#[tokio::test]
async fn the_try_out_script_starts_two_annals_nodes_that_share_one_log_over_three_nats_nodes() {
    let root = tempfile::tempdir().unwrap();
    let config = root.path().join("config/cluster");
    std::fs::create_dir_all(&config).unwrap();
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/config/cluster")).unwrap()
    {
        let path = entry.unwrap().path();
        std::fs::copy(&path, config.join(path.file_name().unwrap())).unwrap();
    }
    let mut child = Command::new("bash");
    child
        .arg(config.join("run.sh"))
        .env("ANNALS_BIN", env!("CARGO_BIN_EXE_annals"))
        .env("NATS_SERVER", server_binary())
        .env("ANNALS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0);
    let mut tryout = Tryout {
        child: child.spawn().unwrap(),
        stopped: false,
    };
    let stdout = tryout.child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let (addrs, keys) = printed(&lines);
    assert_eq!(addrs, ["http://127.0.0.1:8081", "http://127.0.0.1:8082"]);
    let (a, b) = (addrs[0].clone(), addrs[1].clone());
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let (key_a, key_b) = (
        key_of(&client, &a, &keys).await,
        key_of(&client, &b, &keys).await,
    );

    // Both nodes loaded the demo into the one stream: the same head, once caught up.
    let deadline = Instant::now() + Duration::from_secs(60);
    let demo = loop {
        let (ha, hb) = (
            head(&client, &a, &key_a).await,
            head(&client, &b, &key_b).await,
        );
        if let (Some(ha), Some(hb)) = (ha, hb)
            && ha == hb
            && ha > 0
        {
            break ha;
        }
        assert!(Instant::now() < deadline, "heads {ha:?} and {hb:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    // An event appended on A is read on B.
    let source = format!("src:tryout-{}", Uuid::now_v7().simple());
    let resp = client
        .post(format!("{a}/streams/registry%2Fsources/events"))
        .bearer_auth(&key_a)
        .json(&source_event(&source))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
    let appended: Value = resp.json().await.unwrap();
    let seq = appended["events"][0]["seq"].as_u64().unwrap();
    assert_eq!(seq, demo + 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    while head(&client, &b, &key_b).await != Some(seq) {
        assert!(Instant::now() < deadline, "B did not reach seq {seq}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let read: Value = client
        .get(format!("{b}/events?from={seq}"))
        .bearer_auth(&key_b)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let event = &read["events"][0];
    assert_eq!(event["id"], appended["events"][0]["id"]);
    assert_eq!(event["hash"], appended["events"][0]["hash"]);
    assert_eq!(event["data"]["source_id"], source.as_str());

    // The script's state stays beside it: both nodes' folders, the NATS stores.
    tryout.stop();
    for dir in ["annals-a", "annals-b", "nats-1", "nats-2", "nats-3"] {
        assert!(root.path().join("data/cluster").join(dir).is_dir(), "{dir}");
    }
}
