//! A string that must never be printed.

use std::fmt;

/// An API key, token or password.
///
/// It has no `Display` and no `Serialize`, and its `Debug` prints a placeholder, so a secret can
/// reach a log line, an error message or an HTTP response only through an explicit
/// [`Secret::expose`] call, which is easy to find in review.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key or token read from settings.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the few places that must send it (signing, auth headers).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares without an early exit, so response timing does not reveal how much of a
    /// guessed admin token was right.
    pub fn matches(&self, candidate: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), candidate.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, byte) in b.iter().enumerate() {
            diff |= usize::from(a.get(i).copied().unwrap_or(0) ^ byte);
        }
        diff == 0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        let secret = Secret::new("sk-live-123");
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert!(!format!("{:?}", Some(&secret)).contains("sk-live"));
    }

    #[test]
    fn matches_only_the_exact_value() {
        let secret = Secret::new("admin-token");
        assert!(secret.matches("admin-token"));
        assert!(!secret.matches("admin-toke"));
        assert!(!secret.matches("admin-token2"));
        assert!(!secret.matches(""));
        assert!(!Secret::new("").matches("x"));
    }
}
