//! Standard Webhooks signing: `whsec_` secrets and the `webhook-signature` header
//! (`v1,` + base64 of HMAC-SHA256 over `{id}.{timestamp}.{body}`). This module must never log
//! or format a secret, and never sign with anything but the secret's decoded bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// The prefix every secret carries, as the Standard Webhooks libraries expect.
pub const SECRET_PREFIX: &str = "whsec_";

/// Why a stored secret cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("a webhook secret must be `whsec_` followed by base64")]
pub struct BadSecret;

/// A fresh secret: `whsec_` + base64 of 32 random bytes from the OS-seeded CSPRNG.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The key bytes of a secret (the base64 after `whsec_`; a bare base64 string is accepted too,
/// as the official libraries do).
pub fn decode_secret(secret: &str) -> Result<Vec<u8>, BadSecret> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(b64).map_err(|_| BadSecret)
}

/// A key ready to sign: HMAC-SHA256 keyed once (the key padded and hashed into its inner and
/// outer states), so each message costs a copy of that state and the message's own hashing
/// rather than a new key schedule. Its `Debug` form hides the key.
#[derive(Clone)]
pub struct SigningKey(Hmac<Sha256>);

impl SigningKey {
    /// Keys the HMAC with a secret's decoded bytes.
    pub fn new(key: &[u8]) -> Option<SigningKey> {
        // HMAC accepts keys of any length, so this does not fail.
        Hmac::<Sha256>::new_from_slice(key).ok().map(SigningKey)
    }

    /// One `v1,<base64>` signature of a message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(<redacted>)")
    }
}

/// One `v1,<base64>` signature of a message.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    SigningKey::new(key)
        .map(|k| k.sign(id, timestamp, body))
        .unwrap_or_default()
}

/// The `webhook-signature` header value: one signature per key, space-separated (during a
/// rotation overlap the receiver may still hold the old secret).
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| sign(k, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// [`signature_header`] with keys already prepared.
pub fn signature_header_with(
    keys: &[&SigningKey],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    keys.iter()
        .map(|k| k.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_test_vector_signs_as_published() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = sign(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_new_secret_is_whsec_and_32_random_bytes() {
        let a = new_secret();
        let b = new_secret();
        assert!(a.starts_with("whsec_"));
        assert_eq!(decode_secret(&a).unwrap().len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn two_keys_give_two_space_separated_signatures() {
        let h = signature_header(&[vec![1], vec![2]], "id", 1, b"{}");
        let parts: Vec<_> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| p.starts_with("v1,")));
        assert_ne!(parts[0], parts[1]);
    }

    #[test]
    fn a_prepared_key_signs_every_message_as_a_fresh_key_would() {
        let key = decode_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let prepared = SigningKey::new(&key).unwrap();
        for (id, ts, body) in [
            (
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                &br#"{"test": 2432232314}"#[..],
            ),
            ("another", 1, &b"{}"[..]),
        ] {
            assert_eq!(prepared.sign(id, ts, body), sign(&key, id, ts, body));
        }
        assert_eq!(
            prepared.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            signature_header_with(
                &[&prepared, &SigningKey::new(&[2]).unwrap()],
                "id",
                1,
                b"{}"
            ),
            signature_header(&[key, vec![2]], "id", 1, b"{}")
        );
    }
}
