//! Token introspection (RFC 7662) and revocation (RFC 7009).

use serde_json::{json, Value};

use super::error::OAuthError;
use super::params::Params;
use super::tokens::{self, revoked_key};
use crate::domain::Client;
use crate::state::AppState;
use crate::store::RefreshTokenStore;

fn token_param(form: &Params) -> Result<String, OAuthError> {
    form.get("token")
        .map_err(|e| OAuthError::invalid_request(e.describe()))?
        .map(str::to_string)
        .ok_or_else(|| OAuthError::invalid_request("token is missing"))
}

/// RFC 7662 §2.2: `{"active": false}` for anything not currently valid.
pub async fn introspect(
    state: &AppState,
    client: &Client,
    form: &Params,
) -> Result<Value, OAuthError> {
    let token = token_param(form)?;
    let inactive = json!({ "active": false });
    if token.len() > 8192 {
        return Ok(inactive);
    }
    let now = state.now();
    if token.contains('.') {
        let keyset = state.keyring.snapshot();
        let Ok(at) = tokens::check_access(&keyset, &state.issuer, &token, now) else {
            return Ok(inactive);
        };
        if state.eph.get(&revoked_key(&at.jti)).await?.is_some() {
            return Ok(inactive);
        }
        return Ok(json!({
            "active": true, "token_type": "access_token", "scope": at.scope, "client_id": at.client_id,
            "sub": at.sub, "exp": at.exp, "iat": at.iat, "iss": at.iss, "aud": at.aud, "jti": at.jti,
        }));
    }
    let hash = keys::sha256_b64url(token.as_bytes());
    let Some(rt) = state.store.call(move |s| s.find_refresh(&hash)).await? else {
        return Ok(inactive);
    };
    let live = rt.used_at.is_none() && rt.revoked_at.is_none() && rt.expires_at > now;
    if !live || rt.client_id != client.id {
        return Ok(inactive);
    }
    Ok(json!({
        "active": true, "token_type": "refresh_token", "scope": rt.scopes.join(" "), "client_id": rt.client_id,
        "sub": rt.subject_id, "exp": rt.expires_at.timestamp(), "iat": rt.created_at.timestamp(), "iss": state.issuer.as_ref(),
    }))
}

/// RFC 7009 §2.2: unknown or foreign tokens are answered with success as well.
pub async fn revoke(state: &AppState, client: &Client, form: &Params) -> Result<(), OAuthError> {
    let token = token_param(form)?;
    if token.len() > 8192 {
        return Ok(());
    }
    let now = state.now();
    if token.contains('.') {
        let keyset = state.keyring.snapshot();
        if let Ok(at) = tokens::check_access(&keyset, &state.issuer, &token, now) {
            if at.client_id == client.id {
                let left = (at.exp - now.timestamp()).max(1) as u64;
                state
                    .eph
                    .put(
                        &revoked_key(&at.jti),
                        b"1",
                        std::time::Duration::from_secs(left),
                    )
                    .await?;
            }
        }
        return Ok(());
    }
    let hash = keys::sha256_b64url(token.as_bytes());
    let cid = client.id.clone();
    state
        .store
        .call(move |s| {
            if let Some(rt) = s.find_refresh(&hash)? {
                if rt.client_id == cid {
                    s.revoke_family(&rt.family_id, now)?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(())
}
