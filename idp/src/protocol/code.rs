//! Authorization codes: 256-bit random, stored by hash in the ephemeral store, taken once.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::authorize::AuthRequest;
use super::error::OAuthError;
use super::tokens::{self, AccessStamp};
use crate::authn::transaction::AuthContext;
use crate::domain::{Client, GrantType};
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

/// A code taken for an exchange, with what the exchange will issue, chosen before the take
/// and recorded (as a [`SpentCode`]) in the same atomic step that took the code: a replay
/// arriving at any moment after the take finds the record and revokes what this exchange
/// issues.
pub struct Taken {
    /// The code's contents ([`CodeData`] as JSON).
    pub raw: Vec<u8>,
    /// The access token's id and expiry.
    pub stamp: AccessStamp,
    /// The refresh token family, when the client may refresh.
    pub family: Option<String>,
    /// The record's key: an exchange that fails after the take removes it, since nothing
    /// it describes reached the client.
    pub marker: String,
}

/// Takes `code` for `client`'s exchange and records its use; `None` when the code is
/// unknown, expired or already taken (then the caller looks for the record of its first
/// use).
pub async fn take(
    eph: &dyn Ephemeral,
    client: &Client,
    code: &str,
    now: chrono::DateTime<chrono::Utc>,
    access_ttl_secs: u64,
) -> Result<Option<Taken>, OAuthError> {
    let stamp = AccessStamp::new(now, access_ttl_secs)?;
    let family = if client.allows_grant(GrantType::RefreshToken) {
        Some(tokens::new_id()?)
    } else {
        None
    };
    let spent = SpentCode {
        client_id: client.id.clone(),
        access_jti: stamp.jti.clone(),
        access_exp: stamp.exp,
        refresh_family: family.clone(),
    };
    let spent = serde_json::to_vec(&spent).map_err(OAuthError::server)?;
    // Kept at least as long as the access token lives, and an hour at least.
    let keep = Duration::from_secs(access_ttl_secs.max(3600));
    let marker = spent_key(code);
    let raw = eph
        .take_and_mark(&code_key(code), &marker, &spent, keep)
        .await?;
    Ok(raw.map(|raw| Taken {
        raw,
        stamp,
        family,
        marker,
    }))
}

/// Issues a code for `req`.
pub async fn issue(
    eph: &dyn Ephemeral,
    req: &AuthRequest,
    auth: &AuthContext,
    ttl_secs: u64,
) -> Result<String, OAuthError> {
    let (code, bytes) = new_code(req, auth)?;
    eph.put(&code_key(&code), &bytes, Duration::from_secs(ttl_secs))
        .await?;
    Ok(code)
}

/// What a code's storing is tied to, checked in the same atomic step
/// ([`issue_tied`]).
pub enum Tie<'a> {
    /// A key that must be live, given a new TTL (a session's idle period:
    /// [`Ephemeral::touch_and_put`]).
    WhileLive(&'a str, Duration),
    /// A key taken (removed) in the same step, which must have been there (a login
    /// transaction's end: [`Ephemeral::take_and_mark`]).
    Taking(&'a str),
}

/// [`issue`] tied to another key; `None`, and no code, when that key was not there.
pub async fn issue_tied(
    eph: &dyn Ephemeral,
    tie: Tie<'_>,
    req: &AuthRequest,
    auth: &AuthContext,
    ttl_secs: u64,
) -> Result<Option<String>, OAuthError> {
    let (code, bytes) = new_code(req, auth)?;
    let (key, ttl) = (code_key(&code), Duration::from_secs(ttl_secs));
    let stored = match tie {
        Tie::WhileLive(live, live_ttl) => {
            eph.touch_and_put(live, live_ttl, &key, &bytes, ttl).await?
        }
        Tie::Taking(ended) => eph.take_and_mark(ended, &key, &bytes, ttl).await?.is_some(),
    };
    Ok(stored.then_some(code))
}

/// A new code and what it stands for, as stored.
fn new_code(req: &AuthRequest, auth: &AuthContext) -> Result<(String, Vec<u8>), OAuthError> {
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
    Ok((code, bytes))
}
