//! The `X-Signature-256` header: lets the n8n workflow check that a record comes from a worker
//! holding N8N_WEBHOOK_SECRET and was not altered, the way GitHub signs its webhooks.

use std::fmt::Write;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Secret;

pub(crate) const HEADER: &str = "x-signature-256";

/// `sha256=` and the lowercase hex HMAC-SHA256 of the exact body bytes.
pub(crate) fn sign(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut header = String::with_capacity(7 + 2 * digest.len());
    header.push_str("sha256=");
    for byte in digest {
        write!(header, "{byte:02x}").expect("writing to a String cannot fail");
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_4231_test_vector() {
        let header = sign(&Secret::new("Jefe"), b"what do ya want for nothing?");
        assert_eq!(header, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
