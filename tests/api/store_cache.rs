//! `log.cache_capacity_bytes` bounds sled's page cache in the real binary: reading a log many
//! times larger than the cache keeps the process's memory near its size, where a large cache
//! holds the log. Memory is the kernel's own count (VmHWM in /proc), not a timing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::helpers::*;

/// Records in the log: sled 0.34's LRU is 256 shards that each take in page accesses 64 at a
/// time, so up to about 16k pages stay in memory whatever the bound. The log must have many
/// times more pages than that (a leaf holds at most 16 keys) for the bound to show.
const RECORDS: u64 = 500_000;
const PAD_BYTES: usize = 100;
const MIB: u64 = 1 << 20;

/// A data folder whose log holds `RECORDS` records of about 150 bytes, written straight into
/// the store: what `annals export` reads of a record is its key, hash and JSON, and appending
/// half a million events through the API would take minutes. Uncompressed, so that sled's
/// count of a page (its stored size) is about its size in memory.
fn fill(dir: &Path) -> u64 {
    let mut options = annals::config::Config::defaults().unwrap().log;
    options.compression = false;
    let (db, tree) = annals::log::raw::open_tree(dir, &options).unwrap();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut bytes = 0;
    for chunk in (1..=RECORDS).collect::<Vec<_>>().chunks(10_000) {
        let mut batch = sled::Batch::default();
        for &seq in chunk {
            let pad: String = (0..PAD_BYTES)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b'a' + (state % 26) as u8)
                })
                .collect();
            let mut value = vec![0u8; 32];
            value.extend_from_slice(format!("{{\"seq\":{seq},\"pad\":\"{pad}\"}}").as_bytes());
            bytes += value.len() as u64;
            batch.insert(annals::log::raw::event_key(seq), value);
        }
        tree.apply_batch(batch).unwrap();
    }
    let mut head = RECORDS.to_be_bytes().to_vec();
    head.extend_from_slice(&[0u8; 32]);
    tree.insert("h", head).unwrap();
    db.flush().unwrap();
    drop(tree);
    drop(db);
    bytes
}

/// A field of /proc/PID/status, in bytes.
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

/// Peak memory of `annals export` with a cache of `cache` bytes: (peak once the first record
/// is out, peak once 95% of the records are out). The export is held back by not reading its
/// pipe, so each sample is taken while the process is alive and reading.
fn export_peaks(dir: &Path, cache: u64, records: usize) -> (u64, u64) {
    wait_until_released(dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_annals"))
        .args(["export", "--data-dir", dir.to_str().unwrap()])
        .env("ANNALS_LOG", "warn")
        .env("ANNALS_LOG__CACHE_CAPACITY_BYTES", cache.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let (mut first, mut late) = (0, 0);
    let mut n = 0;
    while out.read_line(&mut line).unwrap() > 0 {
        n += 1;
        if n == 1 {
            first = status_bytes(pid, "VmHWM:");
        }
        if n == records * 95 / 100 {
            late = status_bytes(pid, "VmHWM:");
        }
        line.clear();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(n, records, "the export is complete");
    (first, late)
}

#[test]
fn reading_a_log_far_larger_than_the_cache_keeps_memory_near_the_configured_bound() {
    let dir = tempfile::tempdir().unwrap();
    let log_bytes = fill(dir.path());
    let records = RECORDS as usize;

    let (small_start, small_peak) = export_peaks(dir.path(), MIB, records);
    let (large_start, large_peak) = export_peaks(dir.path(), 1 << 30, records);
    let small = small_peak.saturating_sub(small_start);
    let large = large_peak.saturating_sub(large_start);
    eprintln!(
        "log {} MiB; memory grown while reading: {} MiB with a 1 MiB cache, {} MiB with 1 GiB",
        log_bytes / MIB,
        small / MIB,
        large / MIB
    );
    assert!(
        large > log_bytes / 2,
        "a 1 GiB cache holds the log: {large}"
    );
    assert!(small < large / 2, "a 1 MiB cache stays bounded: {small}");
    assert!(
        small < log_bytes / 2,
        "a 1 MiB cache does not hold the log: {small}"
    );
}

#[test]
fn a_zero_or_absurd_cache_capacity_stops_every_command_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (value, command) in [("0", "verify"), ("2199023255553", "export"), ("0", "serve")] {
        let out = Command::new(env!("CARGO_BIN_EXE_annals"))
            .args([command, "--data-dir", dir.path().to_str().unwrap()])
            .env("ANNALS_LOG", "warn")
            .env("ANNALS_LOG__CACHE_CAPACITY_BYTES", value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
        assert!(stderr.contains("log.cache_capacity_bytes"), "{stderr}");
    }
    assert!(!dir.path().join("db").exists(), "nothing opened the folder");
}
