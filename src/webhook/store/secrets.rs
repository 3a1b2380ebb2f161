//! Subscriptions at rest: their stored form, with every signing secret sealed on the way in
//! and opened on the way out, and the sealing in place of a store written before secrets were
//! sealed. It must never write a secret unsealed.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::super::subscription::{Secret, Status, Subscription, ms_to_rfc3339, now_ms};
use super::{SUB, Store, StoreError, decode};

/// A secret as the store keeps it: sealed, or (only in a store written before secrets were
/// sealed, until start-up seals it) in the clear. Which field is present says which, so a
/// stored value is never ambiguous.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct StoredSecret {
    /// `v1:` + base64 of nonce and ciphertext (`sealing`), bound to the subscription id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed: Option<String>,
    /// The secret in the clear, as earlier versions stored it. Read, never written.
    #[serde(default, skip_serializing)]
    key: Option<String>,
    /// As [`Secret::expires_at_ms`].
    expires_at_ms: Option<u64>,
}

/// A subscription on its way into the store: its fields, with `secrets` sealed.
#[derive(Serialize)]
pub(super) struct StoredRef<'a> {
    #[serde(flatten)]
    sub: &'a Subscription,
    secrets: Vec<StoredSecret>,
}

/// A subscription as read from the store, its secrets not yet opened.
#[derive(Deserialize)]
pub(super) struct Stored {
    #[serde(flatten)]
    sub: Subscription,
    #[serde(default)]
    secrets: Vec<StoredSecret>,
}

/// Just the id and secrets of a stored subscription (to look for sealed ones without a key).
#[derive(Deserialize)]
pub(super) struct StoredSecrets {
    id: Uuid,
    #[serde(default)]
    secrets: Vec<StoredSecret>,
}

/// What to do at start with a subscription whose secret does not open with the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Unreadable {
    /// Refuse to start, naming the key file and the subscription.
    #[default]
    Refuse,
    /// Drop the secrets that do not open and disable the subscription until its secret is
    /// rotated and it is resumed (the way back after a lost key).
    Disable,
}

/// What [`Store::seal_plaintext_secrets`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sealing {
    /// Secrets found in the clear and sealed.
    pub sealed: usize,
    /// Subscriptions whose secrets did not open, disabled (only with [`Unreadable::Disable`]).
    pub disabled: usize,
}

impl Store {
    /// The first subscription in `log`'s webhook store holding a sealed secret, if any: read
    /// before a key exists, so a missing key file is never replaced by a new key while
    /// secrets sealed under the old one remain.
    pub fn first_sealed(log: &crate::log::Log) -> Result<Option<Uuid>, StoreError> {
        for item in log.aux_tree("webhooks")?.scan_prefix([SUB]) {
            let (k, v) = item?;
            let stored: StoredSecrets = decode(&k, &v)?;
            if stored.secrets.iter().any(|s| s.sealed.is_some()) {
                return Ok(Some(stored.id));
            }
        }
        Ok(None)
    }

    /// A subscription's stored bytes, its secrets sealed under its own id.
    pub(super) fn encode_subscription(&self, sub: &Subscription) -> Result<Vec<u8>, StoreError> {
        let secrets = sub
            .secrets
            .iter()
            .map(|s| {
                Ok(StoredSecret {
                    sealed: Some(
                        self.sealer
                            .seal(&sub.id, &s.key)
                            .map_err(StoreError::Seal)?,
                    ),
                    key: None,
                    expires_at_ms: s.expires_at_ms,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(serde_json::to_vec(&StoredRef { sub, secrets })?)
    }

    /// Opens the secrets of a stored subscription. A secret in the clear (an earlier
    /// version's store, before start-up sealed it) is taken as it is.
    pub(super) fn open(&self, k: &[u8], stored: Stored) -> Result<Subscription, StoreError> {
        let Stored { mut sub, secrets } = stored;
        sub.secrets = secrets
            .into_iter()
            .map(|s| {
                let key = match (s.sealed, s.key) {
                    (Some(sealed), None) => {
                        self.sealer.open(&sub.id, &sealed).map_err(|reason| {
                            StoreError::Undecryptable {
                                subscription: sub.id,
                                key_file: self.sealer.path().to_path_buf(),
                                reason,
                            }
                        })?
                    }
                    (None, Some(plain)) => plain,
                    _ => {
                        return Err(StoreError::Corrupt {
                            key: String::from_utf8_lossy(k).into_owned(),
                            reason: "a secret must be either sealed or (before sealing) in the \
                                     clear"
                                .into(),
                        });
                    }
                };
                Ok(Secret {
                    key,
                    expires_at_ms: s.expires_at_ms,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(sub)
    }

    pub(super) fn decode_subscription(
        &self,
        k: &[u8],
        v: &[u8],
    ) -> Result<Subscription, StoreError> {
        self.open(k, decode(k, v)?)
    }

    /// At start: seals every secret still stored in the clear (a store written before
    /// secrets were sealed) and checks that every sealed one opens with this key, so nothing
    /// is ever signed with a secret that did not authenticate. A subscription whose secrets
    /// do not open stops the start (an error naming it and the key file), or with
    /// [`Unreadable::Disable`] loses them and is disabled until its secret is rotated. The
    /// rewrites are one batch, made durable before this answers.
    pub fn seal_plaintext_secrets(&self, unreadable: Unreadable) -> Result<Sealing, StoreError> {
        let tree = self.tree()?;
        let mut batch = sled::Batch::default();
        let mut done = Sealing::default();
        for item in tree.scan_prefix([SUB]) {
            let (k, v) = item?;
            let stored: Stored = decode(&k, &v)?;
            let in_clear = stored.secrets.iter().filter(|s| s.key.is_some()).count();
            let id = stored.sub.id;
            let sub = match self.open(&k, stored) {
                Ok(_) if in_clear == 0 => continue,
                Ok(sub) => {
                    done.sealed += in_clear;
                    sub
                }
                Err(StoreError::Undecryptable { .. }) if unreadable == Unreadable::Disable => {
                    let Stored { mut sub, .. } = decode(&k, &v)?;
                    sub.secrets.clear();
                    sub.status = Status::Disabled;
                    sub.updated_at = ms_to_rfc3339(now_ms());
                    sub.status_reason = Some(format!(
                        "its signing secret could not be decrypted with the key in {}; rotate \
                         its secret, then resume it",
                        self.sealer.path().display()
                    ));
                    tracing::warn!(subscription = %id, key_file = %self.sealer.path().display(), "webhook secret cannot be decrypted; subscription disabled until its secret is rotated");
                    done.disabled += 1;
                    sub
                }
                Err(e) => return Err(e),
            };
            // Never pushed to the cluster: only sealed secrets ever reach it, and a node
            // started with the wrong key must not disable a subscription for every node.
            batch.insert(k, self.encode_subscription(&sub)?);
        }
        if done != Sealing::default() {
            tree.apply_batch(batch)?;
            let _ = self.wrote();
            self.log.sync_aux()?;
        }
        Ok(done)
    }
}
