//! client_credentials grant (RFC 6749 §4.4): a token for the client itself, no user.

use super::{form_value, TokenResponse};
use crate::domain::{Client, GrantType};
use crate::protocol::error::{ErrorCode, OAuthError};
use crate::protocol::params::Params;
use crate::protocol::tokens;
use crate::state::AppState;

/// Scopes that only make sense with a user.
const USER_SCOPES: &[&str] = &["openid", "offline_access"];

pub async fn exchange(
    state: &AppState,
    client: &Client,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    if !client.allows_grant(GrantType::ClientCredentials) || client.is_public() {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "the client may not use this grant",
        ));
    }
    let allowed: Vec<&String> = client
        .scopes
        .iter()
        .filter(|s| !USER_SCOPES.contains(&s.as_str()))
        .collect();
    let scopes: Vec<String> = match form_value(form, "scope")? {
        None => Vec::new(),
        Some(raw) => {
            let mut out = Vec::new();
            for s in raw.split(' ').filter(|s| !s.is_empty()) {
                if !allowed.iter().any(|a| *a == s) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("scope `{s}` is not allowed"),
                    ));
                }
                if !out.iter().any(|o: &String| o == s) {
                    out.push(s.to_string());
                }
            }
            out
        }
    };
    let scope = scopes.join(" ");
    let keyset = state.keyring.snapshot();
    let ttl = state.cfg.tokens.access_token_ttl_secs;
    let access = tokens::mint_access(
        &keyset,
        &state.issuer,
        &client.id,
        &client.id,
        &scope,
        None,
        None,
        state.now(),
        ttl,
    )?;
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "Bearer",
        expires_in: ttl,
        scope,
        refresh_token: None,
        id_token: None,
    })
}
