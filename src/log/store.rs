//! Opening and letting go of the sled store: the configured cache bound, who compresses (a new
//! folder leaves sled's page compression off, and the writer compresses each chunk; an older
//! folder keeps the page compression it was created with), and sled's folder lock, which it
//! takes and releases a moment late, and how often sled's own flusher runs. It must never write
//! to the store.

use std::path::Path;

use super::{LogConfig, LogError};

/// Opens sled with the configured cache bound, retrying briefly while the folder's lock is
/// still held: sled releases it a moment after the last handle of a previous open is dropped
/// (a restart in one process). A folder held by another live process still fails, after
/// about two seconds. Also answers whether sled compresses this folder's pages: a new folder
/// is made without (the writer compresses its chunks instead, once each, where sled would
/// recompress a leaf at every consolidation); a folder made before keeps its setting, which
/// sled records in its `conf` and insists on. sled's background flusher (which writes its
/// buffers out and cleans its segments) runs every `flush_every_ms`.
pub(super) fn open_db(
    dir: &Path,
    mode: sled::Mode,
    options: &LogConfig,
    flush_every_ms: u64,
) -> Result<(sled::Db, bool), LogError> {
    let compression = folder_compression(dir)?.unwrap_or(false);
    if compression && !options.compression {
        tracing::warn!(
            dir = %dir.display(),
            "log.compression is off, but sled compresses this folder's pages as it was created \
             doing (to change it, `annals export` this folder and `annals import` the export \
             into a new one)"
        );
    }
    let config = sled::Config::new()
        .path(dir)
        .mode(mode)
        .cache_capacity(options.cache_capacity_bytes)
        .flush_every_ms(Some(flush_every_ms))
        .use_compression(compression)
        .compression_factor(options.compression_level);
    let mut attempt = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok((db, compression)),
            // sled reports its lock as an `Other` I/O error with this message.
            Err(sled::Error::Io(e))
                if attempt < 20 && e.to_string().contains("could not acquire lock") =>
            {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Err(source) => {
                return Err(LogError::Open {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        }
    }
}

/// Whether an existing folder was created with compression, from the `conf` file sled writes
/// when it creates a folder (`use_compression: true`); `None` for a new folder. sled refuses
/// to open a folder with the other setting, so an uncompressed folder made before compression
/// was the default must keep being opened uncompressed.
fn folder_compression(dir: &Path) -> Result<Option<bool>, LogError> {
    let text = match std::fs::read(dir.join("conf")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LogError::Open {
                path: dir.to_path_buf(),
                source: sled::Error::Io(e),
            });
        }
    };
    // The text lines are followed by a 4-byte CRC, which sled checks itself.
    let found = text.split(|b| *b == b'\n').find_map(|line| match line {
        b"use_compression: true" => Some(true),
        b"use_compression: false" => Some(false),
        _ => None,
    });
    // A `conf` without the line is one sled treats as missing (it rewrites it).
    Ok(found)
}

/// Waits (at most about two seconds) until nothing holds sled's lock on the folder: sled
/// 0.34 closes its file a moment after the last handle is dropped (spacejam/sled#1289), from
/// one of its own threads, and the next opener may be another process that does not retry.
/// A handle still held elsewhere in the process (which the invariants forbid) only costs the
/// wait and a warning.
pub(super) fn wait_until_released(dir: &Path) {
    let Ok(file) = std::fs::File::open(dir.join("db")) else {
        return;
    };
    for _ in 0..400 {
        match file.try_lock() {
            Ok(()) => {
                let _ = file.unlock();
                return;
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(error = %e, "cannot check whether the data folder is released");
                return;
            }
        }
    }
    tracing::warn!(dir = %dir.display(), "the data folder is still locked after the log closed");
}
