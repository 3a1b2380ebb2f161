//! Configuration loading through `annals::config::Config`: the documented defaults, a file that
//! overrides some values, and refusals that name the offending key. No test here sets a process
//! environment variable (tests run in parallel threads); environment overrides are tested
//! through the binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use annals::config::Config;
use annals::keys::Scope;
use annals::log::Durability;
use serde_json::json;

use crate::helpers::*;

/// Writes `toml` to a file in a fresh temp folder; returns (folder, path).
fn config_file(toml: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("annals.toml");
    std::fs::write(&path, toml).unwrap();
    (dir, path)
}

/// Loads `toml` as a config file.
fn load(toml: &str) -> Result<Config, String> {
    let (_dir, path) = config_file(toml);
    Config::load(Some(&path)).map_err(|e| e.to_string())
}

/// Loads `toml`, expecting a refusal; returns the message.
fn refusal(toml: &str) -> String {
    match load(toml) {
        Ok(c) => panic!("accepted {toml:?}: {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn the_built_in_defaults_are_the_documented_ones() {
    let c = Config::defaults().unwrap();
    assert_eq!(
        c.server.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.data_dir, Path::new("data"));
    assert_eq!(c.log.durability, Durability::Fsync);
    assert_eq!(c.log.max_group_events, 512);
    assert_eq!(c.log.queue_capacity, 4096);
    assert_eq!(c.limits.max_body_bytes, 1_048_576);
    assert_eq!(c.limits.max_events_per_request, 100);
    assert_eq!(c.limits.max_event_bytes, 65_536);
    assert_eq!(c.limits.max_string_bytes, 8192);
    assert_eq!(c.limits.max_stream_name_bytes, 200);
    assert_eq!(c.limits.max_read_limit, 1000);
    assert_eq!(c.live.max_lag, 10_000);
    assert_eq!(c.live.keep_alive_secs, 15);
    assert!(c.auth.keys.is_empty());
    // The defaults pass the same checks as any other configuration.
    c.with(json!({})).unwrap();
}

#[test]
fn the_shipped_default_file_is_the_compiled_in_one_and_documents_every_value() {
    let on_disk =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"))
            .unwrap();
    assert_eq!(on_disk, annals::config::DEFAULT_TOML);
    // Loading the shipped file explicitly changes nothing.
    let from_file = Config::load(Some(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml"),
    ))
    .unwrap();
    let defaults = Config::defaults().unwrap();
    assert_eq!(
        serde_json::to_value(&from_file).unwrap(),
        serde_json::to_value(&defaults).unwrap()
    );
    // Every key of every section is in the file with a comment above it.
    let value = serde_json::to_value(&defaults).unwrap();
    for (section, keys) in value.as_object().unwrap() {
        assert!(
            on_disk.contains(&format!("[{section}]")),
            "[{section}] is not in config/default.toml"
        );
        for (key, value) in keys.as_object().unwrap() {
            // A sub-table (`[log.nats]`) has its own header, and each of its keys a comment.
            let (table, keys) = match value.as_object() {
                Some(sub) => (format!("{section}.{key}"), sub.keys().collect()),
                None => (section.clone(), vec![key]),
            };
            assert!(
                on_disk.contains(&format!("[{table}]")),
                "[{table}] is not in config/default.toml"
            );
            for key in keys {
                let line = on_disk
                    .lines()
                    .position(|l| l.starts_with(&format!("{key} =")))
                    .unwrap_or_else(|| panic!("{table}.{key} is not in config/default.toml"));
                let above = on_disk.lines().nth(line - 1).unwrap();
                assert!(
                    above.starts_with('#'),
                    "{table}.{key} is not documented: {above:?}"
                );
            }
        }
    }
}

#[test]
fn a_config_file_overrides_one_value_and_keeps_every_other_default() {
    let c = load("[limits]\nmax_events_per_request = 7\n").unwrap();
    assert_eq!(c.limits.max_events_per_request, 7);
    let mut expected = serde_json::to_value(Config::defaults().unwrap()).unwrap();
    expected["limits"]["max_events_per_request"] = json!(7);
    assert_eq!(serde_json::to_value(&c).unwrap(), expected);

    let c = load("[log]\ndurability = \"os\"\n").unwrap();
    assert_eq!(c.log.durability, Durability::Os);
    assert_eq!(c.log.max_group_events, 512);

    let c = load("[server]\nlisten = \"0.0.0.0:9090\"\n").unwrap();
    assert_eq!(
        c.server.listen,
        "0.0.0.0:9090".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.server.data_dir, Path::new("data"));
}

#[test]
fn key_blocks_in_a_config_file_load_with_principal_hash_and_scopes() {
    let keys = TestKeys::new();
    let c = load(&keys.toml()).unwrap();
    let got: Vec<(&str, &[Scope])> = c
        .auth
        .keys
        .iter()
        .map(|k| (k.principal.as_str(), k.scopes.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("test-admin", &[Scope::Admin][..]),
            ("test-desk", &[Scope::Append][..]),
            ("test-reader", &[Scope::Read][..]),
        ]
    );
    // Only hashes are held, never a key.
    for (entry, key) in c
        .auth
        .keys
        .iter()
        .zip([&keys.admin, &keys.append, &keys.read])
    {
        assert_eq!(entry.hash, annals::keys::hash_key(key));
        assert!(!format!("{c:?}").contains(key.as_str()));
    }
}

#[test]
fn the_block_printed_by_keys_new_loads_as_printed() {
    let (code, out, err) = run_cli(
        &[
            "keys",
            "new",
            "--scopes",
            "read,append",
            "--principal",
            "desk",
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key: "))
        .unwrap_or_else(|| panic!("no key line: {out}"))
        .trim()
        .to_string();
    let c = load(&out.replace(&format!("key: {key}"), "")).unwrap();
    assert_eq!(c.auth.keys.len(), 1);
    let entry = &c.auth.keys[0];
    assert_eq!(entry.principal, "desk");
    assert_eq!(entry.scopes, vec![Scope::Read, Scope::Append]);
    assert_eq!(entry.hash, annals::keys::hash_key(&key));
}

#[test]
fn an_unknown_key_is_refused_by_name() {
    for (toml, name) in [
        ("[log]\ndurabilty = \"os\"\n", "durabilty"),
        ("[limits]\nmax_body_byte = 5\n", "max_body_byte"),
        ("[loggin]\nlevel = \"debug\"\n", "loggin"),
        ("colour = \"red\"\n", "colour"),
        (
            "[[auth.keys]]\nprincipal = \"a\"\nhash = \"sha256:00\"\nscopes = [\"read\"]\nexpires = 1\n",
            "expires",
        ),
    ] {
        let message = refusal(toml);
        assert!(message.contains(name), "{toml:?}: {message}");
    }
}

#[test]
fn a_value_of_the_wrong_type_is_refused_naming_the_key() {
    for (toml, key) in [
        (
            "[limits]\nmax_body_bytes = \"lots\"\n",
            "limits.max_body_bytes",
        ),
        (
            "[limits]\nmax_events_per_request = -1\n",
            "limits.max_events_per_request",
        ),
        (
            "[limits]\nmax_string_bytes = 1.5\n",
            "limits.max_string_bytes",
        ),
        ("[log]\ndurability = \"sometimes\"\n", "log.durability"),
        ("[log]\ndurability = true\n", "log.durability"),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        (
            "[live]\nkeep_alive_secs = \"soon\"\n",
            "live.keep_alive_secs",
        ),
        ("limits = 5\n", "limits"),
        (
            "[[auth.keys]]\nprincipal = \"a\"\nhash = \"sha256:00\"\nscopes = [\"root\"]\n",
            "auth.keys",
        ),
    ] {
        let message = refusal(toml);
        assert!(message.contains(key), "{toml:?}: {message}");
    }
}

#[test]
fn a_value_out_of_range_is_refused_naming_the_key() {
    for (toml, key) in [
        ("[limits]\nmax_body_bytes = 0\n", "limits.max_body_bytes"),
        (
            "[limits]\nmax_events_per_request = 0\n",
            "limits.max_events_per_request",
        ),
        ("[limits]\nmax_read_limit = 0\n", "limits.max_read_limit"),
        ("[log]\nqueue_capacity = 0\n", "log.queue_capacity"),
        (
            "[limits]\nmax_event_bytes = 262145\n",
            "limits.max_event_bytes",
        ),
        (
            "[[auth.keys]]\nprincipal = \"a\"\nhash = \"md5:abc\"\nscopes = [\"read\"]\n",
            "auth.keys[0].hash",
        ),
        (
            &format!(
                "[[auth.keys]]\nprincipal = \" \"\nhash = \"sha256:{}\"\nscopes = [\"read\"]\n",
                "0".repeat(64)
            ),
            "auth.keys[0].principal",
        ),
    ] {
        let message = refusal(toml);
        assert!(message.contains(key), "{toml:?}: {message}");
    }
    // The largest allowed event size is accepted.
    let c = load("[limits]\nmax_event_bytes = 262144\n").unwrap();
    assert_eq!(c.limits.max_event_bytes, 262_144);
}

#[test]
fn a_missing_file_is_refused_by_path_and_a_syntax_error_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let message = Config::load(Some(&missing)).unwrap_err().to_string();
    assert!(message.contains("nope.toml"), "{message}");

    // A syntax error says where it is.
    let message = refusal("[limits\nmax_body_bytes = 5\n");
    assert!(message.contains("line 1"), "{message}");
}

#[test]
fn overrides_in_code_are_checked_like_a_file() {
    let defaults = || Config::defaults().unwrap();
    let c = defaults()
        .with(json!({"limits": {"max_string_bytes": 64}}))
        .unwrap();
    assert_eq!(c.limits.max_string_bytes, 64);
    assert_eq!(c.limits.max_body_bytes, 1_048_576);
    for (overrides, key) in [
        (
            json!({"limits": {"max_body_bytes": 0}}),
            "limits.max_body_bytes",
        ),
        (json!({"limits": {"bogus": 1}}), "bogus"),
        (json!({"log": {"durability": "never"}}), "log.durability"),
    ] {
        let message = defaults().with(overrides.clone()).unwrap_err().to_string();
        assert!(message.contains(key), "{overrides}: {message}");
    }
}

#[test]
fn the_annals_log_filter_variable_is_not_read_as_configuration() {
    // run_cli starts the binary with ANNALS_LOG=warn (in the child only).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _out, err) = run_cli(&["verify", "--data-dir", data.to_str().unwrap()], None);
    assert!(!err.contains("configuration error"), "{err}");
    assert_ne!(code, 2, "{err}");
}

#[tokio::test]
async fn a_start_that_fails_part_way_stops_what_it_started_and_gives_the_folder_back() {
    let dir = tempfile::tempdir().unwrap();
    // The listen address is taken: the start fails at its last step, after the log, the
    // projections, the webhooks and the signer have started.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = test_config(dir.path())
        .with(json!({"server": {"listen": taken.local_addr().unwrap().to_string()}}))
        .unwrap();
    let Err(e) = annals::Server::start(busy, annals::StartOptions::default()).await else {
        panic!("a server started on an address in use");
    };
    assert!(e.to_string().contains("cannot listen"), "{e}");

    // The folder is free: sled's lock was let go, so a start on it succeeds.
    let server = annals::Server::start(test_config(dir.path()), annals::StartOptions::default())
        .await
        .unwrap_or_else(|e| panic!("the folder was not given back: {e}"));
    server.stop().await;
}

#[test]
fn no_module_but_the_server_imports_the_config_so_there_is_no_import_cycle() {
    // `config.rs` composes each module's own settings type; a module that imported `config`
    // back would close a cycle through it.
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(files.len() > 40, "{} files", files.len());
    let allowed = ["config.rs", "server.rs", "main.rs"];
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        // A module's unit tests in their own `tests.rs` (declared `#[cfg(test)] mod tests;`)
        // may borrow the shipped defaults, as the ones below `#[cfg(test)]` may.
        let unit_tests = rel.file_name().is_some_and(|n| n == "tests.rs");
        if allowed.iter().any(|a| rel == std::path::Path::new(a))
            || rel.starts_with("cli")
            || unit_tests
        {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests below `#[cfg(test)]` may borrow the shipped defaults.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        assert!(
            !text.contains("crate::config") && !text.contains("super::config::Config"),
            "{} imports the config",
            rel.display()
        );
    }
}

#[test]
fn the_log_imports_nothing_above_it() {
    // `event/` builds `References` from `log/`'s types; the log takes what it must know of
    // event types (which ids a record introduces) as a function given to `Log::open`.
    let log = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/log");
    let mut stack = vec![log];
    let mut read = 0;
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            read += 1;
            for above in [
                "crate::event",
                "crate::projection",
                "crate::webhook",
                "crate::api",
            ] {
                assert!(!text.contains(above), "{} uses {above}", path.display());
            }
        }
    }
    assert!(read > 8, "{read} files");
}

/// `/metrics` of a running binary, read with `key`.
async fn binary_metrics(server: &BinaryServer, key: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", server.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn serve_starts_the_configured_worker_threads_and_by_default_one_fewer_than_the_cores() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().unwrap().get();
    for (configured, want) in [(None, (cores - 1).max(1)), (Some(3), 3)] {
        let mut toml = keys.toml();
        if let Some(n) = configured {
            toml.push_str(&format!("\n[server]\nworker_threads = {n}\n"));
        }
        let file = dir.path().join("annals.toml");
        std::fs::write(&file, toml).unwrap();
        let server = BinaryServer::start(&dir.path().join("data"), &file);
        let text = binary_metrics(&server, &keys.read).await;
        let line = format!("annals_runtime_worker_threads {want}");
        assert!(
            text.lines().any(|l| l == line),
            "{configured:?}: no `{line}` in /metrics"
        );
        server.kill9();
        wait_until_released(&dir.path().join("data"));
    }
}

#[tokio::test]
async fn every_request_is_logged_through_a_queue_of_one_line_and_the_lines_are_plain_text() {
    let keys = TestKeys::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("annals.toml");
    std::fs::write(
        &file,
        format!("{}\n[server]\nlog_queue_lines = 1\n", keys.toml()),
    )
    .unwrap();
    let log_path = dir.path().join("stderr.log");
    let server = BinaryServer::start_logging(
        &dir.path().join("data"),
        &file,
        "info",
        std::fs::File::create(&log_path).unwrap(),
    );
    let base = server.base.clone();
    // Many requests at once against a queue of one line: each waits for its turn, none is
    // dropped.
    let client = reqwest::Client::new();
    let requests = 200;
    let answers = futures_util::future::join_all((0..requests).map(|i| {
        client
            .get(format!("{base}/healthz?n={i}"))
            .bearer_auth(&keys.read)
            .send()
    }))
    .await;
    assert!(
        answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|r| r.status() == 200))
    );
    let exited = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(exited.success(), "serve exited with {exited}");
    let log = std::fs::read_to_string(&log_path).unwrap();
    let logged = log
        .lines()
        .filter(|l| l.contains("annals::http") && l.contains("path=\"/healthz\""))
        .count();
    assert_eq!(logged, requests, "request lines in:\n{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal"
    );
}
