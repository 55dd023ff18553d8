//! A login transaction: one authorization request on its way through sign-in and consent.
//! Kept in the ephemeral store under `tx:<id>`, bound to the browser by the `bid` cookie.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ephemeral::{EphResult, Ephemeral};
use crate::protocol::authorize::AuthRequest;

/// Who signed in, how and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthContext {
    pub subject_id: String,
    pub sid: String,
    pub auth_time: DateTime<Utc>,
    pub acr: String,
    pub amr: Vec<String>,
}

/// A sign-in with every factor done, held until a temporary password is replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordDue {
    pub subject_id: String,
    pub acr: String,
    pub amr: Vec<String>,
    pub remember: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginTx {
    /// Serialisation version of this record.
    pub v: u8,
    pub id: String,
    /// SHA-256 of the browser-binding cookie value.
    pub bid_hash: String,
    /// CSRF token of every form in this transaction.
    pub csrf: String,
    pub request: AuthRequest,
    /// Set once the user has signed in within this transaction (or had a usable session).
    pub auth: Option<AuthContext>,
    /// Set while a second factor is awaited.
    #[serde(default)]
    pub pending: Option<crate::authn::login::Pending>,
    /// Set when every factor is done but a temporary password must be replaced before the
    /// session opens (issue 4).
    #[serde(default)]
    pub password_due: Option<PasswordDue>,
    pub created_at: DateTime<Utc>,
}

impl LoginTx {
    /// The ephemeral store's key of transaction `id`.
    pub fn key(id: &str) -> String {
        format!("tx:{id}")
    }

    /// The record as stored.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub async fn save(&self, eph: &dyn Ephemeral, ttl: std::time::Duration) -> EphResult<()> {
        eph.put(&Self::key(&self.id), &self.to_bytes(), ttl).await
    }

    /// Loads a transaction; a missing, expired or unreadable one is `None`.
    pub async fn load(eph: &dyn Ephemeral, id: &str) -> EphResult<Option<LoginTx>> {
        if id.is_empty() || id.len() > 64 {
            return Ok(None);
        }
        Ok(eph
            .get(&Self::key(id))
            .await?
            .and_then(|b| serde_json::from_slice::<LoginTx>(&b).ok())
            .filter(|t| t.v == 1))
    }

    /// Removes the transaction; only the caller that actually removed it gets `Some`.
    pub async fn take(eph: &dyn Ephemeral, id: &str) -> EphResult<Option<LoginTx>> {
        Ok(eph
            .take(&Self::key(id))
            .await?
            .and_then(|b| serde_json::from_slice::<LoginTx>(&b).ok()))
    }
}
