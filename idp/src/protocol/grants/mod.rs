//! Token endpoint grants (RFC 6749 §4-6), one file per grant.

pub mod authorization_code;
pub mod client_credentials;
pub mod refresh_token;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::error::OAuthError;
use super::params::Params;
use crate::authn::transaction::AuthContext;
use crate::domain::{Client, RefreshToken};
use crate::state::AppState;

/// A successful token response (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// The token request, tagged by grant_type.
pub enum TokenRequest {
    AuthorizationCode,
    RefreshToken,
    ClientCredentials,
}

impl TokenRequest {
    pub fn parse(form: &Params) -> Result<TokenRequest, OAuthError> {
        match form
            .get("grant_type")
            .map_err(|e| OAuthError::invalid_request(e.describe()))?
        {
            Some("authorization_code") => Ok(Self::AuthorizationCode),
            Some("refresh_token") => Ok(Self::RefreshToken),
            Some("client_credentials") => Ok(Self::ClientCredentials),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
            Some(_) => Err(OAuthError::new(
                super::error::ErrorCode::UnsupportedGrantType,
                "this grant_type is not supported",
            )),
        }
    }
}

pub async fn handle(
    state: &AppState,
    client: Client,
    req: TokenRequest,
    form: &Params,
) -> Result<TokenResponse, OAuthError> {
    match req {
        TokenRequest::AuthorizationCode => authorization_code::exchange(state, &client, form).await,
        TokenRequest::RefreshToken => refresh_token::exchange(state, &client, form).await,
        TokenRequest::ClientCredentials => client_credentials::exchange(state, &client, form).await,
    }
}

pub(crate) fn form_value<'a>(form: &'a Params, name: &str) -> Result<Option<&'a str>, OAuthError> {
    form.get(name)
        .map_err(|e| OAuthError::invalid_request(e.describe()))
}

/// A new refresh token: its value (for the client) and the row to store (by hash).
pub(crate) fn new_refresh(
    state: &AppState,
    client_id: &str,
    auth: &AuthContext,
    scopes: &[String],
    family_id: String,
    now: DateTime<Utc>,
) -> Result<(String, RefreshToken), OAuthError> {
    let value = keys::random_token(32).map_err(OAuthError::server)?;
    let row = RefreshToken {
        token_hash: keys::sha256_b64url(value.as_bytes()),
        family_id,
        client_id: client_id.to_string(),
        subject_id: auth.subject_id.clone(),
        scopes: scopes.to_vec(),
        sid: Some(auth.sid.clone()),
        auth_time: auth.auth_time,
        acr: auth.acr.clone(),
        amr: auth.amr.clone(),
        created_at: now,
        expires_at: now + chrono::Duration::seconds(state.cfg.tokens.refresh_token_ttl_secs as i64),
        used_at: None,
        revoked_at: None,
    };
    Ok((value, row))
}
