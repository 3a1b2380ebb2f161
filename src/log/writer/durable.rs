//! sled's durability: its flush, then `fdatasync` of the data file and of any new `blobs/`
//! file. With the sled backend this is the checkpoint (`checkpoint`; a group is durable once
//! its journal frame is) and the recovery's last step (`journal::recover`); with the nats
//! backend, only a clean stop (the folder is a cache of the stream). Nothing may count as durable in sled before every
//! one of these calls has returned.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;

/// What makes applied groups durable: the store and the files to sync.
pub(in crate::log) struct Durable {
    db: sled::Db,
    dir: PathBuf,
    /// Whether to `fdatasync` (durability `fsync` with the sled backend). With the nats
    /// backend the stream holds the durable copy (replicated, synced by the cluster) and this
    /// folder is a cache rebuilt from it: only a clean stop syncs it, with sled's flush.
    pub(super) fsync: bool,
    /// The data file handle for fdatasync, opened on first use.
    data_file: Option<File>,
    /// Blob files already synced (see `sync_new_blobs`).
    synced_blobs: HashSet<std::ffi::OsString>,
    /// The blobs folder's mtime when it was last listed.
    blobs_mtime: Option<std::time::SystemTime>,
}

impl Durable {
    /// Syncs `db` (in `dir`), with `fdatasync` when `fsync`.
    pub(in crate::log) fn new(db: sled::Db, dir: PathBuf, fsync: bool) -> Durable {
        Durable {
            db,
            dir,
            fsync,
            data_file: None,
            synced_blobs: HashSet::new(),
            blobs_mtime: None,
        }
    }

    /// Makes every batch applied so far durable: sled's flush, then fdatasync of sled's data
    /// file: sled 0.34 flushes with sync_file_range, which does not empty the disk's write
    /// cache.
    pub(in crate::log) fn sync(&mut self) -> Result<(), std::io::Error> {
        self.db.flush().map_err(sled_io)?;
        if self.fsync {
            if self.data_file.is_none() {
                self.data_file = Some(File::open(self.dir.join("db"))?);
                // The folder entry of a new `db` file must be durable too.
                File::open(&self.dir)?.sync_all()?;
            }
            if let Some(f) = &self.data_file {
                f.sync_data()?;
            }
            self.sync_new_blobs()?;
        }
        Ok(())
    }

    /// Another `Durable` of the same store (for the checkpoint thread).
    pub(super) fn twin(&self) -> Durable {
        Durable::new(self.db.clone(), self.dir.clone(), self.fsync)
    }

    /// sled 0.34 writes pages larger than a quarter segment to `blobs/<lsn>` files and never
    /// syncs them; a group whose pages went there is durable only once they are synced.
    /// An empty folder costs one `readdir`.
    fn sync_new_blobs(&mut self) -> Result<(), std::io::Error> {
        let blobs = self.dir.join("blobs");
        // A new file changes the folder's mtime: one stat per group instead of a listing.
        let mtime = std::fs::metadata(&blobs).and_then(|m| m.modified()).ok();
        if mtime.is_some() && mtime == self.blobs_mtime {
            return Ok(());
        }
        self.blobs_mtime = mtime;
        let entries = match std::fs::read_dir(&blobs) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = HashSet::new();
        let mut synced_any = false;
        for entry in entries {
            let name = entry?.file_name();
            if !self.synced_blobs.contains(&name) {
                match File::open(blobs.join(&name)) {
                    Ok(f) => f.sync_data()?,
                    // sled collected it after the listing (it runs beside this, on the
                    // checkpoint thread): nothing of it is left to sync.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                synced_any = true;
            }
            present.insert(name);
        }
        if synced_any {
            File::open(&blobs)?.sync_all()?;
        }
        // Forget blobs sled has collected since.
        self.synced_blobs = present;
        Ok(())
    }
}

pub(in crate::log) fn sled_io(e: sled::Error) -> std::io::Error {
    match e {
        sled::Error::Io(io) => io,
        other => std::io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_sled_removes_between_the_listing_and_its_sync_is_not_a_failure() {
        let dir = tempfile::tempdir().unwrap(); // ok: test code
        let db = sled::Config::new().path(dir.path()).open().unwrap(); // ok: test code
        let blobs = dir.path().join("blobs");
        std::fs::create_dir_all(&blobs).unwrap(); // ok: test code
        // Listed, then gone when opened: what a blob collected meanwhile looks like.
        std::os::unix::fs::symlink(dir.path().join("collected"), blobs.join("7")).unwrap(); // ok: test code
        let mut durable = Durable::new(db, dir.path().to_path_buf(), true);
        durable.sync().unwrap(); // ok: test code
    }
}
