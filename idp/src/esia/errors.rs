//! ESIA-style error codes. Every refusal on an ESIA path is an OAuth error object whose
//! `error_description` starts with `ESIA-0070xx: `; the list is in `docs/design/esia.md`.

use crate::protocol::{ErrorCode, OAuthError};

/// The codes Propusk uses on the ESIA paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EsiaCode {
    /// ESIA-007002: the client_id is unknown or has no registered certificate.
    UnknownClient,
    /// ESIA-007004: the person refused to give the portal access (the consent page's "deny").
    Denied,
    /// ESIA-007005: the redirect_uri is not registered for the client.
    BadRedirectUri,
    /// ESIA-007006: a scope is not approved for the client.
    BadScope,
    /// ESIA-007009: response_type other than `code`.
    BadResponseType,
    /// ESIA-007011: the authorization code or refresh token is invalid, expired or used.
    BadGrant,
    /// ESIA-007012: a grant_type other than authorization_code / refresh_token.
    BadGrantType,
    /// ESIA-007013: client_certificate_hash does not match the registered certificate.
    CertificateMismatch,
    /// ESIA-007014: a mandatory parameter is missing.
    MissingParameter,
    /// ESIA-007015: the timestamp is malformed or outside the allowed window.
    BadTimestamp,
    /// ESIA-007017: a parameter has an invalid value or is repeated.
    BadParameter,
    /// ESIA-007053: client_secret is not a well-formed signature.
    MalformedSecret,
    /// ESIA-007055: the signature does not verify with the registered certificate.
    BadSignature,
    /// ESIA-007019: the access token does not give access to this person or collection.
    Forbidden,
    /// ESIA-007020: the access token is missing, invalid or expired.
    BadToken,
}

impl EsiaCode {
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownClient => "ESIA-007002",
            Self::Denied => "ESIA-007004",
            Self::BadRedirectUri => "ESIA-007005",
            Self::BadScope => "ESIA-007006",
            Self::BadResponseType => "ESIA-007009",
            Self::BadGrant => "ESIA-007011",
            Self::BadGrantType => "ESIA-007012",
            Self::CertificateMismatch => "ESIA-007013",
            Self::MissingParameter => "ESIA-007014",
            Self::BadTimestamp => "ESIA-007015",
            Self::BadParameter => "ESIA-007017",
            Self::MalformedSecret => "ESIA-007053",
            Self::BadSignature => "ESIA-007055",
            Self::Forbidden => "ESIA-007019",
            Self::BadToken => "ESIA-007020",
        }
    }

    /// The OAuth error code the ESIA code travels with.
    pub fn oauth(self) -> ErrorCode {
        match self {
            Self::UnknownClient
            | Self::CertificateMismatch
            | Self::MalformedSecret
            | Self::BadSignature => ErrorCode::InvalidClient,
            Self::Forbidden | Self::Denied => ErrorCode::AccessDenied,
            Self::BadRedirectUri
            | Self::MissingParameter
            | Self::BadTimestamp
            | Self::BadParameter => ErrorCode::InvalidRequest,
            Self::BadScope => ErrorCode::InvalidScope,
            Self::BadResponseType => ErrorCode::UnsupportedResponseType,
            Self::BadGrant => ErrorCode::InvalidGrant,
            Self::BadGrantType => ErrorCode::UnsupportedGrantType,
            Self::BadToken => ErrorCode::InvalidToken,
        }
    }

    /// The OAuth error object: `error_description` = `ESIA-0070xx: <text>`.
    pub fn error(self, text: &str) -> OAuthError {
        OAuthError::new(self.oauth(), format!("{}: {text}", self.code()))
    }

    pub fn missing(name: &str) -> OAuthError {
        Self::MissingParameter.error(&format!(
            "the request does not contain a mandatory parameter ({name})"
        ))
    }
}

/// The ESIA code at the start of an error description, if any (for audit events).
pub fn code_of(e: &OAuthError) -> Option<&str> {
    e.description
        .split_once(':')
        .map(|(c, _)| c)
        .filter(|c| c.starts_with("ESIA-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_start_with_the_code() {
        let e = EsiaCode::missing("client_secret");
        assert_eq!(e.code, ErrorCode::InvalidRequest);
        assert!(
            e.description.starts_with("ESIA-007014: "),
            "{}",
            e.description
        );
        assert_eq!(code_of(&e), Some("ESIA-007014"));
        assert_eq!(
            EsiaCode::BadSignature.error("x").code,
            ErrorCode::InvalidClient
        );
        assert_eq!(code_of(&OAuthError::invalid_request("x: y")), None);
        let denied = EsiaCode::Denied.error("x");
        assert_eq!(denied.code, ErrorCode::AccessDenied);
        assert_eq!(code_of(&denied), Some("ESIA-007004"));
    }
}
