//! Small primitives: randomness, hashing, base64url, constant-time comparison.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq as _;

use crate::{Alg, KeyError};

/// Base64url without padding (RFC 4648 §5, as JOSE uses it).
pub(crate) fn b64e(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Strict base64url without padding; `None` on any other input (padding, `+`, `/`, spaces).
pub(crate) fn b64d(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// `n` random bytes from the operating system (`ring::rand::SystemRandom`).
pub(crate) fn random_bytes(rng: &SystemRandom, n: usize) -> Result<Vec<u8>, KeyError> {
    let mut buf = vec![0u8; n];
    rng.fill(&mut buf).map_err(|_| KeyError::Random)?;
    Ok(buf)
}

/// A random token of `nbytes` bytes from the OS RNG, base64url without padding.
///
/// Use 32 bytes (256 bits) for refresh tokens, authorization codes, session ids and the like.
pub fn random_token(nbytes: usize) -> Result<String, KeyError> {
    let bytes = random_bytes(&SystemRandom::new(), nbytes)?;
    Ok(b64e(&bytes))
}

/// SHA-256 of `data`, base64url without padding (43 characters).
///
/// Suitable for storing hashes of high-entropy bearer secrets (codes, refresh tokens) and for
/// PKCE S256 (`sha256_b64url(verifier.as_bytes()) == challenge`).
pub fn sha256_b64url(data: &[u8]) -> String {
    b64e(digest::digest(&digest::SHA256, data).as_ref())
}

/// Compares two byte strings in time independent of their contents (the length is not
/// hidden: different lengths return `false` at once).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// The OIDC `at_hash` / `c_hash` value of `token` for an ID token signed with `alg`
/// (OIDC Core §3.1.3.6, §3.3.2.11): the left half of the hash of the ASCII token, base64url.
///
/// ES256 and RS256 use SHA-256 (16 bytes kept); EdDSA with Ed25519 uses SHA-512 (32 bytes
/// kept), as OIDC Core errata set 2 specifies.
pub fn token_hash(alg: Alg, token: &str) -> String {
    let h = match alg {
        Alg::ES256 | Alg::RS256 => digest::digest(&digest::SHA256, token.as_bytes()),
        Alg::EdDSA => digest::digest(&digest::SHA512, token.as_bytes()),
    };
    let full = h.as_ref();
    b64e(&full[..full.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_token_length_and_alphabet() {
        let t = random_token(32).unwrap();
        assert_eq!(t.len(), 43);
        assert!(t
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_ne!(t, random_token(32).unwrap());
    }

    #[test]
    fn sha256_known_answer_pkce() {
        // RFC 7636 Appendix B.
        assert_eq!(
            sha256_b64url(b"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn token_hash_lengths() {
        // 16 bytes -> 22 chars, 32 bytes -> 43 chars.
        assert_eq!(token_hash(Alg::ES256, "x").len(), 22);
        assert_eq!(token_hash(Alg::RS256, "x").len(), 22);
        assert_eq!(token_hash(Alg::EdDSA, "x").len(), 43);
    }

    #[test]
    fn b64d_is_strict() {
        assert_eq!(b64d("AQAB"), Some(vec![1, 0, 1]));
        assert_eq!(b64d("AQ=="), None);
        assert_eq!(b64d("a+b/"), None);
    }
}
