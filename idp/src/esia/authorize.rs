//! `/aas/oauth2/ac` and `/aas/oauth2/v2/ac`: an ESIA authorization request translated into the
//! provider's [`AuthRequest`], after the client's signature is verified. Checks run in a
//! visible order: first those that decide whether we may redirect at all (client, redirect
//! URI), then the ones whose failure is redirected with an ESIA code.

use chrono::{DateTime, Utc};

use super::errors::EsiaCode;
use super::signature::{legacy_string, repair_timestamp, v2_ac_string};
use super::{check_signature, param, required, Flavor, SignedRequest};
use crate::config::EsiaConfig;
use crate::domain::{Client, EsiaCertificate, GrantType};
use crate::protocol::authorize::{AuthRequest, ResponseMode, ResponseTarget};
use crate::protocol::params::Params;
use crate::protocol::{scopes, OAuthError};

/// `access_type=offline` is carried through the login as this scope: it asks for a refresh
/// token, which is what `offline_access` means in OIDC (and it is shown on the consent page).
pub const OFFLINE_SCOPE: &str = "offline_access";

/// Longest `state` accepted (ESIA sends a UUID).
const MAX_STATE: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub enum AcError {
    /// No safe redirect: an error page naming the ESIA code.
    Page(OAuthError),
    /// Delivered to the validated redirect_uri.
    Redirect {
        target: ResponseTarget,
        error: OAuthError,
    },
}

impl AcError {
    pub fn error(&self) -> &OAuthError {
        match self {
            AcError::Page(e) | AcError::Redirect { error: e, .. } => e,
        }
    }
}

/// Step 1: the client must exist with a registered certificate, and the redirect_uri must be
/// one of its own (exact match); failures here never redirect.
pub fn check_client_and_redirect<'a>(
    params: &Params,
    client: Option<&'a Client>,
    cert: Option<&'a EsiaCertificate>,
) -> Result<(&'a Client, &'a EsiaCertificate, String), AcError> {
    let (Some(client), Some(cert)) = (client, cert) else {
        return Err(AcError::Page(
            EsiaCode::UnknownClient.error("unknown client_id or no registered certificate"),
        ));
    };
    let uri = required(params, "redirect_uri").map_err(AcError::Page)?;
    if !client.redirect_uris.iter().any(|r| r == uri) {
        return Err(AcError::Page(
            EsiaCode::BadRedirectUri.error("redirect_uri is not registered for this client"),
        ));
    }
    Ok((client, cert, uri.to_string()))
}

/// Step 2: everything else, errors redirected with the echoed `state`.
pub fn check_request(
    flavor: Flavor,
    params: &Params,
    client: &Client,
    cert: &EsiaCertificate,
    redirect_uri: String,
    cfg: &EsiaConfig,
    now: DateTime<Utc>,
) -> Result<AuthRequest, AcError> {
    let state = params
        .get("state")
        .ok()
        .flatten()
        .filter(|s| s.len() <= MAX_STATE)
        .map(str::to_string);
    let target = ResponseTarget {
        redirect_uri,
        state,
        mode: ResponseMode::Query,
    };
    let fail = |error: OAuthError| AcError::Redirect {
        target: target.clone(),
        error,
    };
    let request = build(flavor, params, client, cert, &target, cfg, now).map_err(fail)?;
    Ok(request)
}

fn build(
    flavor: Flavor,
    params: &Params,
    client: &Client,
    cert: &EsiaCertificate,
    target: &ResponseTarget,
    cfg: &EsiaConfig,
    now: DateTime<Utc>,
) -> Result<AuthRequest, OAuthError> {
    // Mandatory parameters, in the order the ESIA documentation lists them.
    let client_id = required(params, "client_id")?;
    let secret = required(params, "client_secret")?;
    let scope = required(params, "scope")?;
    let response_type = required(params, "response_type")?;
    let state = required(params, "state")?;
    let timestamp = repair_timestamp(required(params, "timestamp")?);
    let certificate_hash = match flavor {
        Flavor::Legacy => param(params, "client_certificate_hash")?,
        Flavor::Current => Some(required(params, "client_certificate_hash")?),
    };
    if state.len() > MAX_STATE {
        return Err(EsiaCode::BadParameter.error("state is too long"));
    }
    if response_type != "code" {
        return Err(EsiaCode::BadResponseType.error("only response_type=code is supported"));
    }
    let signed = match flavor {
        Flavor::Legacy => legacy_string(scope, &timestamp, client_id, state),
        Flavor::Current => v2_ac_string(client_id, scope, &timestamp, state, &target.redirect_uri),
    };
    check_signature(
        &SignedRequest {
            flavor,
            signed,
            secret,
            certificate_hash,
            timestamp: &timestamp,
        },
        cert,
        now,
        cfg.timestamp_skew_secs,
    )?;
    if !client.allows_grant(GrantType::AuthorizationCode) {
        return Err(
            EsiaCode::BadGrantType.error("the client may not use the authorization code flow")
        );
    }
    let mut scopes = scopes::parse_scope(scope);
    if scopes.is_empty() {
        return Err(EsiaCode::missing("scope"));
    }
    if let Some(s) = scopes.iter().find(|s| !client.scopes.contains(s)) {
        return Err(
            EsiaCode::BadScope.error(&format!("scope `{s}` is not allowed for this client"))
        );
    }
    match param(params, "access_type")? {
        None | Some("online") => {}
        Some("offline") => {
            if !scopes.iter().any(|s| s == OFFLINE_SCOPE) {
                scopes.push(OFFLINE_SCOPE.into());
            }
        }
        Some(_) => {
            return Err(EsiaCode::BadParameter.error("access_type must be online or offline"))
        }
    }
    let code_challenge = check_pkce(
        param(params, "code_challenge")?,
        param(params, "code_challenge_method")?,
        cfg.require_pkce,
    )?;
    Ok(AuthRequest {
        client_id: client.id.clone(),
        target: target.clone(),
        scopes,
        nonce: None,
        code_challenge,
        prompt: Vec::new(),
        max_age: None,
        login_hint: None,
        hint_sub: None,
        acr_values: Vec::new(),
        ui_locales: None,
        claims: None,
    })
}

/// PKCE is optional in ESIA (RFC 7636 when sent: S256 only). Without it the code carries an
/// empty challenge, which no verifier matches at the standard token endpoint; the ESIA token
/// endpoint then relies on the signed client_secret alone.
fn check_pkce(
    challenge: Option<&str>,
    method: Option<&str>,
    require: bool,
) -> Result<String, OAuthError> {
    match challenge {
        None if require => Err(EsiaCode::missing("code_challenge")),
        None => Ok(String::new()),
        Some(c) => {
            if method != Some("S256") {
                return Err(EsiaCode::BadParameter.error("code_challenge_method must be S256"));
            }
            let ok = c.len() == 43
                && c.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                return Err(EsiaCode::BadParameter.error("code_challenge is malformed"));
            }
            Ok(c.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_optional_unless_required() {
        assert_eq!(check_pkce(None, None, false).unwrap(), "");
        assert!(check_pkce(None, None, true)
            .unwrap_err()
            .description
            .starts_with("ESIA-007014"));
        let c = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(check_pkce(Some(c), Some("S256"), true).unwrap(), c);
        assert!(check_pkce(Some(c), Some("plain"), false)
            .unwrap_err()
            .description
            .starts_with("ESIA-007017"));
        assert!(check_pkce(Some("short"), Some("S256"), false).is_err());
    }
}
