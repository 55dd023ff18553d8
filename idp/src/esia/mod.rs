//! The ESIA dialect: the paths existing ESIA client libraries call, as adapters over the
//! provider's own machinery (login transaction, sign-in pages, consent, codes in the
//! ephemeral store, refresh rotation). Each adapter verifies the parameter signature,
//! translates the parameters and shapes the response. See `docs/design/esia.md`.

pub mod authorize;
pub mod errors;
pub mod prns;
pub mod registration;
pub mod signature;
pub mod token;
pub mod tokens;

use chrono::{DateTime, Utc};

use crate::domain::EsiaCertificate;
use crate::protocol::params::Params;
use crate::protocol::OAuthError;
use errors::EsiaCode;
use signature::{ParamVerifier, RegisteredCertificate, SigError};

/// Which generation of the protocol a path speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `/aas/oauth2/ac`, `/aas/oauth2/te`: detached CMS over scope+timestamp+client_id+state.
    Legacy,
    /// `/aas/oauth2/v2/ac`, `/aas/oauth2/v3/te`: raw signature + `client_certificate_hash`.
    Current,
}

impl Flavor {
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Legacy => "legacy",
            Flavor::Current => "current",
        }
    }
}

/// The single value of a parameter; a repeated one is ESIA-007017.
pub fn param<'a>(p: &'a Params, name: &str) -> Result<Option<&'a str>, OAuthError> {
    p.get(name)
        .map_err(|e| EsiaCode::BadParameter.error(&e.describe()))
}

/// A mandatory parameter; a missing one is ESIA-007014.
pub fn required<'a>(p: &'a Params, name: &str) -> Result<&'a str, OAuthError> {
    param(p, name)?.ok_or_else(|| EsiaCode::missing(name))
}

/// What a signed request presents to authenticate its client.
pub struct SignedRequest<'a> {
    pub flavor: Flavor,
    /// The concatenated parameters the client signed.
    pub signed: String,
    /// `client_secret` as received.
    pub secret: &'a str,
    /// `client_certificate_hash` (mandatory for [`Flavor::Current`]).
    pub certificate_hash: Option<&'a str>,
    /// `timestamp`, repaired (see [`signature::repair_timestamp`]).
    pub timestamp: &'a str,
}

/// Authenticates a client by its signed parameters, in a visible order: request time
/// (ESIA-007015), certificate hash (ESIA-007013), signature format (ESIA-007053),
/// signature (ESIA-007055).
pub fn check_signature(
    req: &SignedRequest<'_>,
    cert: &EsiaCertificate,
    now: DateTime<Utc>,
    skew_secs: u64,
) -> Result<(), OAuthError> {
    if !signature::timestamp_in_window(req.timestamp, now, skew_secs) {
        return Err(EsiaCode::BadTimestamp.error("invalid request time"));
    }
    if req.flavor == Flavor::Current {
        let presented = req
            .certificate_hash
            .ok_or_else(|| EsiaCode::missing("client_certificate_hash"))?;
        if !signature::hash_matches(&cert.certificate_hash, presented) {
            return Err(EsiaCode::CertificateMismatch
                .error("client_certificate_hash does not match the registered certificate"));
        }
    }
    let sig = signature::decode_secret(req.secret).map_err(|e| {
        EsiaCode::MalformedSecret
            .error("client_secret is malformed")
            .with_detail(e.to_string())
    })?;
    let verifier =
        RegisteredCertificate::from_pem(cert.certificate_pem.as_bytes()).map_err(|e| {
            OAuthError::server(format!("registered certificate of {}: {e}", cert.client_id))
        })?;
    let res = match req.flavor {
        Flavor::Legacy => verifier.verify_cms(req.signed.as_bytes(), &sig),
        Flavor::Current => verifier.verify_raw(req.signed.as_bytes(), &sig),
    };
    res.map_err(|e| match e {
        SigError::Malformed(_) => EsiaCode::MalformedSecret
            .error("client_secret is malformed")
            .with_detail(e.to_string()),
        SigError::Invalid(_) => EsiaCode::BadSignature
            .error("client_secret does not verify with the registered certificate")
            .with_detail(e.to_string()),
    })
}
