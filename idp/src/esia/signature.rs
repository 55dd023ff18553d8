//! Client authentication of the ESIA dialect: the client signs a concatenation of request
//! parameters with the key of the certificate it registered; `client_secret` carries the
//! signature. Legacy paths use a detached CMS (PKCS#7) signature, the current ones a raw
//! signature plus `client_certificate_hash`.
//!
//! RSA (PKCS#1 v1.5, SHA-256) and ECDSA P-256 (SHA-256) are verified here; GOST R 34.10-2012
//! is a later [`ParamVerifier`] implementation.

use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use openssl::bn::BigNum;
use openssl::ecdsa::EcdsaSig;
use openssl::hash::{hash, MessageDigest};
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::pkey::{Id, PKey, Public};
use openssl::sign::Verifier;
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::X509;

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// Not base64, not a CMS structure, not a signature of the key's type: ESIA-007053.
    #[error("client_secret is malformed: {0}")]
    Malformed(&'static str),
    /// Well-formed, but not a valid signature of these parameters by the registered
    /// certificate: ESIA-007055.
    #[error("signature does not verify: {0}")]
    Invalid(&'static str),
}

/// Why a certificate cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a PEM X.509 certificate")]
    NotACertificate,
    #[error("unsupported key: RSA (2048 bits or more) or ECDSA P-256 certificates only")]
    UnsupportedKey,
}

/// Verifies parameter signatures with one registered certificate. Implementations per key
/// family (RSA and ECDSA through OpenSSL here; GOST later).
pub trait ParamVerifier {
    /// A detached CMS SignedData (DER) over `message`, signed by the registered certificate
    /// and by no other.
    fn verify_cms(&self, message: &[u8], cms_der: &[u8]) -> Result<(), SigError>;
    /// A raw signature over `message` (RSA PKCS#1 v1.5, or ECDSA as DER or r||s).
    fn verify_raw(&self, message: &[u8], signature: &[u8]) -> Result<(), SigError>;
}

/// The client's registered certificate, parsed.
pub struct RegisteredCertificate {
    cert: X509,
    key: PKey<Public>,
    der: Vec<u8>,
}

impl std::fmt::Debug for RegisteredCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredCertificate")
            .field("hash", &self.hash_hex())
            .finish()
    }
}

impl RegisteredCertificate {
    /// Parses a PEM certificate whose key is RSA (>= 2048 bits) or ECDSA P-256.
    pub fn from_pem(pem: &[u8]) -> Result<Self, CertError> {
        let cert = X509::from_pem(pem).map_err(|_| CertError::NotACertificate)?;
        let key = cert.public_key().map_err(|_| CertError::UnsupportedKey)?;
        let supported = match key.id() {
            Id::RSA => key.bits() >= 2048,
            Id::EC => key
                .ec_key()
                .ok()
                .and_then(|k| k.group().curve_name())
                .is_some_and(|n| n == Nid::X9_62_PRIME256V1),
            _ => false,
        };
        if !supported {
            return Err(CertError::UnsupportedKey);
        }
        let der = cert.to_der().map_err(|_| CertError::NotACertificate)?;
        Ok(Self { cert, key, der })
    }

    /// The `client_certificate_hash` of this certificate: hex SHA-256 of its DER encoding.
    pub fn hash_hex(&self) -> String {
        certificate_hash(&self.der)
    }

    /// The certificate as PEM (normalised).
    pub fn to_pem(&self) -> String {
        self.cert
            .to_pem()
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default()
    }
}

/// Hex SHA-256 of DER bytes (lower case).
pub fn certificate_hash(der: &[u8]) -> String {
    match hash(MessageDigest::sha256(), der) {
        Ok(d) => d.iter().map(|b| format!("{b:02x}")).collect(),
        Err(_) => String::new(),
    }
}

/// Whether a presented `client_certificate_hash` names the registered certificate
/// (hex, case-insensitive; compared in constant time).
pub fn hash_matches(registered_hex: &str, presented: &str) -> bool {
    let presented = presented.trim().to_ascii_lowercase();
    keys::constant_time_eq(presented.as_bytes(), registered_hex.as_bytes())
}

impl ParamVerifier for RegisteredCertificate {
    fn verify_cms(&self, message: &[u8], cms_der: &[u8]) -> Result<(), SigError> {
        let p7 =
            Pkcs7::from_der(cms_der).map_err(|_| SigError::Malformed("not a CMS structure"))?;
        let mut certs =
            Stack::<X509>::new().map_err(|_| SigError::Invalid("verifier unavailable"))?;
        certs
            .push(self.cert.clone())
            .map_err(|_| SigError::Invalid("verifier unavailable"))?;
        let store = X509StoreBuilder::new()
            .map_err(|_| SigError::Invalid("verifier unavailable"))?
            .build();
        // Only the registered certificate may be the signer (NOINTERN ignores certificates
        // carried in the message); no chain to a CA is needed (NOVERIFY): the certificate
        // itself was registered out of band.
        let flags = Pkcs7Flags::NOINTERN | Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY;
        let signers = p7
            .signers(&certs, flags)
            .map_err(|_| SigError::Invalid("not signed by the registered certificate"))?;
        if signers.len() != 1
            || signers
                .iter()
                .any(|s| s.to_der().map(|d| d != self.der).unwrap_or(true))
        {
            return Err(SigError::Invalid(
                "not signed by the registered certificate",
            ));
        }
        p7.verify(&certs, &store, Some(message), None, flags)
            .map_err(|_| SigError::Invalid("CMS signature does not verify"))
    }

    fn verify_raw(&self, message: &[u8], signature: &[u8]) -> Result<(), SigError> {
        let der_sig;
        let sig = match self.key.id() {
            // ECDSA: DER (as `openssl dgst -sign` writes it) or the 64-byte r||s form.
            Id::EC if signature.len() == 64 => {
                let r = BigNum::from_slice(&signature[..32]);
                let s = BigNum::from_slice(&signature[32..]);
                let (Ok(r), Ok(s)) = (r, s) else {
                    return Err(SigError::Malformed("bad ECDSA signature"));
                };
                der_sig = EcdsaSig::from_private_components(r, s)
                    .and_then(|s| s.to_der())
                    .map_err(|_| SigError::Malformed("bad ECDSA signature"))?;
                der_sig.as_slice()
            }
            Id::EC => {
                EcdsaSig::from_der(signature)
                    .map_err(|_| SigError::Malformed("bad ECDSA signature"))?;
                signature
            }
            _ => {
                if signature.len() != self.key.size() {
                    return Err(SigError::Malformed("RSA signature of the wrong length"));
                }
                signature
            }
        };
        let mut v = Verifier::new(MessageDigest::sha256(), &self.key)
            .map_err(|_| SigError::Invalid("verifier unavailable"))?;
        v.update(message)
            .map_err(|_| SigError::Invalid("verifier unavailable"))?;
        match v.verify(sig) {
            Ok(true) => Ok(()),
            _ => Err(SigError::Invalid("signature does not verify")),
        }
    }
}

/// Decodes `client_secret`: base64url as the ESIA libraries send it, with or without
/// padding; standard base64 is accepted too (a `+` that arrived unencoded reads as a space).
pub fn decode_secret(s: &str) -> Result<Vec<u8>, SigError> {
    // No `trim()`: a leading or trailing space is a `+` that arrived unencoded.
    let normal: String = s
        .chars()
        .filter(|c| !matches!(c, '=' | '\n' | '\r' | '\t'))
        .map(|c| match c {
            '+' | ' ' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    if normal.is_empty() || normal.len() > 16 * 1024 {
        return Err(SigError::Malformed("empty or too long"));
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(normal.as_bytes())
        .map_err(|_| SigError::Malformed("not base64url"))
}

/// What is signed on `/aas/oauth2/ac` and `/aas/oauth2/te` (legacy, CMS):
/// scope + timestamp + client_id + state.
pub fn legacy_string(scope: &str, timestamp: &str, client_id: &str, state: &str) -> String {
    [scope, timestamp, client_id, state].concat()
}

/// What is signed on `/aas/oauth2/v2/ac`: client_id + scope + timestamp + state + redirect_uri.
pub fn v2_ac_string(
    client_id: &str,
    scope: &str,
    timestamp: &str,
    state: &str,
    redirect_uri: &str,
) -> String {
    [client_id, scope, timestamp, state, redirect_uri].concat()
}

/// What is signed on `/aas/oauth2/v3/te`:
/// client_id + scope + timestamp + state + redirect_uri + code.
pub fn v3_te_string(
    client_id: &str,
    scope: &str,
    timestamp: &str,
    state: &str,
    redirect_uri: &str,
    code: &str,
) -> String {
    [client_id, scope, timestamp, state, redirect_uri, code].concat()
}

/// The ESIA timestamp format, `2024.01.31 13:05:00 +0000`.
pub const TIMESTAMP_FORMAT: &str = "%Y.%m.%d %H:%M:%S %z";

/// Repairs a timestamp whose `+` was sent unencoded in a query or form (and so read as a
/// space): `2024.01.31 13:05:00  0000` -> `2024.01.31 13:05:00 +0000`. The repaired value
/// is also what the signature covers.
pub fn repair_timestamp(raw: &str) -> String {
    match raw.rsplit_once("  ") {
        Some((head, zone)) if zone.len() == 4 && zone.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{head} +{zone}")
        }
        _ => raw.to_string(),
    }
}

/// Parses a timestamp in [`TIMESTAMP_FORMAT`].
pub fn parse_timestamp(raw: &str) -> Option<DateTime<Utc>> {
    if raw.len() > 40 {
        return None;
    }
    DateTime::parse_from_str(raw, TIMESTAMP_FORMAT)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Whether the request time is within `skew_secs` of `now` (either direction).
pub fn timestamp_in_window(raw: &str, now: DateTime<Utc>, skew_secs: u64) -> bool {
    let skew = Duration::seconds(skew_secs.min(86_400) as i64);
    parse_timestamp(raw).is_some_and(|t| t <= now + skew && t >= now - skew)
}

/// Formats `t` as an ESIA timestamp (for tests and clients written in Rust).
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y.%m.%d %H:%M:%S +0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use openssl::asn1::Asn1Time;
    use openssl::ec::{EcGroup, EcKey};
    use openssl::hash::MessageDigest;
    use openssl::pkcs7::Pkcs7;
    use openssl::pkey::Private;
    use openssl::rsa::Rsa;
    use openssl::sign::Signer;
    use openssl::x509::{X509Builder, X509NameBuilder};

    fn self_signed(key: &PKey<Private>, cn: &str) -> X509 {
        let mut name = X509NameBuilder::new().unwrap();
        name.append_entry_by_text("CN", cn).unwrap();
        let name = name.build();
        let mut b = X509Builder::new().unwrap();
        b.set_version(2).unwrap();
        let serial = BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
        b.set_serial_number(&serial).unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
            .unwrap();
        b.sign(key, MessageDigest::sha256()).unwrap();
        b.build()
    }

    fn rsa_key() -> PKey<Private> {
        PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
    }

    fn ec_key() -> PKey<Private> {
        let g = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
        PKey::from_ec_key(EcKey::generate(&g).unwrap()).unwrap()
    }

    fn raw_sign(key: &PKey<Private>, msg: &[u8]) -> Vec<u8> {
        let mut s = Signer::new(MessageDigest::sha256(), key).unwrap();
        s.update(msg).unwrap();
        s.sign_to_vec().unwrap()
    }

    /// As `openssl smime -sign -binary -outform DER [-noattr]` without the content.
    fn cms_sign(key: &PKey<Private>, cert: &X509, msg: &[u8], noattr: bool) -> Vec<u8> {
        let certs = Stack::new().unwrap();
        let mut flags = Pkcs7Flags::DETACHED | Pkcs7Flags::BINARY;
        if noattr {
            flags |= Pkcs7Flags::NOATTR;
        }
        Pkcs7::sign(cert, key, &certs, msg, flags)
            .unwrap()
            .to_der()
            .unwrap()
    }

    fn registered(cert: &X509) -> RegisteredCertificate {
        RegisteredCertificate::from_pem(&cert.to_pem().unwrap()).unwrap()
    }

    #[test]
    fn signed_strings_follow_the_profile() {
        assert_eq!(
            legacy_string(
                "openid fullname",
                "2024.01.31 13:05:00 +0000",
                "PORTAL",
                "s"
            ),
            "openid fullname2024.01.31 13:05:00 +0000PORTALs"
        );
        assert_eq!(
            v2_ac_string("C", "openid", "T", "S", "https://r/cb"),
            "CopenidTShttps://r/cb"
        );
        assert_eq!(
            v3_te_string("C", "openid", "T", "S", "https://r/cb", "CODE"),
            "CopenidTShttps://r/cbCODE"
        );
    }

    #[test]
    fn timestamps_parse_and_window() {
        let now = Utc.with_ymd_and_hms(2024, 1, 31, 13, 5, 0).unwrap();
        assert_eq!(parse_timestamp("2024.01.31 13:05:00 +0000"), Some(now));
        // Another zone is converted to UTC.
        assert_eq!(parse_timestamp("2024.01.31 16:05:00 +0300"), Some(now));
        assert_eq!(parse_timestamp("2024-01-31 13:05:00 +0000"), None);
        assert_eq!(parse_timestamp("2024.01.31 13:05:00"), None);
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(format_timestamp(now), "2024.01.31 13:05:00 +0000");
        assert!(timestamp_in_window("2024.01.31 13:09:59 +0000", now, 300));
        assert!(timestamp_in_window("2024.01.31 13:00:00 +0000", now, 300));
        assert!(!timestamp_in_window("2024.01.31 13:10:01 +0000", now, 300));
        assert!(!timestamp_in_window("2024.01.31 12:59:59 +0000", now, 300));
        assert!(!timestamp_in_window("garbage", now, 300));
        assert_eq!(
            repair_timestamp("2024.01.31 13:05:00  0000"),
            "2024.01.31 13:05:00 +0000"
        );
        assert_eq!(
            repair_timestamp("2024.01.31 13:05:00 +0000"),
            "2024.01.31 13:05:00 +0000"
        );
    }

    #[test]
    fn secrets_decode_in_every_base64_spelling() {
        let bytes = vec![0xfbu8, 0xff, 0xbe, 0x01];
        let url = base64::engine::general_purpose::URL_SAFE.encode(&bytes);
        let std = base64::engine::general_purpose::STANDARD.encode(&bytes);
        assert_eq!(decode_secret(&url).unwrap(), bytes);
        assert_eq!(decode_secret(url.trim_end_matches('=')).unwrap(), bytes);
        assert_eq!(decode_secret(&std).unwrap(), bytes);
        assert_eq!(decode_secret(&std.replace('+', " ")).unwrap(), bytes);
        assert!(matches!(decode_secret("!!"), Err(SigError::Malformed(_))));
        assert!(matches!(decode_secret(""), Err(SigError::Malformed(_))));
    }

    #[test]
    fn rsa_raw_and_cms() {
        let key = rsa_key();
        let cert = self_signed(&key, "portal");
        let reg = registered(&cert);
        let msg = b"openid2024.01.31 13:05:00 +0000PORTALstate";
        reg.verify_raw(msg, &raw_sign(&key, msg)).unwrap();
        assert_eq!(
            reg.verify_raw(b"other", &raw_sign(&key, msg)),
            Err(SigError::Invalid("signature does not verify"))
        );
        assert!(matches!(
            reg.verify_raw(msg, b"short"),
            Err(SigError::Malformed(_))
        ));
        for noattr in [false, true] {
            let cms = cms_sign(&key, &cert, msg, noattr);
            reg.verify_cms(msg, &cms).unwrap();
            assert!(matches!(
                reg.verify_cms(b"tampered", &cms),
                Err(SigError::Invalid(_))
            ));
        }
        assert!(matches!(
            reg.verify_cms(msg, b"\x30\x03\x02\x01\x01"),
            Err(SigError::Malformed(_))
        ));
        // The hash is the hex SHA-256 of the DER certificate.
        let der = cert.to_der().unwrap();
        assert_eq!(reg.hash_hex(), certificate_hash(&der));
        assert_eq!(reg.hash_hex().len(), 64);
        assert!(hash_matches(
            &reg.hash_hex(),
            &reg.hash_hex().to_uppercase()
        ));
        assert!(!hash_matches(&reg.hash_hex(), "00"));
    }

    #[test]
    fn ecdsa_raw_in_der_and_fixed_form_and_cms() {
        let key = ec_key();
        let cert = self_signed(&key, "portal-ec");
        let reg = registered(&cert);
        let msg = b"Cscope2024.01.31 13:05:00 +0000Shttps://r/cb";
        let der = raw_sign(&key, msg);
        reg.verify_raw(msg, &der).unwrap();
        let sig = EcdsaSig::from_der(&der).unwrap();
        let mut fixed = vec![0u8; 64];
        let r = sig.r().to_vec();
        let s = sig.s().to_vec();
        fixed[32 - r.len()..32].copy_from_slice(&r);
        fixed[64 - s.len()..].copy_from_slice(&s);
        reg.verify_raw(msg, &fixed).unwrap();
        assert!(reg.verify_raw(b"other", &fixed).is_err());
        let cms = cms_sign(&key, &cert, msg, false);
        reg.verify_cms(msg, &cms).unwrap();
    }

    #[test]
    fn another_certificate_is_refused() {
        let key = rsa_key();
        let cert = self_signed(&key, "portal");
        let other_key = rsa_key();
        let other = self_signed(&other_key, "intruder");
        let reg = registered(&cert);
        let msg = b"payload";
        // Signed by another key: raw and CMS both fail, even with its certificate inside.
        assert!(reg.verify_raw(msg, &raw_sign(&other_key, msg)).is_err());
        let cms = cms_sign(&other_key, &other, msg, false);
        assert!(matches!(
            reg.verify_cms(msg, &cms),
            Err(SigError::Invalid(_))
        ));
        // The same key in a different certificate is not the registered certificate either.
        let twin = self_signed(&key, "twin");
        let cms = cms_sign(&key, &twin, msg, false);
        assert!(matches!(
            reg.verify_cms(msg, &cms),
            Err(SigError::Invalid(_))
        ));
    }

    /// Cost of one verification (run with `--ignored --nocapture`).
    #[test]
    #[ignore]
    fn verification_cost() {
        let msg = b"openid fullname2024.01.31 13:05:00 +0000PORTALstate";
        for (name, key) in [("RSA-2048", rsa_key()), ("P-256", ec_key())] {
            let cert = self_signed(&key, "portal");
            let reg = registered(&cert);
            let raw = raw_sign(&key, msg);
            let cms = cms_sign(&key, &cert, msg, false);
            let n = 500;
            let t = std::time::Instant::now();
            for _ in 0..n {
                reg.verify_raw(msg, &raw).unwrap();
            }
            let raw_us = t.elapsed().as_micros() / n;
            let t = std::time::Instant::now();
            for _ in 0..n {
                RegisteredCertificate::from_pem(&cert.to_pem().unwrap())
                    .unwrap()
                    .verify_cms(msg, &cms)
                    .unwrap();
            }
            let cms_us = t.elapsed().as_micros() / n;
            let t = std::time::Instant::now();
            for _ in 0..n {
                reg.verify_cms(msg, &cms).unwrap();
            }
            let cms_only = t.elapsed().as_micros() / n;
            println!(
                "{name}: raw {raw_us} us, CMS {cms_only} us, parse certificate + CMS {cms_us} us"
            );
        }
    }

    #[test]
    fn unsupported_certificates_are_refused() {
        assert_eq!(
            RegisteredCertificate::from_pem(b"nope").unwrap_err(),
            CertError::NotACertificate
        );
        let small = PKey::from_rsa(Rsa::generate(1024).unwrap()).unwrap();
        let cert = self_signed(&small, "weak");
        assert_eq!(
            RegisteredCertificate::from_pem(&cert.to_pem().unwrap()).unwrap_err(),
            CertError::UnsupportedKey
        );
    }
}
