//! Authorization codes: 256-bit random, stored by hash in the ephemeral store, taken once.

use serde::{Deserialize, Serialize};

use super::authorize::AuthRequest;
use super::error::OAuthError;
use crate::authn::transaction::AuthContext;
use crate::ephemeral::Ephemeral;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeData {
    pub v: u8,
    pub client_id: String,
    pub redirect_uri: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
    pub code_challenge: String,
    pub auth: AuthContext,
    pub claims: Option<serde_json::Value>,
}

/// What the first redemption of a code issued, kept so a replay can revoke it
/// (RFC 6749 §4.1.2, RFC 9700 §4.14).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SpentCode {
    pub client_id: String,
    pub access_jti: String,
    pub access_exp: i64,
    pub refresh_family: Option<String>,
}

pub fn code_key(code: &str) -> String {
    format!("code:{}", keys::sha256_b64url(code.as_bytes()))
}

pub fn spent_key(code: &str) -> String {
    format!("spent:{}", keys::sha256_b64url(code.as_bytes()))
}

pub async fn issue(
    eph: &dyn Ephemeral,
    req: &AuthRequest,
    auth: &AuthContext,
    ttl_secs: u64,
) -> Result<String, OAuthError> {
    let code = keys::random_token(32).map_err(OAuthError::server)?;
    let data = CodeData {
        v: 1,
        client_id: req.client_id.clone(),
        redirect_uri: req.target.redirect_uri.clone(),
        scopes: req.scopes.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth: auth.clone(),
        claims: req.claims.clone(),
    };
    let bytes = serde_json::to_vec(&data).map_err(OAuthError::server)?;
    eph.put(
        &code_key(&code),
        &bytes,
        std::time::Duration::from_secs(ttl_secs),
    )
    .await?;
    Ok(code)
}
