//! Global client keys: keys that the operator hands to trusted applications, which then name
//! the paying customer in the customer header.
//!
//! The keys come from `client_keys` (`TOLLGATE_CLIENT_KEYS`, comma-separated) and from the
//! file that `client_keys_file` (`TOLLGATE_CLIENT_KEYS_FILE`) names, one key per line. Only
//! their SHA-256 digests are kept in memory after loading.

use std::path::{Path, PathBuf};

use subtle::Choice;

use super::customer_key::{KEY_PREFIX, KeyDigest};
use crate::config::ClientAuthConfig;
use crate::secret::Secret;

/// Minimum length of a global client key, in characters.
pub const MIN_KEY_CHARS: usize = 16;

/// Maximum length of a global client key, in characters.
pub const MAX_KEY_CHARS: usize = 256;

/// The rule a global client key must meet, for error messages.
pub const KEY_RULE: &str = "16 to 256 visible ASCII characters without spaces or commas, \
     not starting with `tg-` (the prefix of per-customer keys)";

/// The digests of the configured global client keys.
pub struct ClientKeySet {
    digests: Vec<KeyDigest>,
}

/// The client keys file could not be used. Messages never contain a key.
#[derive(Debug, thiserror::Error)]
pub enum ClientKeyError {
    #[error("failed to read the client keys file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "invalid key in the client keys file {} at line {line}: expected {KEY_RULE}, \
         optionally followed by whitespace and a # comment",
        path.display()
    )]
    InvalidEntry { path: PathBuf, line: usize },
    #[error(
        "the client keys file {} contains no keys: add one key per line, or unset \
         client_keys_file (TOLLGATE_CLIENT_KEYS_FILE)",
        path.display()
    )]
    Empty { path: PathBuf },
}

/// Checks the form of one global client key. Returns the rule it breaks.
pub fn validate_client_key(text: &str) -> Result<(), &'static str> {
    let length = text.len();
    let visible = text.bytes().all(|b| b.is_ascii_graphic() && b != b',');
    if visible && (MIN_KEY_CHARS..=MAX_KEY_CHARS).contains(&length) && !text.starts_with(KEY_PREFIX)
    {
        Ok(())
    } else {
        Err(KEY_RULE)
    }
}

impl ClientKeySet {
    /// Reads the configured keys and the keys file, if one is configured.
    pub fn load(config: &ClientAuthConfig) -> Result<ClientKeySet, ClientKeyError> {
        let mut keys = config.keys.clone();
        if let Some(path) = &config.keys_file {
            let text = std::fs::read_to_string(path).map_err(|source| ClientKeyError::Read {
                path: path.clone(),
                source,
            })?;
            keys.extend(parse_keys_file(path, &text)?);
        }
        Ok(ClientKeySet::from_keys(&keys))
    }

    pub fn from_keys(keys: &[Secret]) -> ClientKeySet {
        let digests = keys.iter().map(|key| KeyDigest::of(key.expose())).collect();
        ClientKeySet { digests }
    }

    pub fn len(&self) -> usize {
        self.digests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Returns whether `token` is one of the keys. The presented key is hashed and its digest
    /// compared with every configured digest in constant time, without stopping at a match,
    /// so the time taken does not depend on which key matched or how much of it.
    pub fn verify(&self, token: &str) -> bool {
        let presented = KeyDigest::of(token);
        let mut matched = Choice::from(0);
        for digest in &self.digests {
            matched |= digest.ct_eq(&presented);
        }
        bool::from(matched)
    }
}

impl std::fmt::Debug for ClientKeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKeySet")
            .field("keys", &self.digests.len())
            .finish()
    }
}

/// Parses a keys file: one key per line. Blank lines and lines starting with `#` are
/// skipped, and a key may be followed by whitespace and a `#` comment.
pub fn parse_keys_file(path: &Path, text: &str) -> Result<Vec<Secret>, ClientKeyError> {
    let mut keys = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        let rest = rest.trim_start();
        let comment_ok = rest.is_empty() || rest.starts_with('#');
        if !comment_ok || validate_client_key(key).is_err() {
            return Err(ClientKeyError::InvalidEntry {
                path: path.to_path_buf(),
                line: index + 1,
            });
        }
        keys.push(Secret::new(key));
    }
    if keys.is_empty() {
        return Err(ClientKeyError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/etc/tollgate/client-keys";

    fn parse(text: &str) -> Result<Vec<String>, ClientKeyError> {
        parse_keys_file(Path::new(PATH), text)
            .map(|keys| keys.iter().map(|key| key.expose().to_owned()).collect())
    }

    #[test]
    fn keys_file_skips_comments_and_blanks() {
        let text = "# billing service\n\nkey-one-0123456789abcdef\n  key-two-0123456789abcdef   # batch jobs\n\t\n";
        assert_eq!(
            parse(text).unwrap(),
            ["key-one-0123456789abcdef", "key-two-0123456789abcdef"]
        );
    }

    #[test]
    fn keys_file_rejects_bad_lines_by_number() {
        let cases = [
            ("key-one-0123456789abcdef\nshort\n", 2),
            ("key-one-0123456789abcdef extra words\n", 1),
            ("# c\n\ntg-0123456789abcdef-0123\n", 3),
            ("key,one-0123456789abcdef\n", 1),
        ];
        for (text, line) in cases {
            let error = parse(text).unwrap_err();
            assert!(
                matches!(error, ClientKeyError::InvalidEntry { line: l, .. } if l == line),
                "{text:?}: {error}"
            );
            let message = error.to_string();
            assert!(!message.contains("0123456789abcdef"), "{message}");
            assert!(message.contains(PATH), "{message}");
        }
    }

    #[test]
    fn keys_file_without_keys_is_rejected() {
        for text in ["", "# only a comment\n", "\n\n"] {
            assert!(
                matches!(parse(text), Err(ClientKeyError::Empty { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn key_rule_cases() {
        let long = "k".repeat(MAX_KEY_CHARS + 1);
        let cases = [
            ("0123456789abcdef", true),
            ("0123456789abcde", false),
            ("tg-0123456789abcdef", false),
            ("with space 0123456789", false),
            ("with,comma,0123456789", false),
            ("caf\u{e9}-0123456789abcdef", false),
            (long.as_str(), false),
        ];
        for (text, valid) in cases {
            assert_eq!(validate_client_key(text).is_ok(), valid, "{text}");
        }
    }

    #[test]
    fn verify_accepts_only_configured_keys() {
        let set = ClientKeySet::from_keys(&[
            Secret::new("client-key-alpha-0001"),
            Secret::new("client-key-bravo-0002"),
        ]);
        assert!(set.verify("client-key-alpha-0001"));
        assert!(set.verify("client-key-bravo-0002"));
        for wrong in [
            "client-key-alpha-000",
            "client-key-alpha-00011",
            "client-key-alpha-0002",
            "",
            "CLIENT-KEY-ALPHA-0001",
        ] {
            assert!(!set.verify(wrong), "{wrong}");
        }
        assert!(!ClientKeySet::from_keys(&[]).verify("client-key-alpha-0001"));
    }

    #[test]
    fn debug_shows_only_the_count() {
        let set = ClientKeySet::from_keys(&[Secret::new("client-key-alpha-0001")]);
        assert_eq!(format!("{set:?}"), "ClientKeySet { keys: 1 }");
    }
}
