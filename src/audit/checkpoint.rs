//! Signed checkpoints: an Ed25519 signature over (origin, size, Merkle root, timestamp), so an
//! auditor who keeps one can later prove the log still contains exactly what it showed then.
//! The signed text is fixed and documented (`signed_text`); this module must never change it,
//! never log the signing key, and never write a checkpoint for a size the log has not reached.

use std::path::Path;

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The origin line of every Annals checkpoint.
pub const ORIGIN: &str = "annals";

/// A signed statement of the log's size and Merkle root at a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Always [`ORIGIN`].
    pub origin: String,
    /// Number of records covered.
    pub size: u64,
    /// Hex of the RFC 9162 root of the first `size` records.
    pub root: String,
    /// When it was signed (RFC 3339, UTC).
    pub timestamp: String,
    /// First 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// Base64 of the Ed25519 signature over [`signed_text`].
    pub signature: String,
}

/// Why a key or checkpoint could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// The key file could not be read or written.
    #[error("signing key {path}: {message}")]
    Key {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The signature does not verify.
    #[error("the checkpoint signature does not verify with this public key")]
    BadSignature,
    /// The checkpoint is malformed.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
}

/// The exact bytes that are signed.
pub fn signed_text(origin: &str, size: u64, root_hex: &str, timestamp: &str) -> String {
    format!("annals-checkpoint/v1\n{origin}\n{size}\n{root_hex}\n{timestamp}\n")
}

/// The id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(key.as_bytes())[..8])
}

/// Creates a new signing key file (hex of the 32-byte seed, mode 0600); refuses to overwrite.
pub fn generate_key_file(path: &Path) -> Result<VerifyingKey, CheckpointError> {
    let err = |message: String| CheckpointError::Key {
        path: path.display().to_string(),
        message,
    };
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    crate::keyfile::create(path, &key.to_bytes()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            err("already exists; refusing to overwrite a signing key".into())
        } else {
            err(e.to_string())
        }
    })?;
    Ok(key.verifying_key())
}

/// Loads a signing key file.
pub fn load_key_file(path: &Path) -> Result<SigningKey, CheckpointError> {
    let err = |message: String| CheckpointError::Key {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .map_err(|_| err("expected 64 hex digits (an Ed25519 seed)".into()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Parses a public key given as 64 hex digits.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, CheckpointError> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .map_err(|_| CheckpointError::Malformed("a public key is 64 hex digits".into()))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| CheckpointError::Malformed(format!("not an Ed25519 public key: {e}")))
}

/// Signs a checkpoint of `size` records with Merkle root `root`.
pub fn sign(key: &SigningKey, size: u64, root: &[u8; 32], timestamp: &str) -> Checkpoint {
    let root_hex = hex::encode(root);
    let text = signed_text(ORIGIN, size, &root_hex, timestamp);
    let signature = key.sign(text.as_bytes());
    Checkpoint {
        origin: ORIGIN.to_string(),
        size,
        root: root_hex,
        timestamp: timestamp.to_string(),
        key_id: key_id(&key.verifying_key()),
        signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
    }
}

impl Checkpoint {
    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|_| CheckpointError::Malformed("signature is not base64".into()))?;
        let signature = Signature::from_slice(&bytes)
            .map_err(|_| CheckpointError::Malformed("signature is not 64 bytes".into()))?;
        let text = signed_text(&self.origin, self.size, &self.root, &self.timestamp);
        key.verify(text.as_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// The root as bytes.
    pub fn root_bytes(&self) -> Result<[u8; 32], CheckpointError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(&self.root, &mut out)
            .map_err(|_| CheckpointError::Malformed("root is not 64 hex digits".into()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_checkpoint_verifies_and_any_change_breaks_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let public = generate_key_file(&path).unwrap();
        assert!(generate_key_file(&path).is_err(), "never overwrites");
        let key = load_key_file(&path).unwrap();
        let cp = sign(&key, 42, &[7u8; 32], "2026-01-23T00:00:00.000000Z");
        cp.verify(&public).unwrap();
        let mut bigger = cp.clone();
        bigger.size = 43;
        assert!(bigger.verify(&public).is_err());
        let other = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        assert!(cp.verify(&other).is_err());
        assert_eq!(
            parse_public_key(&hex::encode(public.as_bytes())).unwrap(),
            public
        );
    }
}
