//! The signer: the server task that signs the log's (size, root, time) on an interval and on demand,
//! and keeps every checkpoint it made in the `audit` tree beside the log. It must never sign
//! a size beyond the durable head, and never hold the store open after shutdown.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::checkpoint::{self, Checkpoint, CheckpointError};
use crate::log::{Log, LogError};

/// Audit settings (`[audit]`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Path of the Ed25519 signing key (`annals keys new-signing`). Empty: `checkpoint.key`
    /// in the data folder, created on first start.
    pub signing_key: PathBuf,
    /// Seconds between automatic checkpoints (0: only on demand). Skipped if nothing changed.
    pub checkpoint_interval_secs: u64,
}

impl AuditConfig {
    /// Where the signing key lives for a data folder.
    pub fn key_path(&self, data_dir: &Path) -> PathBuf {
        if self.signing_key.as_os_str().is_empty() {
            data_dir.join("checkpoint.key")
        } else {
            self.signing_key.clone()
        }
    }
}

/// Why a checkpoint could not be made or read.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// Key trouble.
    #[error(transparent)]
    Key(#[from] CheckpointError),
    /// Storage trouble.
    #[error(transparent)]
    Log(#[from] LogError),
    /// A stored checkpoint does not parse.
    #[error("stored checkpoint is corrupt: {0}")]
    Corrupt(String),
}

struct Inner {
    log: Log,
    key: SigningKey,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Signs and stores checkpoints. Cheap to clone.
#[derive(Clone)]
pub struct Signer {
    inner: Arc<Inner>,
}

/// Key of a stored checkpoint: `c` + size (u64 BE), so the last key is the latest.
fn key_of(size: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'c';
    k[1..].copy_from_slice(&size.to_be_bytes());
    k
}

impl Signer {
    /// Loads (or creates) the signing key and starts the interval task.
    pub fn start(log: Log, config: &AuditConfig, data_dir: &Path) -> Result<Signer, SignerError> {
        let path = config.key_path(data_dir);
        if !path.exists() {
            let public = checkpoint::generate_key_file(&path)?;
            tracing::info!(path = %path.display(), public_key = %hex::encode(public.as_bytes()), "created a checkpoint signing key");
        }
        let key = checkpoint::load_key_file(&path)?;
        let (stop, stop_rx) = watch::channel(false);
        let me = Signer {
            inner: Arc::new(Inner {
                log,
                key,
                stop,
                task: Mutex::new(None),
            }),
        };
        if config.checkpoint_interval_secs > 0 {
            let every = Duration::from_secs(config.checkpoint_interval_secs);
            let worker = me.clone();
            let handle = tokio::spawn(async move { worker.run(every, stop_rx).await });
            if let Ok(mut slot) = me.inner.task.lock() {
                *slot = Some(handle);
            }
        }
        Ok(me)
    }

    async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let head = self.inner.log.head().seq;
            let latest = self.latest().ok().flatten().map(|c| c.size);
            if head > 0 && latest != Some(head) {
                match self.checkpoint_now() {
                    Ok(cp) => tracing::info!(size = cp.size, root = %cp.root, "checkpoint signed"),
                    Err(e) => tracing::error!(error = %e, "checkpoint failed"),
                }
            }
        }
    }

    /// The public key that verifies this server's checkpoints.
    pub fn public_key(&self) -> VerifyingKey {
        self.inner.key.verifying_key()
    }

    /// Signs the current durable head and stores the checkpoint (durably).
    pub fn checkpoint_now(&self) -> Result<Checkpoint, SignerError> {
        let log = &self.inner.log;
        let size = log.head().seq;
        let root = log.merkle_root(size)?;
        let timestamp = crate::log::now_rfc3339();
        let cp = checkpoint::sign(&self.inner.key, size, &root, &timestamp);
        let bytes = serde_json::to_vec(&cp).map_err(|e| SignerError::Corrupt(e.to_string()))?;
        log.aux_tree("audit")?
            .insert(key_of(size), bytes)
            .map_err(LogError::from)?;
        log.sync_aux()?;
        Ok(cp)
    }

    /// The latest stored checkpoint.
    pub fn latest(&self) -> Result<Option<Checkpoint>, SignerError> {
        let tree = self.inner.log.aux_tree("audit")?;
        match tree.scan_prefix([b'c']).next_back() {
            Some(item) => {
                let (_, v) = item.map_err(LogError::from)?;
                serde_json::from_slice(&v)
                    .map(Some)
                    .map_err(|e| SignerError::Corrupt(e.to_string()))
            }
            None => Ok(None),
        }
    }

    /// Stops the interval task.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        let handle = self.inner.task.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.await;
        }
    }
}
