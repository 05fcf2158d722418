//! The format of per-customer client keys: `tg-<key-id>-<secret>`.
//!
//! The key id is 16 lowercase hex digits and the secret 64 (32 bytes from the operating
//! system's CSPRNG). Only the SHA-256 digest of the whole key is stored, as lowercase hex,
//! in the customer's USD balance metadata under `tollgate_key_<key-id>`. The key id
//! alphabet fits Blnk's metadata key rule `^[A-Za-z][A-Za-z0-9_]*$`, so that key can be
//! filtered on.

use std::fmt;

use rand::TryRngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The prefix that marks a bearer token as a per-customer key.
pub const KEY_PREFIX: &str = "tg-";

/// The prefix of the balance metadata key that stores a key's digest.
pub const METADATA_PREFIX: &str = "tollgate_key_";

/// The metadata value of a revoked key.
pub const REVOKED: &str = "revoked";

const KEY_ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// The public part of a per-customer key, which names it in logs, metadata and the CLI.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

/// A string that is not a key id.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid key id {shown}: a key id is 16 lowercase hex digits, the part between `tg-` and \
     the second `-` of a key"
)]
pub struct InvalidKeyId {
    /// The text, quoted, when it is no longer than a key id; otherwise only its length, because
    /// an operator may paste a whole key by mistake.
    shown: String,
}

/// The SHA-256 digest of a key. Formatting never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

/// A newly minted key. The key itself exists only here and in the output that shows it once.
#[derive(Debug)]
pub struct MintedKey {
    pub id: KeyId,
    pub key: Secret,
    pub digest: KeyDigest,
}

/// The operating system's random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomError(String);

impl KeyId {
    pub fn parse(text: &str) -> Result<KeyId, InvalidKeyId> {
        if is_lower_hex(text, KEY_ID_BYTES * 2) {
            Ok(KeyId(text.to_owned()))
        } else {
            let shown = if text.chars().count() <= KEY_ID_BYTES * 2 {
                format!("{text:?}")
            } else {
                format!("of {} characters", text.chars().count())
            };
            Err(InvalidKeyId { shown })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the balance metadata key that stores this key's digest.
    pub fn metadata_key(&self) -> String {
        format!("{METADATA_PREFIX}{}", self.0)
    }

    /// Returns the key id named by a metadata key such as `tollgate_key_0123456789abcdef`.
    pub fn from_metadata_key(name: &str) -> Option<KeyId> {
        name.strip_prefix(METADATA_PREFIX)
            .and_then(|id| KeyId::parse(id).ok())
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl KeyDigest {
    /// Hashes a presented or minted key.
    pub fn of(key: &str) -> KeyDigest {
        KeyDigest(Sha256::digest(key.as_bytes()).into())
    }

    /// Parses the stored form: 64 lowercase hex digits.
    pub fn from_hex(text: &str) -> Option<KeyDigest> {
        if !is_lower_hex(text, 64) {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            *byte = (hex_value(pair[0])? << 4) | hex_value(pair[1])?;
        }
        Some(KeyDigest(bytes))
    }

    pub fn to_hex(self) -> String {
        to_hex(&self.0)
    }

    /// Compares two digests in constant time.
    pub fn ct_eq(&self, other: &KeyDigest) -> subtle::Choice {
        self.0.ct_eq(&other.0)
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(****)")
    }
}

/// Mints a key with a fresh key id and secret.
pub fn mint() -> Result<MintedKey, RandomError> {
    let mut id = [0u8; KEY_ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    OsRng
        .try_fill_bytes(&mut id)
        .and_then(|()| OsRng.try_fill_bytes(&mut secret))
        .map_err(|error| RandomError(error.to_string()))?;

    let id = KeyId(to_hex(&id));
    let key = format!("{KEY_PREFIX}{id}-{}", to_hex(&secret));
    let digest = KeyDigest::of(&key);
    Ok(MintedKey {
        id,
        key: Secret::new(key),
        digest,
    })
}

/// Returns the key id of a well-formed per-customer key, or `None` for any other token.
pub fn parse_key(token: &str) -> Option<KeyId> {
    let rest = token.strip_prefix(KEY_PREFIX)?;
    let (id, secret) = rest.split_once('-')?;
    if !is_lower_hex(secret, SECRET_BYTES * 2) {
        return None;
    }
    KeyId::parse(id).ok()
}

fn is_lower_hex(text: &str, len: usize) -> bool {
    text.len() == len
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_key_parses_back_to_its_id() {
        let minted = mint().unwrap();
        let key = minted.key.expose();
        assert_eq!(key.len(), 3 + 16 + 1 + 64);
        assert!(key.starts_with("tg-"));
        assert_eq!(parse_key(key), Some(minted.id.clone()));
        assert_eq!(KeyDigest::of(key), minted.digest);
    }

    #[test]
    fn minted_keys_differ() {
        let first = mint().unwrap();
        let second = mint().unwrap();
        assert_ne!(first.id, second.id);
        assert_ne!(first.key, second.key);
    }

    #[test]
    fn metadata_key_fits_blnk_rule() {
        let id = mint().unwrap().id;
        let name = id.metadata_key();
        let mut chars = name.chars();
        assert!(chars.next().is_some_and(|c| c.is_ascii_alphabetic()));
        assert!(
            chars.all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{name}"
        );
        assert_eq!(KeyId::from_metadata_key(&name), Some(id));
    }

    #[test]
    fn malformed_tokens_are_not_keys() {
        let secret = "0".repeat(64);
        let cases = [
            format!("tg-0123456789abcdef-{secret}"),
            format!("tg-0123456789ABCDEF-{secret}"),
            format!("tg-0123456789abcde-{secret}"),
            format!("tg-0123456789abcdef-{secret}0"),
            format!("tg-0123456789abcdef_{secret}"),
            format!("TG-0123456789abcdef-{secret}"),
            "tg-".to_owned(),
            "sk-proj-abc".to_owned(),
            String::new(),
        ];
        let valid = [true, false, false, false, false, false, false, false, false];
        for (token, valid) in cases.iter().zip(valid) {
            assert_eq!(parse_key(token).is_some(), valid, "{token}");
        }
    }

    #[test]
    fn digest_hex_round_trips() {
        let digest = KeyDigest::of("tg-example");
        let hex = digest.to_hex();
        assert_eq!(hex.len(), 64);
        assert_eq!(KeyDigest::from_hex(&hex), Some(digest));
        assert_eq!(KeyDigest::from_hex(&hex.to_uppercase()), None);
        assert_eq!(KeyDigest::from_hex(REVOKED), None);
    }

    #[test]
    fn sha256_matches_known_vector() {
        let hex = KeyDigest::of("abc").to_hex();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn debug_hides_key_and_digest() {
        let minted = mint().unwrap();
        let debug = format!("{minted:?}");
        assert!(!debug.contains(&minted.key.expose()[20..]), "{debug}");
        assert!(!debug.contains(&minted.digest.to_hex()), "{debug}");
    }

    #[test]
    fn invalid_key_id_hides_long_input() {
        let key = format!("tg-0123456789abcdef-{}", "f".repeat(64));
        let error = KeyId::parse(&key).unwrap_err().to_string();
        assert!(
            error.starts_with("invalid key id of 84 characters:"),
            "{error}"
        );

        let error = KeyId::parse("0123456789ABCDEF").unwrap_err().to_string();
        assert!(
            error.starts_with("invalid key id \"0123456789ABCDEF\":"),
            "{error}"
        );
    }
}
