use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A single sign-on session of a browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SsoSession {
    /// SHA-256 (base64url) of the cookie value; the cookie value itself is never stored.
    pub id_hash: String,
    /// Public session id, the `sid` claim.
    pub sid: String,
    pub subject_id: String,
    pub auth_time: DateTime<Utc>,
    pub acr: String,
    pub amr: Vec<String>,
    pub remember: bool,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// Consent a citizen gave a client: the scopes it may receive without asking again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub subject_id: String,
    pub client_id: String,
    pub scopes: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An opaque refresh token, stored by hash. Tokens of one chain of rotations share a family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RefreshToken {
    /// SHA-256 (base64url) of the token value.
    pub token_hash: String,
    pub family_id: String,
    pub client_id: String,
    pub subject_id: String,
    pub scopes: Vec<String>,
    pub sid: Option<String>,
    pub auth_time: DateTime<Utc>,
    pub acr: String,
    pub amr: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set when the token was exchanged for a new one.
    pub used_at: Option<DateTime<Utc>>,
    /// Set when the token (or its family) was revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}
