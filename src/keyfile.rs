//! Files that hold a secret key as hex (the checkpoint signing key, the webhook secret key):
//! created once, owner-only, and made durable together with their folder entry, so a power
//! cut cannot keep what a key protects and lose the key. This module must never overwrite a
//! key file and never log a key.

use std::io::Write;
use std::path::Path;

/// Writes `key` as hex (and a newline) to a new file at `path`, mode 0600 on Unix, creating
/// the parent folder if needed; fails with `AlreadyExists` rather than replace a file.
pub fn create(path: &Path, key: &[u8]) -> std::io::Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(format!("{}\n", hex::encode(key)).as_bytes())?;
    file.sync_all()?;
    #[cfg(unix)]
    std::fs::File::open(parent.unwrap_or(Path::new(".")))?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_is_hex_owner_only_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("k.key");
        create(&path, &[0xab; 4]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abababab\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = create(&path, &[1; 4]).unwrap_err();
        assert_eq!(again.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "abababab\n");
    }
}
