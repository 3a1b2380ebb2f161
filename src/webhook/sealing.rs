//! Encryption at rest of webhook signing secrets. A secret cannot be hashed like an API key
//! (the server needs it to sign), so the store keeps it sealed with XChaCha20-Poly1305 under a
//! 32-byte key held in a file: `webhooks.secret_key_file`, or `webhooks.key` in the data
//! folder, created on first start (mode 0600) the way `checkpoint.key` is. Each secret gets a
//! fresh random 24-byte nonce and is bound to its subscription id (associated data), so a
//! sealed secret copied to another subscription does not open. This module must never log,
//! format or put into an error a key or a secret, never hand-roll cryptography, and never
//! answer a secret that did not authenticate.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use rand::RngCore;
use uuid::Uuid;

/// The config key naming the key file, used in every message about it.
pub const KEY_SETTING: &str = "webhooks.secret_key_file";

/// The key file's name in the data folder when `webhooks.secret_key_file` is empty.
pub const DEFAULT_KEY_FILE: &str = "webhooks.key";

/// The prefix of a sealed secret: format version 1 is XChaCha20-Poly1305, then base64 of the
/// 24-byte nonce followed by the ciphertext and its 16-byte tag. A new format gets a new
/// prefix, so what a stored value is never has to be guessed.
pub const SEALED_V1: &str = "v1:";

/// Bound into every tag with the subscription id: a value sealed for another purpose (or a
/// later format) under the same key never opens as a webhook secret.
const AAD_LABEL: &[u8] = b"annals webhook secret v1\0";

const NONCE_LEN: usize = 24;
const KEY_LEN: usize = 32;

/// Why the key file cannot be used. Always names the setting and the file, never the key.
#[derive(Debug, thiserror::Error)]
#[error("{KEY_SETTING} ({}): {message}", path.display())]
pub struct KeyError {
    /// The key file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Why a secret could not be sealed or opened. Never carries the secret or the key.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The stored value is not a sealed secret of a known format.
    #[error("not a sealed secret: {0}")]
    Malformed(&'static str),
    /// The tag does not verify: another key sealed it, it was sealed for another
    /// subscription, or its bytes were altered.
    #[error("the sealed secret does not authenticate with this key")]
    Rejected,
    /// The operating system's random source failed (no nonce, so nothing is sealed).
    #[error("no random nonce: {0}")]
    Random(String),
}

/// The key that seals and opens webhook secrets, with the file it came from (for messages).
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
    path: PathBuf,
}

impl std::fmt::Debug for Sealer {
    // Only the file: the key never reaches a log line, even through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer").field("path", &self.path).finish()
    }
}

fn key_error(path: &Path, message: impl Into<String>) -> KeyError {
    KeyError {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Where the key file lives: `configured`, or [`DEFAULT_KEY_FILE`] in the data folder when
/// it is empty.
pub fn key_path(configured: &Path, data_dir: &Path) -> PathBuf {
    if configured.as_os_str().is_empty() {
        data_dir.join(DEFAULT_KEY_FILE)
    } else {
        configured.to_path_buf()
    }
}

/// Whether the key file exists (an unreadable folder is an error, not "missing", so a key
/// is never created beside one that could not be seen).
pub fn key_exists(path: &Path) -> Result<bool, KeyError> {
    path.try_exists()
        .map_err(|e| key_error(path, format!("cannot be checked: {e}")))
}

/// Creates a key file: hex of 32 bytes from the operating system's random source and a
/// newline, mode 0600, synced with its folder entry. Refuses to overwrite: a replaced key
/// would make every stored secret unreadable.
pub fn create_key_file(path: &Path) -> Result<(), KeyError> {
    let err = |e: std::io::Error| key_error(path, e.to_string());
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(|e| key_error(path, format!("no random key: {e}")))?;
    crate::keyfile::create(path, &key).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            key_error(path, "already exists; refusing to overwrite a key")
        } else {
            err(e)
        }
    })?;
    Ok(())
}

impl Sealer {
    /// Loads a key file: 64 hex digits (surrounding whitespace is ignored).
    pub fn load(path: &Path) -> Result<Sealer, KeyError> {
        let bytes =
            std::fs::read(path).map_err(|e| key_error(path, format!("cannot be read: {e}")))?;
        let text = bytes.trim_ascii();
        let wrong = || {
            key_error(
                path,
                format!(
                    "must hold 64 hex digits (a {KEY_LEN}-byte key), but holds {} bytes{}",
                    text.len(),
                    if text.len() == 2 * KEY_LEN {
                        " that are not all hex digits"
                    } else {
                        ""
                    }
                ),
            )
        };
        if text.len() != 2 * KEY_LEN {
            return Err(wrong());
        }
        let mut key = [0u8; KEY_LEN];
        hex::decode_to_slice(text, &mut key).map_err(|_| wrong())?;
        Ok(Sealer::from_bytes(key, path))
    }

    /// A sealer over raw key bytes; `path` is only used to name the key in messages.
    pub fn from_bytes(key: [u8; KEY_LEN], path: &Path) -> Sealer {
        Sealer {
            cipher: XChaCha20Poly1305::new(&Key::from(key)),
            path: path.to_path_buf(),
        }
    }

    /// The key file this key came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Seals `secret` for subscription `id`: [`SEALED_V1`] + base64(nonce ‖ ciphertext).
    pub fn seal(&self, id: &Uuid, secret: &str) -> Result<String, SealError> {
        let nonce = XNonce::try_generate().map_err(|e| SealError::Random(e.to_string()))?;
        let aad = aad(id);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: &aad,
                },
            )
            // Encryption fails only for messages far beyond any secret's length.
            .map_err(|_| SealError::Malformed("too long to seal"))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_V1}{}", STANDARD.encode(out)))
    }

    /// Opens a value made by [`Sealer::seal`] for subscription `id`.
    pub fn open(&self, id: &Uuid, sealed: &str) -> Result<String, SealError> {
        let b64 = sealed
            .strip_prefix(SEALED_V1)
            .ok_or(SealError::Malformed("unknown format (no `v1:` prefix)"))?;
        let bytes = STANDARD
            .decode(b64)
            .map_err(|_| SealError::Malformed("not base64"))?;
        if bytes.len() < NONCE_LEN {
            return Err(SealError::Malformed("shorter than its nonce"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce =
            XNonce::try_from(nonce).map_err(|_| SealError::Malformed("shorter than its nonce"))?;
        let aad = aad(id);
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SealError::Rejected)?;
        // Authenticated, so this is what was sealed: a secret is always text.
        String::from_utf8(plain).map_err(|_| SealError::Malformed("not text once opened"))
    }
}

fn aad(id: &Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(AAD_LABEL.len() + 16);
    aad.extend_from_slice(AAD_LABEL);
    aad.extend_from_slice(id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn sealer(byte: u8) -> Sealer {
        Sealer::from_bytes([byte; KEY_LEN], Path::new("test.key"))
    }

    #[test]
    fn a_sealed_secret_opens_for_its_own_subscription_and_hides_the_secret() {
        let s = sealer(1);
        let id = Uuid::now_v7();
        let sealed = s.seal(&id, SECRET).unwrap();
        assert!(sealed.starts_with(SEALED_V1));
        assert!(!sealed.contains(SECRET));
        assert!(!sealed.contains(SECRET.trim_start_matches("whsec_")));
        assert_eq!(s.open(&id, &sealed).unwrap(), SECRET);
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let s = sealer(1);
        let id = Uuid::now_v7();
        assert_ne!(s.seal(&id, SECRET).unwrap(), s.seal(&id, SECRET).unwrap());
    }

    #[test]
    fn a_sealed_secret_does_not_open_for_another_subscription_another_key_or_altered() {
        let s = sealer(1);
        let id = Uuid::now_v7();
        let sealed = s.seal(&id, SECRET).unwrap();
        assert!(matches!(
            s.open(&Uuid::now_v7(), &sealed),
            Err(SealError::Rejected)
        ));
        assert!(matches!(
            sealer(2).open(&id, &sealed),
            Err(SealError::Rejected)
        ));
        let mut bytes = STANDARD.decode(&sealed[SEALED_V1.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{SEALED_V1}{}", STANDARD.encode(bytes));
        assert!(matches!(s.open(&id, &altered), Err(SealError::Rejected)));
        assert!(matches!(s.open(&id, SECRET), Err(SealError::Malformed(_))));
        assert!(matches!(
            s.open(&id, "v1:AAAA"),
            Err(SealError::Malformed(_))
        ));
    }

    #[test]
    fn a_created_key_file_loads_is_owner_only_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("webhooks.key");
        create_key_file(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = create_key_file(&path).unwrap_err().to_string();
        assert!(err.contains("refusing to overwrite"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let id = Uuid::now_v7();
        let sealed = Sealer::load(&path).unwrap().seal(&id, SECRET).unwrap();
        assert_eq!(
            Sealer::load(&path).unwrap().open(&id, &sealed).unwrap(),
            SECRET
        );
    }

    #[test]
    fn a_key_file_of_the_wrong_length_or_not_hex_is_refused_naming_the_setting_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short.key");
        std::fs::write(&path, "00112233\n").unwrap();
        let err = Sealer::load(&path).unwrap_err().to_string();
        assert!(err.contains(KEY_SETTING), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
        assert!(err.contains("64 hex digits"), "{err}");
        std::fs::write(&path, "z".repeat(64)).unwrap();
        let err = Sealer::load(&path).unwrap_err().to_string();
        assert!(err.contains("not all hex digits"), "{err}");
        std::fs::write(&path, [7u8; 32]).unwrap();
        assert!(
            Sealer::load(&path).is_err(),
            "32 raw bytes are not the format"
        );
    }

    #[test]
    fn the_debug_form_of_a_sealer_names_only_its_file() {
        let text = format!("{:?}", sealer(0xab));
        assert!(text.contains("test.key"));
        assert!(!text.to_lowercase().contains("abab"), "{text}");
    }
}
