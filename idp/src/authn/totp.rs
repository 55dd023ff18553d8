//! Authenticator-app codes (RFC 6238): 6 digits, 30-second steps, one step of clock skew
//! either way, SHA-1 (what every authenticator app supports). A code is accepted once: the
//! store remembers the last accepted step (`CredentialStore::use_totp_step`).

use chrono::{DateTime, Utc};
use ring::rand::{SecureRandom, SystemRandom};
use totp_rs::{Algorithm, Secret, Totp};

/// Digits of a code.
pub const DIGITS: usize = 6;
/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Steps accepted before and after the current one.
pub const SKEW: u16 = 1;
/// Secret length: 160 bits, as RFC 4226 recommends.
pub const SECRET_LEN: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TotpError {
    #[error("random number generator failed")]
    Random,
    #[error("totp: {0}")]
    Totp(String),
}

/// A fresh random secret.
pub fn new_secret() -> Result<keys::SecretBytes, TotpError> {
    let mut b = vec![0u8; SECRET_LEN];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| TotpError::Random)?;
    Ok(keys::SecretBytes::new(b))
}

fn totp(secret: &[u8], issuer: &str, account: &str) -> Result<Totp, TotpError> {
    totp_rs::Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS as u8)
        .with_skew(SKEW)
        .with_step_duration(STEP_SECS)
        .with_secret(Secret::new(secret.to_vec().into_boxed_slice()))
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .map_err(|e| TotpError::Totp(e.to_string()))
}

/// The secret in base32, as typed into an app by hand.
pub fn base32(secret: &[u8]) -> String {
    Secret::new(secret.to_vec().into_boxed_slice()).to_base32()
}

/// The `otpauth://totp/...` URI an app reads from a QR code.
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> Result<String, TotpError> {
    totp(secret, issuer, account)?
        .to_url()
        .map_err(|e| TotpError::Totp(e.to_string()))
}

/// Whether `code` is valid at `now` (within ±[`SKEW`] steps): the step it belongs to.
/// Anything but exactly 6 digits (spaces allowed) is not a code.
pub fn check(secret: &[u8], code: &str, now: DateTime<Utc>) -> Option<i64> {
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let t = totp(secret, "p", "p").ok()?;
    let secs = u64::try_from(now.timestamp()).ok()?;
    t.check(&code, secs)
        .and_then(|step| i64::try_from(step).ok())
}

/// The code for `now` (tests and the demo only need it; sign-in only checks).
pub fn code_at(secret: &[u8], now: DateTime<Utc>) -> Option<String> {
    let t = totp(secret, "p", "p").ok()?;
    Some(t.generate(u64::try_from(now.timestamp()).ok()?).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// RFC 6238 Appendix B, SHA-1 rows (8-digit codes; the 6-digit code is their last 6).
    #[test]
    fn rfc6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, code8) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            let now = Utc.timestamp_opt(t, 0).unwrap();
            assert_eq!(code_at(secret, now).unwrap(), code8[2..], "t={t}");
            assert_eq!(check(secret, &code8[2..], now), Some(t / 30), "t={t}");
        }
    }

    #[test]
    fn skew_is_one_step_and_junk_is_refused() {
        let secret = b"12345678901234567890";
        let now = Utc.timestamp_opt(1_111_111_111, 0).unwrap();
        let code = code_at(secret, now).unwrap();
        assert!(check(secret, &code, now + chrono::Duration::seconds(30)).is_some());
        assert!(check(secret, &code, now - chrono::Duration::seconds(30)).is_some());
        assert!(check(secret, &code, now + chrono::Duration::seconds(90)).is_none());
        let spaced = format!("{} {}", &code[..3], &code[3..]);
        assert!(check(secret, &spaced, now).is_some());
        for junk in ["", "12345", "1234567", "abcdef", "12 34 5x", "١٢٣٤٥٦"] {
            assert_eq!(check(secret, junk, now), None, "{junk:?}");
        }
    }

    #[test]
    fn uri_and_base32() {
        let s = new_secret().unwrap();
        assert_eq!(s.len(), SECRET_LEN);
        let b32 = base32(s.expose());
        let uri = otpauth_uri(s.expose(), "Propusk", "ivan@example.ru").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/Propusk:ivan%40example.ru?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={b32}")), "{uri}");
    }
}
