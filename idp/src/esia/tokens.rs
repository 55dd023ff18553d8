//! ESIA-shaped tokens: the ID token names the subject by its numeric oid, `amr` is a string,
//! the subject is described under `urn:esia:sbj`; the access token binds each personal-data
//! scope to the subject (`fullname?oid=1000323031`). Both are signed RS256 (the profile's
//! default), and the access token also carries the standard RFC 9068 claims, so the
//! provider's own endpoints accept it.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::authn::transaction::AuthContext;
use crate::domain::Subject;
use crate::keyring::KeySet;
use crate::protocol::tokens::{AccessStamp, Minted};
use crate::protocol::OAuthError;

/// The profile signs with RS256 (falls back to the default key only if none exists, which
/// the configuration prevents while ESIA is enabled).
pub const ALG: &str = "RS256";

/// Scopes that are not bound to a subject in an ESIA access token.
fn unbound(scope: &str) -> bool {
    matches!(scope, "openid" | "offline_access")
}

/// `fullname openid` -> `fullname?oid=N openid`.
pub fn bound_scope(scopes: &[String], oid: i64) -> String {
    scopes
        .iter()
        .map(|s| {
            if unbound(s) {
                s.clone()
            } else {
                format!("{s}?oid={oid}")
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `fullname?oid=N openid` -> [("fullname", Some(N)), ("openid", None)]; a plain scope list
/// (a standard access token) gives no oids.
pub fn parse_bound_scope(scope: &str) -> Vec<(String, Option<i64>)> {
    scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| match s.split_once("?oid=") {
            Some((name, oid)) => (name.to_string(), oid.parse::<i64>().ok()),
            None => (s.to_string(), None),
        })
        .collect()
}

/// ESIA authentication method names for `amr` / `urn:esia:amd` (RFC 8176 values inside):
/// password `PWD`, electronic signature `DS`; Propusk's own: `SMS`, `OTP` (other one-time
/// codes and authenticator apps), `HWK` (security key), `BIO` (passkey), joined with `+`;
/// `OTHER` when none of these applies.
pub fn esia_amr(amr: &[String]) -> String {
    let names: Vec<&str> = amr
        .iter()
        .filter_map(|m| match m.as_str() {
            "pwd" => Some("PWD"),
            "sc" | "x509" => Some("DS"),
            "sms" => Some("SMS"),
            "otp" | "totp" => Some("OTP"),
            "hwk" => Some("HWK"),
            "swk" => Some("BIO"),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        "OTHER".into()
    } else {
        names.join("+")
    }
}

pub struct EsiaTokenInput<'a> {
    /// `iss` of ESIA tokens (`[esia] issuer`, default the provider's issuer).
    pub esia_issuer: &'a str,
    /// The provider's issuer: the `aud` of access tokens, as for standard ones.
    pub provider_issuer: &'a str,
    pub client_id: &'a str,
    pub subject: &'a Subject,
    pub scopes: &'a [String],
    pub auth: &'a AuthContext,
    /// `urn:esia:sbj:is_tru`: the account is confirmed.
    pub trusted: bool,
}

/// The access token (`typ: at+jwt`) under `stamp`, its id and expiry chosen beforehand.
pub fn mint_access(
    keys: &KeySet,
    input: &EsiaTokenInput<'_>,
    AccessStamp { jti, exp }: AccessStamp,
    now: DateTime<Utc>,
) -> Result<Minted, OAuthError> {
    let key = keys
        .current_for(Some(ALG))
        .ok_or_else(|| OAuthError::server("no signing key"))?;
    let oid = input.subject.oid;
    let claims = json!({
        "iss": input.esia_issuer,
        "sub": input.subject.id,
        "aud": input.provider_issuer,
        "client_id": input.client_id,
        "nbf": now.timestamp(),
        "iat": now.timestamp(),
        "exp": exp,
        "jti": jti,
        "scope": bound_scope(input.scopes, oid),
        "sid": input.auth.sid,
        "auth_time": input.auth.auth_time.timestamp(),
        "acr": input.auth.acr,
        "urn:esia:sid": input.auth.sid,
        "urn:esia:sbj_id": oid,
    });
    let token = key
        .sign_jwt(Some("at+jwt"), &claims)
        .map_err(OAuthError::server)?;
    Ok(Minted { token, jti, exp })
}

/// The ID token.
pub fn mint_id_token(
    keys: &KeySet,
    input: &EsiaTokenInput<'_>,
    now: DateTime<Utc>,
    ttl_secs: u64,
) -> Result<String, OAuthError> {
    let key = keys
        .current_for(Some(ALG))
        .ok_or_else(|| OAuthError::server("no signing key"))?;
    let oid = input.subject.oid;
    let amr = esia_amr(&input.auth.amr);
    let claims = json!({
        "iss": input.esia_issuer,
        "sub": oid,
        "aud": input.client_id,
        "nbf": now.timestamp(),
        "iat": now.timestamp(),
        "exp": now.timestamp() + ttl_secs as i64,
        "auth_time": input.auth.auth_time.timestamp(),
        "amr": amr,
        "urn:esia:amd": amr,
        "acr": input.auth.acr,
        "urn:esia:sid": input.auth.sid,
        "urn:esia:sbj": {
            "urn:esia:sbj:typ": "P",
            "urn:esia:sbj:is_tru": input.trusted,
            "urn:esia:sbj:oid": oid,
            "urn:esia:sbj:nam": format!("OID.{oid}"),
        },
    });
    key.sign_jwt(Some("JWT"), &claims)
        .map_err(OAuthError::server)
}

/// The subject oid an access token is bound to: `urn:esia:sbj_id` of an ESIA token.
pub fn token_oid(claims: &Value) -> Option<i64> {
    claims.get("urn:esia:sbj_id").and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_bound_to_the_subject() {
        let s = vec![
            "fullname".to_string(),
            "openid".into(),
            "offline_access".into(),
        ];
        let b = bound_scope(&s, 1000323031);
        assert_eq!(b, "fullname?oid=1000323031 openid offline_access");
        assert_eq!(
            parse_bound_scope(&b),
            vec![
                ("fullname".to_string(), Some(1000323031)),
                ("openid".to_string(), None),
                ("offline_access".to_string(), None)
            ]
        );
        assert_eq!(
            parse_bound_scope("openid email"),
            vec![("openid".to_string(), None), ("email".to_string(), None)]
        );
    }

    #[test]
    fn amr_is_an_esia_string() {
        assert_eq!(esia_amr(&["pwd".into()]), "PWD");
        assert_eq!(
            esia_amr(&["pwd".into(), "otp".into(), "mfa".into()]),
            "PWD+OTP"
        );
        assert_eq!(
            esia_amr(&["swk".into(), "user".into(), "mfa".into()]),
            "BIO"
        );
        assert_eq!(esia_amr(&[]), "OTHER");
    }
}
