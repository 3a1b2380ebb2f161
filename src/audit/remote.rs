//! A running server seen from the outside, for audits that must not need it stopped: the
//! consistency proof between two checkpoints (`annals audit verify-consistency --server`) and
//! the online export (`annals export --server`). It only reads over HTTP: it must never open a
//! data folder, and never print or log the API key it is handed.

use std::io::Write;

use reqwest::StatusCode;

use crate::log::Hash;

/// Why a server could not be asked, or its answer not used.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Nothing answered: refused connection, unknown host, TLS, a bad URL.
    #[error("cannot reach {url}: {source}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// The key is missing or unknown to the server (401).
    #[error("{url} answered 401 Unauthorized: the API key is missing or unknown to this server")]
    Unauthorized {
        /// What was asked.
        url: String,
    },
    /// The key is known but may not read (403).
    #[error("{url} answered 403 Forbidden: the API key does not have the read scope")]
    Forbidden {
        /// What was asked.
        url: String,
    },
    /// Any other status than success.
    #[error("{url} answered {status}")]
    Status {
        /// What was asked.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The answer could not be read or is not what was asked for.
    #[error("bad answer from {url}: {why}")]
    BadAnswer {
        /// What was asked.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// A proof hash is not 32 bytes of hex.
    #[error("the server's proof is not hex")]
    NotHex,
    /// The export stopped before its end: the connection broke, or the last line is cut.
    #[error("the export from {url} broke off after {records} records: {why}")]
    BrokeOff {
        /// What was asked.
        url: String,
        /// Whole records received (and written) before the break.
        records: u64,
        /// Why.
        why: String,
    },
    /// The output could not be written.
    #[error("cannot write the export: {0}")]
    Write(#[from] std::io::Error),
}

impl RemoteError {
    /// Whether the key is at fault (401 or 403): asking again with the same key cannot work.
    pub fn is_denied(&self) -> bool {
        matches!(
            self,
            RemoteError::Unauthorized { .. } | RemoteError::Forbidden { .. }
        )
    }
}

fn get(url: &str, key: Option<&str>) -> reqwest::RequestBuilder {
    let req = reqwest::Client::new().get(url);
    match key {
        Some(k) => req.bearer_auth(k),
        None => req,
    }
}

/// Asks the server at `base` for the RFC 9162 consistency path from tree size `from` to `to`
/// (`GET /audit/proof/consistency`). The path is not checked here: that is
/// [`offline::verify_consistency`](super::offline::verify_consistency)'s job, against signed
/// roots, so a lying server gains nothing.
pub async fn consistency_proof(
    base: &str,
    key: Option<&str>,
    from: u64,
    to: u64,
) -> Result<Vec<Hash>, RemoteError> {
    let url = format!(
        "{}/audit/proof/consistency?from={from}&to={to}",
        base.trim_end_matches('/')
    );
    let body: serde_json::Value = match get(&url, key).send().await {
        Ok(r) if r.status().is_success() => match r.json().await {
            Ok(v) => v,
            Err(e) => {
                return Err(RemoteError::BadAnswer {
                    url,
                    why: e.to_string(),
                });
            }
        },
        Ok(r) => {
            return Err(RemoteError::Status {
                url,
                status: r.status(),
            });
        }
        Err(source) => return Err(RemoteError::Unreachable { url, source }),
    };
    let mut path = Vec::new();
    for h in body["consistency_path"].as_array().into_iter().flatten() {
        let mut out = [0u8; 32];
        if hex::decode_to_slice(h.as_str().unwrap_or_default(), &mut out).is_err() {
            return Err(RemoteError::NotHex);
        }
        path.push(out);
    }
    Ok(path)
}

/// Streams the server's export (`GET /export`, read scope) into `out` as it arrives: the
/// same lines `annals export` writes from a stopped data folder, from seq 1 to `to`, or to the
/// head when the server answers. Returns how many records were written.
pub async fn export(
    base: &str,
    key: Option<&str>,
    to: Option<u64>,
    out: &mut impl Write,
) -> Result<u64, RemoteError> {
    let mut url = format!("{}/export", base.trim_end_matches('/'));
    if let Some(to) = to {
        url.push_str(&format!("?to={to}"));
    }
    let mut resp = match get(&url, key).send().await {
        Ok(r) => r,
        Err(source) => return Err(RemoteError::Unreachable { url, source }),
    };
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED => return Err(RemoteError::Unauthorized { url }),
        StatusCode::FORBIDDEN => return Err(RemoteError::Forbidden { url }),
        status => return Err(RemoteError::Status { url, status }),
    }
    // Anything else (an HTML error page from a proxy, say) must not end up in an audit file.
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if !content_type.starts_with("application/x-ndjson") {
        return Err(RemoteError::BadAnswer {
            url,
            why: format!("expected application/x-ndjson, got `{content_type}`"),
        });
    }
    let bar = super::progress(to, "exporting");
    let mut records = 0u64;
    let mut ends_a_line = true;
    loop {
        let chunk = match resp.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                bar.finish_and_clear();
                out.flush()?;
                return Err(RemoteError::BrokeOff {
                    url,
                    records,
                    why: e.to_string(),
                });
            }
        };
        if chunk.is_empty() {
            continue;
        }
        out.write_all(&chunk)?;
        let lines = chunk.iter().filter(|b| **b == b'\n').count() as u64;
        records += lines;
        bar.inc(lines);
        ends_a_line = chunk.ends_with(b"\n");
    }
    out.flush()?;
    bar.finish_and_clear();
    if !ends_a_line {
        return Err(RemoteError::BrokeOff {
            url,
            records,
            why: "the last line is cut short".into(),
        });
    }
    Ok(records)
}
