//! Secrets that cannot leak through `Debug`, `Display` or logs.

use std::fmt;

/// A secret string such as an API key. Formatting prints a mask; the value is only
/// reachable through [`Secret::expose`], at the place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_masks_the_value() {
        let secret = Secret::new("sk-live-123");
        assert!(!format!("{secret:?}").contains("sk-live"));
        assert!(!format!("{secret}").contains("sk-live"));
        assert_eq!(secret.expose(), "sk-live-123");
    }
}
