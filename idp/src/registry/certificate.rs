//! Identity confirmation by a qualified electronic-signature certificate (issue 5): the
//! citizen signs a one-time challenge with the key of their qualified certificate (detached
//! CMS, as CryptoPro and `openssl cms -sign` produce it); the signature must verify, the
//! certificate must chain to a root the operator trusts (`identity.qualified_ca_file`) and be
//! valid now, and its SNILS and surname must be the ones already verified for the person.
//! Then the account becomes confirmed, recorded as `certificate` with the issuer and serial.
//!
//! GOST R 34.10-2012 certificates need an OpenSSL with a GOST provider; this code does not
//! care which algorithm signed, so such a build verifies them unchanged.

use std::path::Path;

use chrono::{DateTime, Utc};
use openssl::asn1::Asn1Object;
use openssl::nid::Nid;
use openssl::pkcs7::{Pkcs7, Pkcs7Flags};
use openssl::stack::Stack;
use openssl::x509::store::{X509Store, X509StoreBuilder};
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509NameRef, X509StoreContext, X509};

/// OIDs of the Russian qualified-certificate profile (Federal Law 63-FZ, FSB order 795).
const OID_SNILS: &str = "1.2.643.100.3";
const OID_INN: &str = "1.2.643.3.131.1.1";

/// `X509_V_ERR_CERT_NOT_YET_VALID` and `X509_V_ERR_CERT_HAS_EXPIRED` (x509_vfy.h).
const ERR_NOT_YET_VALID: i32 = 9;
const ERR_EXPIRED: i32 = 10;

/// Why a presented signature does not confirm the person. `code()` goes to the audit log;
/// the page explains each in the user's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertRefusal {
    /// Not a CMS signature (neither PEM nor base64 DER of one).
    Malformed,
    /// More or fewer than one signer.
    SignerCount,
    /// The signature does not match the challenge (another text, or altered).
    BadSignature,
    /// The certificate does not chain to a trusted qualified CA.
    Untrusted,
    /// The certificate is expired or not yet valid.
    Expired,
    /// The certificate has no SNILS.
    NoSnils,
    /// SNILS differs from the person's verified SNILS.
    SnilsMismatch,
    /// Surname differs from the person's.
    NameMismatch,
}

impl CertRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::SignerCount => "signer_count",
            Self::BadSignature => "bad_signature",
            Self::Untrusted => "untrusted",
            Self::Expired => "expired",
            Self::NoSnils => "no_snils",
            Self::SnilsMismatch => "snils_mismatch",
            Self::NameMismatch => "name_mismatch",
        }
    }
}

/// What the certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertHolder {
    /// 11 digits.
    pub snils: Option<String>,
    pub inn: Option<String>,
    pub surname: Option<String>,
    /// Given name and patronymic, as the qualified profile writes them (`GN`).
    pub given_names: Option<String>,
    /// The issuing CA's common name (or its whole name when it has none).
    pub issuer: String,
    /// Serial number, hex.
    pub serial: String,
}

/// The roots an operator trusts for qualified certificates.
pub struct QualifiedRoots {
    roots: Vec<X509>,
}

impl QualifiedRoots {
    /// Reads a PEM bundle of CA certificates; an empty or unreadable bundle is an error.
    pub fn from_pem_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let roots = X509::stack_from_pem(pem).map_err(|_| "not a PEM certificate bundle")?;
        if roots.is_empty() {
            return Err("no certificate in the bundle".into());
        }
        Ok(Self { roots })
    }

    fn store(&self, now: DateTime<Utc>) -> Result<X509Store, CertRefusal> {
        let mut b = X509StoreBuilder::new().map_err(|_| CertRefusal::Untrusted)?;
        for r in &self.roots {
            b.add_cert(r.clone()).map_err(|_| CertRefusal::Untrusted)?;
        }
        let mut param = X509VerifyParam::new().map_err(|_| CertRefusal::Untrusted)?;
        // Validity is judged at the provider's clock, not the host's.
        param.set_time(now.timestamp() as _);
        b.set_param(&param).map_err(|_| CertRefusal::Untrusted)?;
        Ok(b.build())
    }

    /// Checks a detached CMS `signature` over `message`: one signer, the signature right,
    /// the signer's certificate chaining to a trusted root and valid at `now`.
    pub fn verify(
        &self,
        message: &[u8],
        signature: &str,
        now: DateTime<Utc>,
    ) -> Result<CertHolder, CertRefusal> {
        let der = decode_signature(signature).ok_or(CertRefusal::Malformed)?;
        let p7 = Pkcs7::from_der(&der).map_err(|_| CertRefusal::Malformed)?;
        let none = Stack::<X509>::new().map_err(|_| CertRefusal::Malformed)?;
        let signers = p7
            .signers(&none, Pkcs7Flags::empty())
            .map_err(|_| CertRefusal::SignerCount)?;
        if signers.len() != 1 {
            return Err(CertRefusal::SignerCount);
        }
        let Some(cert) = signers.iter().next().map(|c| c.to_owned()) else {
            return Err(CertRefusal::SignerCount);
        };
        // The signature itself first (the chain is judged below, with a precise reason).
        let empty_store = X509StoreBuilder::new()
            .map_err(|_| CertRefusal::Malformed)?
            .build();
        p7.verify(
            &none,
            &empty_store,
            Some(message),
            None,
            Pkcs7Flags::NOVERIFY | Pkcs7Flags::BINARY,
        )
        .map_err(|_| CertRefusal::BadSignature)?;
        // Intermediate certificates carried in the message may complete the chain.
        let mut chain = Stack::<X509>::new().map_err(|_| CertRefusal::Malformed)?;
        for c in carried_certificates(&p7) {
            chain.push(c).map_err(|_| CertRefusal::Malformed)?;
        }
        let store = self.store(now)?;
        let mut ctx = X509StoreContext::new().map_err(|_| CertRefusal::Untrusted)?;
        let verdict = ctx
            .init(&store, &cert, &chain, |c| {
                let ok = c.verify_cert()?;
                Ok((ok, c.error()))
            })
            .map_err(|_| CertRefusal::Untrusted)?;
        match verdict {
            (true, _) => {}
            (false, e) if [ERR_NOT_YET_VALID, ERR_EXPIRED].contains(&e.as_raw()) => {
                return Err(CertRefusal::Expired)
            }
            (false, _) => return Err(CertRefusal::Untrusted),
        }
        Ok(holder(&cert))
    }
}

/// The certificates inside a SignedData (none for other content types).
fn carried_certificates(p7: &Pkcs7) -> Vec<X509> {
    p7.signed()
        .and_then(|s| s.certificates())
        .map(|certs| certs.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default()
}

/// PEM (`CMS` or `PKCS7` armour) or bare base64 (standard or URL-safe) of the DER.
fn decode_signature(s: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    let body: String = s
        .lines()
        .filter(|l| !l.trim_start().starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    if body.is_empty() || body.len() > 64 * 1024 {
        return None;
    }
    base64::engine::general_purpose::STANDARD
        .decode(&body)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&body))
        .ok()
}

fn entry_text(name: &X509NameRef, oid: &str) -> Option<String> {
    let wanted = Asn1Object::from_str(oid).ok()?;
    let nid = wanted.nid();
    name.entries()
        .find(|e| {
            let o = e.object();
            (nid != Nid::UNDEF && o.nid() == nid) || o.to_string() == oid
        })
        .and_then(|e| e.data().to_string().ok())
}

fn entry_by_nid(name: &X509NameRef, nid: Nid) -> Option<String> {
    name.entries_by_nid(nid)
        .next()
        .and_then(|e| e.data().to_string().ok())
}

fn holder(cert: &X509) -> CertHolder {
    let subject = cert.subject_name();
    let issuer = entry_by_nid(cert.issuer_name(), Nid::COMMONNAME).unwrap_or_else(|| {
        cert.issuer_name()
            .entries()
            .filter_map(|e| e.data().to_string().ok())
            .collect::<Vec<_>>()
            .join(", ")
    });
    let serial = cert
        .serial_number()
        .to_bn()
        .ok()
        .and_then(|b| b.to_hex_str().ok().map(|h| h.to_string()))
        .unwrap_or_default();
    let digits = |s: String| -> Option<String> {
        let d: String = s.chars().filter(|c| c.is_ascii_digit()).collect();
        (!d.is_empty()).then_some(d)
    };
    CertHolder {
        snils: entry_text(subject, OID_SNILS).and_then(digits),
        inn: entry_text(subject, OID_INN).and_then(digits),
        surname: entry_by_nid(subject, Nid::SURNAME),
        given_names: entry_by_nid(subject, Nid::GIVENNAME),
        issuer,
        serial,
    }
}

/// Names compare without case, surrounding space and the ё/е distinction.
pub fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.trim()
            .to_lowercase()
            .replace('ё', "е")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    !a.trim().is_empty() && norm(a) == norm(b)
}

/// Whether the certificate's holder is this person: SNILS equal to the verified one, and the
/// surname the same.
pub fn check_holder(
    holder: &CertHolder,
    person_snils: &str,
    family_name: Option<&str>,
) -> Result<(), CertRefusal> {
    let snils = holder.snils.as_deref().ok_or(CertRefusal::NoSnils)?;
    if !keys::constant_time_eq(snils.as_bytes(), person_snils.as_bytes()) {
        return Err(CertRefusal::SnilsMismatch);
    }
    match (holder.surname.as_deref(), family_name) {
        (Some(a), Some(b)) if same_name(a, b) => Ok(()),
        _ => Err(CertRefusal::NameMismatch),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn holder_with(snils: Option<&str>, surname: Option<&str>) -> CertHolder {
        CertHolder {
            snils: snils.map(str::to_string),
            inn: None,
            surname: surname.map(str::to_string),
            given_names: None,
            issuer: "CA".into(),
            serial: "01".into(),
        }
    }

    #[test]
    fn holder_must_have_the_same_snils_and_surname() {
        let h = holder_with(Some("11223344595"), Some("Семёнова"));
        assert_eq!(check_holder(&h, "11223344595", Some(" семенова ")), Ok(()));
        assert_eq!(
            check_holder(&h, "11223344596", Some("Семёнова")),
            Err(CertRefusal::SnilsMismatch)
        );
        assert_eq!(
            check_holder(&h, "11223344595", Some("Иванова")),
            Err(CertRefusal::NameMismatch)
        );
        assert_eq!(
            check_holder(&h, "11223344595", None),
            Err(CertRefusal::NameMismatch)
        );
        let no = holder_with(None, Some("Семёнова"));
        assert_eq!(
            check_holder(&no, "11223344595", Some("Семёнова")),
            Err(CertRefusal::NoSnils)
        );
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let roots = QualifiedRoots { roots: Vec::new() };
        let now = Utc::now();
        for s in [
            "",
            "-----BEGIN CMS-----\n-----END CMS-----",
            "!!!",
            "AAAA",
            "MIIB",
        ] {
            assert_eq!(
                roots.verify(b"x", s, now).err(),
                Some(CertRefusal::Malformed),
                "{s:?}"
            );
        }
    }

    #[test]
    fn an_empty_bundle_is_refused() {
        assert!(QualifiedRoots::from_pem(b"").is_err());
        assert!(QualifiedRoots::from_pem(b"not pem").is_err());
    }
}
