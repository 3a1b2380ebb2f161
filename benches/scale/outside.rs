//! The scale bench's measures that run other programs: `annals import` of a generated NDJSON
//! file (rate and peak RSS), and webhook delivery through `benches/delivery.sh` (an
//! out-of-process Node.js receiver: latency, lag and CPU per delivery). Each returns rows for
//! the table; a program that is missing (python3, node) gives a row that says so, never a
//! made-up figure. Nothing here may touch the scale log's folder.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `annals import` of `lines` generated submissions (`benches/import_ndjson.py`) into a new
/// folder under `work`: (events/s, peak RSS in MiB sampled every 50 ms, the folder's size).
pub fn import(binary: &str, work: &Path, lines: u64) -> Result<(f64, f64, u64), String> {
    let file = work.join("import.ndjson");
    let out = std::fs::File::create(&file).map_err(|e| format!("{}: {e}", file.display()))?;
    let made = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/import_ndjson.py"
        ))
        .arg(lines.to_string())
        .stdout(out)
        .status()
        .map_err(|e| format!("python3 (writes the import file): {e}"))?;
    if !made.success() {
        return Err(format!("benches/import_ndjson.py failed: {made}"));
    }
    let dir = work.join("imported");
    let t = Instant::now();
    let mut child = Command::new(binary)
        .args(["import", "--data-dir"])
        .arg(&dir)
        .arg(&file)
        .env("ANNALS_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{binary} import: {e}"))?;
    let status_file = format!("/proc/{}/status", child.id());
    let mut hwm_kib = 0u64;
    let status = loop {
        // VmHWM is the process's own peak; the last reading before it exits is the figure.
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        {
            hwm_kib = hwm_kib.max(kib);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("waiting for the import: {e}")),
        }
    };
    let secs = t.elapsed().as_secs_f64();
    if !status.success() {
        return Err(format!("annals import failed: {status}"));
    }
    let size = super::dir_size(&dir);
    std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
    std::fs::remove_file(&file).map_err(|e| e.to_string())?;
    Ok((lines as f64 / secs, hwm_kib as f64 / 1024.0, size))
}

/// What `benches/delivery.sh` printed for one run: its latency and lag lines and the CPU
/// per delivery, as (subscriptions, latency, lag, cpu) text.
pub struct Delivery {
    pub subs: String,
    pub latency: String,
    pub lag: String,
    pub cpu: String,
}

/// Runs `benches/delivery.sh` with `binary` for each of `subs` (e.g. "10 20"), `secs` each.
pub fn delivery(binary: &str, subs: &str, secs: u64) -> Result<Vec<Delivery>, String> {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/delivery.sh"))
        .env("ANNALS_BIN", binary)
        .env("SUBS", subs)
        .env("SECS", secs.to_string())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("benches/delivery.sh: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!(
            "benches/delivery.sh failed ({}): {text}",
            out.status
        ));
    }
    Ok(parse_delivery(&text))
}

/// The runs in `delivery.sh`'s output, each from its `delivery: N subscriptions` line on.
fn parse_delivery(text: &str) -> Vec<Delivery> {
    let mut runs: Vec<Delivery> = Vec::new();
    for line in text.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("delivery: ") {
            runs.push(Delivery {
                subs: rest.split(" (").next().unwrap_or(rest).to_string(),
                latency: String::new(),
                lag: String::new(),
                cpu: String::new(),
            });
        } else if let Some(run) = runs.last_mut() {
            if let Some(rest) = l.strip_prefix("ack -> receiver latency over ") {
                // "N deliveries: p50 .., p99 .., max .. (..)"
                let figures = rest.split(": ").nth(1).unwrap_or(rest);
                run.latency = figures.split(" (").next().unwrap_or(figures).to_string();
            } else if let Some(rest) = l.strip_prefix("deliveries/s during the load ") {
                let rate = rest.split(';').next().unwrap_or(rest);
                let end = rest
                    .split("; ")
                    .find(|p| p.starts_with("drained"))
                    .unwrap_or("")
                    .split("   ")
                    .next()
                    .unwrap_or("");
                run.lag = format!("{rate}/s, {end}");
            } else if l.starts_with("server CPU ")
                && let Some(per) = l.split("per delivery ").nth(1)
            {
                run.cpu = per.to_string();
            }
        }
    }
    runs
}
