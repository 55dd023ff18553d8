//! Client authentication at the token, introspection and revocation endpoints
//! (RFC 6749 §2.3, OIDC Core §9). The method used must be the one the client registered.

use base64::Engine;
use serde_json::Value;

use super::error::OAuthError;
use super::params::Params;
use crate::domain::{Client, ClientAuthMethod};
use crate::state::AppState;

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Credentials as presented, before any lookup.
#[derive(Debug, PartialEq)]
enum Presented {
    Basic { id: String, secret: String },
    Post { id: String, secret: String },
    Jwt { id: String, assertion: String },
    None { id: String },
}

fn fail() -> OAuthError {
    OAuthError::invalid_client("client authentication failed")
}

fn parse_basic(header: &str) -> Result<(String, String), OAuthError> {
    let b64 = header
        .strip_prefix("Basic ")
        .or_else(|| header.strip_prefix("basic "))
        .ok_or_else(fail)?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| fail())?;
    let text = String::from_utf8(raw).map_err(|_| fail())?;
    let (id, secret) = text.split_once(':').ok_or_else(fail)?;
    // RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    let dec = |s: &str| -> Result<String, OAuthError> {
        let plus = s.replace('+', " ");
        url::form_urlencoded::parse(format!("x={plus}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .ok_or_else(fail)
    };
    Ok((dec(id)?, dec(secret)?))
}

/// Exactly one method per request (RFC 6749 §2.3).
fn presented(authorization: Option<&str>, form: &Params) -> Result<Presented, OAuthError> {
    let get = |n: &str| {
        form.get(n)
            .map_err(|e| OAuthError::invalid_request(e.describe()))
    };
    let form_id = get("client_id")?;
    let form_secret = get("client_secret")?;
    let assertion = get("client_assertion")?;
    let basic = authorization.filter(|h| h.len() > 6 && h[..6].eq_ignore_ascii_case("basic "));
    let methods = [basic.is_some(), form_secret.is_some(), assertion.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(OAuthError::invalid_request(
            "more than one client authentication method",
        ));
    }
    if let Some(h) = basic {
        let (id, secret) = parse_basic(h)?;
        if form_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the credentials",
            ));
        }
        return Ok(Presented::Basic { id, secret });
    }
    if let Some(a) = assertion {
        if get("client_assertion_type")? != Some(JWT_BEARER) {
            return Err(OAuthError::invalid_request(
                "unsupported client_assertion_type",
            ));
        }
        let sub = jwt_claim(a, "sub").ok_or_else(fail)?;
        if form_id.is_some_and(|f| f != sub) {
            return Err(OAuthError::invalid_request(
                "client_id does not match the assertion",
            ));
        }
        return Ok(Presented::Jwt {
            id: sub,
            assertion: a.to_string(),
        });
    }
    let id = form_id
        .ok_or_else(|| OAuthError::invalid_client("client authentication is required"))?
        .to_string();
    Ok(match form_secret {
        Some(secret) => Presented::Post {
            id,
            secret: secret.to_string(),
        },
        None => Presented::None { id },
    })
}

/// Reads a claim from an unverified JWT payload (only to find which client's keys verify it).
fn jwt_claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: Value = serde_json::from_slice(&raw).ok()?;
    v.get(name)?.as_str().map(str::to_string)
}

fn secret_matches(client: &Client, secret: &str) -> bool {
    let Some(stored) = &client.secret_hash else {
        return false;
    };
    let presented = keys::sha256_b64url(secret.as_bytes());
    keys::constant_time_eq(presented.as_bytes(), stored.as_bytes())
}

/// Authenticates the calling client.
pub async fn authenticate(
    state: &AppState,
    authorization: Option<&str>,
    form: &Params,
) -> Result<Client, OAuthError> {
    let p = presented(authorization, form)?;
    let id = match &p {
        Presented::Basic { id, .. }
        | Presented::Post { id, .. }
        | Presented::Jwt { id, .. }
        | Presented::None { id } => id.clone(),
    };
    if id.is_empty() || id.len() > 256 {
        return Err(fail());
    }
    let client = state
        .clients
        .find(&state.store, &id)
        .await?
        .ok_or_else(fail)?;
    let ok = match (&p, client.auth_method) {
        (Presented::Basic { secret, .. }, ClientAuthMethod::ClientSecretBasic) => {
            secret_matches(&client, secret)
        }
        (Presented::Post { secret, .. }, ClientAuthMethod::ClientSecretPost) => {
            secret_matches(&client, secret)
        }
        (Presented::None { .. }, ClientAuthMethod::None) => true,
        (Presented::Jwt { assertion, .. }, ClientAuthMethod::PrivateKeyJwt) => {
            check_assertion(state, &client, assertion).await?
        }
        _ => false,
    };
    if !ok {
        return Err(fail().with_detail(format!("client {} failed authentication", client.id)));
    }
    Ok(Client::clone(&client))
}

/// private_key_jwt (RFC 7523 §3): signed by a registered key; iss = sub = client_id; aud is
/// the token endpoint or the issuer; unexpired; jti used once.
async fn check_assertion(
    state: &AppState,
    client: &Client,
    assertion: &str,
) -> Result<bool, OAuthError> {
    let Some(jwks) = &client.jwks else {
        return Ok(false);
    };
    let keys: Vec<keys::VerifyingKey> = jwks
        .get("keys")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|k| keys::VerifyingKey::from_jwk(k).ok())
                .collect()
        })
        .unwrap_or_default();
    let Ok(claims) = keys::verify_jws(assertion, &keys) else {
        return Ok(false);
    };
    let now = state.now().timestamp();
    let s = |n: &str| claims.get(n).and_then(Value::as_str);
    let aud_ok = |a: &str| a == state.issuer.as_ref() || a == state.endpoint("/token");
    let aud = match claims.get("aud") {
        Some(Value::String(a)) => aud_ok(a),
        Some(Value::Array(v)) => v.iter().filter_map(Value::as_str).any(aud_ok),
        _ => false,
    };
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if s("iss") != Some(&client.id)
        || s("sub") != Some(&client.id)
        || !aud
        || exp <= now
        || exp > now + 3600
    {
        return Ok(false);
    }
    let Some(jti) = s("jti") else {
        return Ok(false);
    };
    let key = format!("jti:{}:{}", client.id, keys::sha256_b64url(jti.as_bytes()));
    let ttl = std::time::Duration::from_secs((exp - now).max(1) as u64);
    Ok(state.eph.put_if_absent(&key, b"1", ttl).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_is_urldecoded() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("my%20id:s%3Acret+x")
        );
        assert_eq!(
            parse_basic(&h).unwrap(),
            ("my id".to_string(), "s:cret x".to_string())
        );
    }

    #[test]
    fn two_methods_are_refused() {
        let h = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("a:b")
        );
        let form = Params::parse(b"client_id=a&client_secret=b");
        assert_eq!(
            presented(Some(&h), &form).unwrap_err().code,
            super::super::error::ErrorCode::InvalidRequest
        );
    }
}
