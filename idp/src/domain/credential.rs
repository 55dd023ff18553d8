//! Second factors a citizen has set up.

use chrono::{DateTime, Utc};

/// What kind of second factor a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// Authenticator app (RFC 6238); the secret is sealed at rest.
    Totp,
    /// A one-time recovery code; only its keyed hash is stored.
    Recovery,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::Recovery => "recovery",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(Self::Totp),
            "recovery" => Some(Self::Recovery),
            _ => None,
        }
    }
}

/// A second factor. `secret` is the opened TOTP secret (never printed by `Debug`, not
/// `Clone`: it is zeroized when dropped).
pub struct Credential {
    pub id: String,
    pub subject_id: String,
    pub kind: CredentialKind,
    pub secret: Option<keys::SecretBytes>,
    pub secret_hash: Option<String>,
    /// TOTP: the last time step accepted; an older or equal step is a replay.
    pub last_used_step: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// TOTP: set once the first code from the app was accepted; unconfirmed ones do not count.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// Recovery code: when it was spent.
    pub used_at: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("id", &self.id)
            .field("subject_id", &self.subject_id)
            .field("kind", &self.kind)
            .field("confirmed_at", &self.confirmed_at)
            .field("used_at", &self.used_at)
            .finish_non_exhaustive()
    }
}

impl Credential {
    /// Whether it can be used to sign in now.
    pub fn usable(&self) -> bool {
        match self.kind {
            CredentialKind::Totp => self.confirmed_at.is_some(),
            CredentialKind::Recovery => self.used_at.is_none(),
        }
    }
}

/// What a WebAuthn credential is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebauthnKind {
    /// A passkey: a first factor on its own (user verification required), acr 3.
    Passkey,
    /// A security key: a second factor after the password.
    SecurityKey,
}

impl WebauthnKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passkey => "passkey",
            Self::SecurityKey => "security_key",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "passkey" => Some(Self::Passkey),
            "security_key" => Some(Self::SecurityKey),
            _ => None,
        }
    }
}

/// A passkey or security key of a subject. `data` is the webauthn-rs credential as
/// versioned JSON (public key, algorithm, flags; no secret).
#[derive(Debug, Clone, PartialEq)]
pub struct WebauthnCredential {
    pub id: String,
    pub subject_id: String,
    pub kind: WebauthnKind,
    /// The authenticator's credential id, base64url.
    pub cred_id: String,
    /// A label the person recognises ("Passkey 23.11.2026").
    pub name: String,
    pub data: String,
    /// The last signature counter seen; it only moves forward (0 = the authenticator keeps none).
    pub sign_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}
