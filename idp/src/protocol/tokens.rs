//! Minting and checking the JWTs this provider issues: ID tokens (OIDC Core §2) and
//! access tokens (RFC 9068, `typ: at+jwt`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{ErrorCode, OAuthError};
use crate::authn::transaction::AuthContext;
use crate::keyring::KeySet;

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Claims requested with the `claims` parameter for userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uic: Option<Vec<String>>,
}

pub struct Minted {
    pub token: String,
    pub jti: String,
    pub exp: i64,
}

pub fn new_id() -> Result<String, OAuthError> {
    keys::random_token(16).map_err(OAuthError::server)
}

#[allow(clippy::too_many_arguments)]
pub fn mint_access(
    keys: &KeySet,
    issuer: &str,
    client_id: &str,
    sub: &str,
    scope: &str,
    auth: Option<&AuthContext>,
    userinfo_claims: Option<Vec<String>>,
    now: DateTime<Utc>,
    ttl_secs: u64,
) -> Result<Minted, OAuthError> {
    let stamp = AccessStamp::new(now, ttl_secs)?;
    mint_access_stamped(
        stamp,
        keys,
        issuer,
        client_id,
        sub,
        scope,
        auth,
        userinfo_claims,
        now,
    )
}

/// The id and expiry of an access token, chosen before it is signed: the code exchange
/// records them with the spent code in the same step that takes the code.
pub struct AccessStamp {
    pub jti: String,
    pub exp: i64,
}

impl AccessStamp {
    pub fn new(now: DateTime<Utc>, ttl_secs: u64) -> Result<Self, OAuthError> {
        Ok(Self {
            jti: new_id()?,
            exp: now.timestamp() + ttl_secs as i64,
        })
    }
}

/// [`mint_access`] with the id and expiry chosen beforehand.
#[allow(clippy::too_many_arguments)]
pub fn mint_access_stamped(
    AccessStamp { jti, exp }: AccessStamp,
    keys: &KeySet,
    issuer: &str,
    client_id: &str,
    sub: &str,
    scope: &str,
    auth: Option<&AuthContext>,
    userinfo_claims: Option<Vec<String>>,
    now: DateTime<Utc>,
) -> Result<Minted, OAuthError> {
    let key = keys
        .current()
        .ok_or_else(|| OAuthError::server("no signing key"))?;
    let claims = AccessClaims {
        iss: issuer.to_string(),
        sub: sub.to_string(),
        aud: issuer.to_string(),
        client_id: client_id.to_string(),
        exp,
        iat: now.timestamp(),
        jti: jti.clone(),
        scope: scope.to_string(),
        sid: auth.map(|a| a.sid.clone()),
        auth_time: auth.map(|a| a.auth_time.timestamp()),
        acr: auth.map(|a| a.acr.clone()),
        amr: auth.map(|a| a.amr.clone()).unwrap_or_default(),
        uic: userinfo_claims,
    };
    let token = key
        .sign_jwt(Some("at+jwt"), &claims)
        .map_err(OAuthError::server)?;
    Ok(Minted { token, jti, exp })
}

pub struct IdTokenInput<'a> {
    pub client_id: &'a str,
    /// The client's `id_token_signed_response_alg`; the default key signs without one.
    pub alg: Option<&'a str>,
    pub auth: &'a AuthContext,
    pub nonce: Option<&'a str>,
    /// Extra claims (requested with `claims.id_token`).
    pub extra: Map<String, Value>,
}

pub fn mint_id_token(
    keys: &KeySet,
    issuer: &str,
    input: IdTokenInput<'_>,
    now: DateTime<Utc>,
    ttl_secs: u64,
) -> Result<String, OAuthError> {
    let key = keys
        .current_for(input.alg)
        .ok_or_else(|| OAuthError::server("no signing key"))?;
    let mut claims = input.extra;
    let base = json!({
        "iss": issuer,
        "sub": input.auth.subject_id,
        "aud": input.client_id,
        "azp": input.client_id,
        "exp": now.timestamp() + ttl_secs as i64,
        "iat": now.timestamp(),
        "auth_time": input.auth.auth_time.timestamp(),
        "acr": input.auth.acr,
        "amr": input.auth.amr,
        "sid": input.auth.sid,
    });
    if let Value::Object(b) = base {
        claims.extend(b);
    }
    if let Some(n) = input.nonce {
        claims.insert("nonce".into(), Value::String(n.to_string()));
    }
    key.sign_jwt(Some("JWT"), &Value::Object(claims))
        .map_err(OAuthError::server)
}

/// Verifies an access token's signature, type, issuer and expiry. Revocation is checked by
/// the caller (it needs the ephemeral store).
pub fn check_access(
    keys: &KeySet,
    issuer: &str,
    token: &str,
    now: DateTime<Utc>,
) -> Result<AccessClaims, OAuthError> {
    let bad = || {
        OAuthError::new(
            ErrorCode::InvalidToken,
            "the access token is invalid or expired",
        )
    };
    if token.len() > 8192 {
        return Err(bad());
    }
    let header = keys::decode_header(token).map_err(|_| bad())?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(bad());
    }
    let value = keys::verify_jws(token, keys.verifying()).map_err(|_| bad())?;
    let claims: AccessClaims = serde_json::from_value(value).map_err(|_| bad())?;
    if claims.iss != issuer || claims.exp <= now.timestamp() {
        return Err(bad());
    }
    Ok(claims)
}

/// Verifies an ID token we issued, ignoring expiry (id_token_hint, OIDC Core §3.1.2.1).
pub fn check_own_id_token(keys: &KeySet, issuer: &str, token: &str) -> Option<Value> {
    if token.len() > 8192 {
        return None;
    }
    let header = keys::decode_header(token).ok()?;
    if header.typ.as_deref() == Some("at+jwt") {
        return None;
    }
    let v = keys::verify_jws(token, keys.verifying()).ok()?;
    (v.get("iss").and_then(Value::as_str) == Some(issuer)).then_some(v)
}

/// Key under which a revoked access token's id is remembered until it expires.
pub fn revoked_key(jti: &str) -> String {
    format!("atrev:{jti}")
}
