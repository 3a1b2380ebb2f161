//! API keys: making them, hashing them, and looking up who holds one and what it may do.
//! A plaintext key exists only in the caller's hands and in `annals keys new` output; this
//! module must never log one or keep one after hashing it.
//!
//! With the nats backend the keys live in the cluster ([`SharedRing`], the key-value bucket
//! `<stream>_keys`): each node publishes its configured `[[auth.keys]]` entries there at
//! start (their hashes, never a key) and honours every entry the bucket holds, so a key
//! configured on one node works on every node. `annals keys add` stores a new key's entry
//! there directly ([`add_to_cluster`]); `annals keys revoke` ([`revoke_in_cluster`]) writes a
//! revocation record (`r.<hex>`, kept for ever) and deletes the entry: every node then refuses
//! the key, its configured keys included, and no node publishes it again at its next start.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, RwLock};

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The configured API keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Hashed keys with their principal and scopes.
    pub keys: Vec<KeyEntry>,
}

/// One API key as configured: never the key itself, only its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// Who uses the key; recorded as `recorded_by` on every append made with it.
    pub principal: String,
    /// `sha256:<hex>` of the key, as printed by `annals keys new`.
    pub hash: String,
    /// What the key may do.
    pub scopes: Vec<Scope>,
}

impl KeyEntry {
    /// The entry as an `[[auth.keys]]` block of a TOML config: what `annals keys new` prints to
    /// paste, and what test configs are made of, so the two can never drift apart.
    pub fn to_toml(&self) -> String {
        let scopes: Vec<String> = self
            .scopes
            .iter()
            .map(|s| toml_string(s.as_str()))
            .collect();
        format!(
            "[[auth.keys]]\nprincipal = {}\nhash = {}\nscopes = [{}]\n",
            toml_string(&self.principal),
            toml_string(&self.hash),
            scopes.join(", ")
        )
    }
}

/// A TOML basic string. The principal is free text typed by an operator: a quote or a
/// backslash written bare would make the pasted block break the config.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// What a key may do. `Admin` implies the other two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read the log, the live feed and metrics.
    Read,
    /// Append events.
    Append,
    /// Manage the service (subscriptions, rebuilds); implies read and append.
    Admin,
}

impl Scope {
    /// The scope's name as written in configs and error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Append => "append",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "read" => Ok(Scope::Read),
            "append" => Ok(Scope::Append),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope `{other}` (expected read, append or admin)"
            )),
        }
    }
}

/// The holder of a key, as seen by a request handler.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The configured principal name, recorded as `recorded_by`.
    pub name: String,
    scopes: Vec<Scope>,
}

impl Principal {
    /// Whether this principal may act with `scope`.
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&Scope::Admin) || self.scopes.contains(&scope)
    }
}

/// A freshly generated key: shown once, then only its hash is kept.
pub struct NewKey {
    /// The secret to hand to the client.
    pub key: String,
    /// `sha256:<hex>`, for the config.
    pub hash: String,
}

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug output ends up in logs; the key must not.
        f.debug_struct("NewKey")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Generates a key with 256 random bits: `ak_` + base64url.
pub fn generate() -> NewKey {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!(
        "ak_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hash = hash_key(&key);
    NewKey { key, hash }
}

/// `sha256:<hex>` of a key. Keys carry 256 random bits, so a fast unsalted hash is safe here:
/// there is nothing to brute-force that a slow hash would protect.
pub fn hash_key(key: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(key.as_bytes())))
}

/// The 32 digest bytes of a `sha256:<hex>` string, if well formed.
pub fn parse_hash(hash: &str) -> Option<[u8; 32]> {
    let hex_part = hash.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// Every configured key, indexed by hash.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    by_hash: HashMap<[u8; 32], Principal>,
}

impl KeyRing {
    /// Builds the ring from configured entries; malformed hashes were refused by config checks.
    pub fn new(entries: &[KeyEntry]) -> KeyRing {
        let mut ring = KeyRing::default();
        for entry in entries {
            if let Some(digest) = parse_hash(&entry.hash) {
                ring.by_hash.insert(
                    digest,
                    Principal {
                        name: entry.principal.clone(),
                        scopes: entry.scopes.clone(),
                    },
                );
            }
        }
        ring
    }

    /// Who holds `key`, if anyone.
    pub fn lookup(&self, key: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.by_hash.get(&digest)
    }

    /// Whether no key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// The keys the cluster holds, as last seen by this node (nats backend); cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SharedRing {
    ring: Arc<RwLock<KeyRing>>,
    /// Keys revoked in the cluster (`r.<hex>`): refused even where configured.
    revoked: Arc<RwLock<HashSet<[u8; 32]>>>,
}

/// The bucket key of a key's entry, and of its revocation record.
fn entry_name(digest: &[u8; 32]) -> String {
    format!("k.{}", hex::encode(digest))
}

fn revocation_name(digest: &[u8; 32]) -> String {
    format!("r.{}", hex::encode(digest))
}

/// The digest a bucket key names after `prefix` (`k.` or `r.`).
fn named_digest(name: &str, prefix: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(name.strip_prefix(prefix)?, &mut out).ok()?;
    Some(out)
}

/// A key revoked in the cluster: kept for ever, so the config that first published the key
/// cannot bring it back.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Revocation {
    principal: String,
    revoked_at: String,
}

impl SharedRing {
    /// Whether `key` was revoked in the cluster (then it is refused even where configured).
    pub fn is_revoked(&self, key: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(key.as_bytes()).into();
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&digest)
    }

    /// Who holds `key` among the cluster's keys, if anyone.
    pub fn lookup(&self, key: &str) -> Option<Principal> {
        self.ring
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .lookup(key)
            .cloned()
    }

    /// Takes in one bucket value (`None`: the key was deleted, revoked for every node).
    fn apply(&self, name: &str, value: Option<&[u8]>) {
        if let Some(digest) = named_digest(name, "r.") {
            // A revocation is never undone: a deleted record leaves the key refused here.
            if value.is_some() {
                self.revoked
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(digest);
                self.ring
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .by_hash
                    .remove(&digest);
            }
            return;
        }
        let Some(digest) = named_digest(name, "k.") else {
            return;
        };
        let revoked = self
            .revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&digest);
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        match value.map(serde_json::from_slice::<KeyEntry>) {
            Some(Ok(_)) if revoked => {
                ring.by_hash.remove(&digest);
            }
            Some(Ok(entry)) => {
                ring.by_hash.insert(
                    digest,
                    Principal {
                        name: entry.principal,
                        scopes: entry.scopes,
                    },
                );
            }
            Some(Err(e)) => {
                tracing::warn!(key = name, error = %e, "an API key in the cluster does not parse; ignored");
                ring.by_hash.remove(&digest);
            }
            None => {
                ring.by_hash.remove(&digest);
            }
        }
    }

    /// Publishes `entries` to the cluster's key bucket, loads every key it holds, and
    /// follows its changes until the answered task is aborted.
    pub(crate) async fn share(
        link: &crate::log::nats::Link,
        entries: &[KeyEntry],
    ) -> Result<(SharedRing, tokio::task::JoinHandle<()>), crate::log::nats::NatsError> {
        // A cluster just started (or busy) may time out the first requests: tried for 30 s.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            match Self::share_once(link, entries).await {
                Err(e) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "the cluster's API keys are not reachable yet");
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                done => return done,
            }
        }
    }

    async fn share_once(
        link: &crate::log::nats::Link,
        entries: &[KeyEntry],
    ) -> Result<(SharedRing, tokio::task::JoinHandle<()>), crate::log::nats::NatsError> {
        let bucket = link.bucket("keys", None).await?;
        let shared = SharedRing::default();
        let revoked: HashSet<[u8; 32]> = bucket
            .values("r.*")
            .await?
            .iter()
            .filter_map(|c| named_digest(&c.key, "r."))
            .collect();
        for entry in entries {
            let Some(digest) = parse_hash(&entry.hash) else {
                continue;
            };
            if revoked.contains(&digest) {
                tracing::warn!(principal = %entry.principal, hash = %entry.hash, "this configured API key was revoked in the cluster (annals keys revoke): refused, and not published again; remove it from [[auth.keys]]");
                continue;
            }
            let value = serde_json::to_vec(entry).map_err(|e| crate::log::nats::NatsError::Kv {
                bucket: "keys".into(),
                why: e.to_string(),
            })?;
            bucket
                .put(&format!("k.{}", hex::encode(digest)), value.into())
                .await?;
        }
        // Watching before the copy: nothing written in between is missed.
        let changes = bucket.watch().await?;
        shared.replace_all(bucket.values(">").await?);
        let follower = KeysFollower {
            ring: shared.clone(),
            bucket: bucket.clone(),
        };
        let task = tokio::spawn(crate::log::nats::follow_bucket(bucket, changes, follower));
        Ok((shared, task))
    }

    /// Takes in the whole bucket as read from its stream leader: keys deleted meanwhile leave
    /// the ring, revocations are added (never undone).
    fn replace_all(&self, values: Vec<crate::log::nats::Change>) {
        // Revocations first: an entry is judged knowing every one.
        let (revocations, others): (Vec<_>, Vec<_>) =
            values.into_iter().partition(|c| c.key.starts_with("r."));
        for change in &revocations {
            self.apply(&change.key, change.value.as_deref());
        }
        let present: HashSet<[u8; 32]> = others
            .iter()
            .filter_map(|c| named_digest(&c.key, "k."))
            .collect();
        self.ring
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .by_hash
            .retain(|digest, _| present.contains(digest));
        for change in &others {
            self.apply(&change.key, change.value.as_deref());
        }
    }
}

/// Takes the keys bucket's changes into a node's [`SharedRing`]: a watch that fails or stalls
/// is set up again and the whole bucket read again ([`crate::log::nats::follow_bucket`]),
/// which bounds how long a key revoked anywhere can still be accepted here.
struct KeysFollower {
    ring: SharedRing,
    bucket: crate::log::nats::Bucket,
}

impl crate::log::nats::Follower for KeysFollower {
    type Error = crate::log::nats::NatsError;
    const WHAT: &'static str = "API keys";

    async fn change(&mut self, change: crate::log::nats::Change) {
        self.ring.apply(&change.key, change.value.as_deref());
    }

    async fn reread(&mut self) -> Result<(), Self::Error> {
        // Changes the watch still holds are older or equal, and are applied after this in
        // order: the ring ends at the newest either way.
        self.ring.replace_all(self.bucket.values(">").await?);
        Ok(())
    }
}

/// What went wrong adding or revoking a key in the cluster (`annals keys add` / `revoke`).
#[derive(Debug, thiserror::Error)]
pub enum ClusterKeysError {
    /// The cluster's keys bucket could not be reached, read or written.
    #[error(transparent)]
    Nats(#[from] crate::log::nats::NatsError),
    /// No key in the cluster matches what was asked to revoke.
    #[error(
        "no key in the cluster's keys bucket has a hash starting with, or a principal equal to, `{0}`"
    )]
    NoMatch(String),
    /// A hash prefix matches more than one key.
    #[error("`{prefix}` starts the hashes of several keys ({}): give more of the hash", .candidates.join(", "))]
    Ambiguous {
        /// The prefix given.
        prefix: String,
        /// The hashes it matches.
        candidates: Vec<String>,
    },
}

/// The cluster's keys bucket, waiting up to 30 s for a cluster just started (or busy).
async fn cluster_bucket(
    nats: &crate::log::config::NatsConfig,
) -> Result<crate::log::nats::Bucket, crate::log::nats::NatsError> {
    let link = crate::log::nats::Link::connect(nats)?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match link.bucket("keys", None).await {
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "the cluster's keys bucket is not reachable yet");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            done => return done,
        }
    }
}

/// Stores a new key's entry (its hash, principal and scopes; never the key) in the cluster
/// behind `nats`: every node accepts the key from then on. Must be called inside a tokio
/// runtime.
pub async fn add_to_cluster(
    nats: &crate::log::config::NatsConfig,
    entry: &KeyEntry,
) -> Result<(), ClusterKeysError> {
    let bucket = cluster_bucket(nats).await?;
    retried(|| add_once(&bucket, entry)).await
}

/// Runs `once` again while it fails on the cluster (a leader election, a busy cluster) for up
/// to 30 s: both operations are idempotent, so a write that landed though its answer was lost
/// is only written again.
async fn retried<T, F: Future<Output = Result<T, ClusterKeysError>>>(
    mut once: impl FnMut() -> F,
) -> Result<T, ClusterKeysError> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match once().await {
            Err(ClusterKeysError::Nats(e)) if tokio::time::Instant::now() < deadline => {
                tracing::debug!(error = %e, "the cluster's keys bucket failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
            done => return done,
        }
    }
}

async fn add_once(
    bucket: &crate::log::nats::Bucket,
    entry: &KeyEntry,
) -> Result<(), ClusterKeysError> {
    let digest =
        parse_hash(&entry.hash).ok_or_else(|| ClusterKeysError::NoMatch(entry.hash.clone()))?;
    let value = serde_json::to_vec(entry).map_err(|e| crate::log::nats::NatsError::Kv {
        bucket: "keys".into(),
        why: e.to_string(),
    })?;
    bucket.put(&entry_name(&digest), value.into()).await?;
    Ok(())
}

/// Revokes for every node of the cluster behind `nats` the keys `which` names: a full hash
/// (`sha256:<hex>` or the hex alone, present in the bucket or not), a prefix of exactly one
/// key's hash, or a principal (all of its keys). A revocation record is written first, then
/// the entry deleted, so a node starting in between does not publish the key again. Answers
/// the revoked keys (hash, principal). Must be called inside a tokio runtime.
pub async fn revoke_in_cluster(
    nats: &crate::log::config::NatsConfig,
    which: &str,
) -> Result<Vec<(String, String)>, ClusterKeysError> {
    let bucket = cluster_bucket(nats).await?;
    let values = retried(|| async { Ok(bucket.values("k.*").await?) }).await?;
    let mut known: Vec<([u8; 32], String)> = Vec::new();
    for change in values {
        if let (Some(digest), Some(value)) = (named_digest(&change.key, "k."), &change.value) {
            let principal = serde_json::from_slice::<KeyEntry>(value)
                .map(|e| e.principal)
                .unwrap_or_default();
            known.push((digest, principal));
        }
    }
    let hex_part = which
        .strip_prefix("sha256:")
        .unwrap_or(which)
        .to_ascii_lowercase();
    let full = parse_hash(&format!("sha256:{hex_part}"));
    let chosen: Vec<([u8; 32], String)> = if let Some(digest) = full {
        let principal = known
            .iter()
            .find(|(d, _)| *d == digest)
            .map(|(_, p)| p.clone())
            .unwrap_or_default();
        vec![(digest, principal)]
    } else {
        let by_principal: Vec<_> = known.iter().filter(|(_, p)| p == which).cloned().collect();
        if !by_principal.is_empty() {
            by_principal
        } else {
            let by_hash: Vec<_> = known
                .iter()
                .filter(|(d, _)| !hex_part.is_empty() && hex::encode(d).starts_with(&hex_part))
                .cloned()
                .collect();
            if by_hash.len() > 1 {
                return Err(ClusterKeysError::Ambiguous {
                    prefix: which.to_string(),
                    candidates: by_hash
                        .iter()
                        .map(|(d, _)| format!("sha256:{}", hex::encode(d)))
                        .collect(),
                });
            }
            by_hash
        }
    };
    if chosen.is_empty() {
        return Err(ClusterKeysError::NoMatch(which.to_string()));
    }
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut revoked = Vec::with_capacity(chosen.len());
    for (digest, principal) in chosen {
        let record = Revocation {
            principal: principal.clone(),
            revoked_at: now.clone(),
        };
        let value = serde_json::to_vec(&record).map_err(|e| crate::log::nats::NatsError::Kv {
            bucket: "keys".into(),
            why: e.to_string(),
        })?;
        let value = bytes::Bytes::from(value);
        retried(|| async { Ok(bucket.put(&revocation_name(&digest), value.clone()).await?) })
            .await?;
        retried(|| async { Ok(bucket.delete(&entry_name(&digest)).await?) }).await?;
        revoked.push((format!("sha256:{}", hex::encode(digest)), principal));
    }
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_is_found_by_its_hash_and_nothing_else_is() {
        let k = generate();
        let ring = KeyRing::new(&[KeyEntry {
            principal: "desk".into(),
            hash: k.hash.clone(),
            scopes: vec![Scope::Append],
        }]);
        let p = ring.lookup(&k.key).expect("found");
        assert_eq!(p.name, "desk");
        assert!(p.allows(Scope::Append));
        assert!(!p.allows(Scope::Read));
        assert!(ring.lookup("ak_wrong").is_none());
        assert!(!format!("{k:?}").contains(&k.key));
    }

    #[test]
    fn a_key_entry_written_as_toml_reads_back_as_the_same_entry_whatever_its_principal() {
        use figment::providers::Format;
        #[derive(Deserialize)]
        struct File {
            auth: AuthConfig,
        }
        for principal in [
            "desk",
            "news \"desk\" \\ one",
            "tab\there",
            "line\nbreak\u{7f}",
        ] {
            let entry = KeyEntry {
                principal: principal.into(),
                hash: generate().hash,
                scopes: vec![Scope::Read, Scope::Append],
            };
            let text = entry.to_toml();
            let file: File = figment::Figment::from(figment::providers::Toml::string(&text))
                .extract()
                .unwrap_or_else(|e| panic!("{principal:?}: {e}\n{text}"));
            let [read] = &file.auth.keys[..] else {
                panic!("one entry expected: {text}");
            };
            assert_eq!(read.principal, principal);
            assert_eq!(read.hash, entry.hash);
            assert_eq!(read.scopes, entry.scopes);
        }
    }

    #[test]
    fn admin_implies_every_scope() {
        let p = Principal {
            name: "root".into(),
            scopes: vec![Scope::Admin],
        };
        assert!(p.allows(Scope::Read) && p.allows(Scope::Append));
    }
}
