//! Registry verification: a durable request/response with an external registry.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::IdentityClaim;

/// Where a verification request stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum VerificationState {
    /// Waiting to be sent, or sent and waiting for the registry's answer.
    Pending,
    /// The registry confirmed every field: the account is standard.
    Matched,
    /// The registry answered that something does not match; the reason is shown.
    Mismatch { reason: MismatchReason },
    /// Given up after too many failed attempts.
    Failed,
}

impl VerificationState {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Matched => "matched",
            Self::Mismatch { .. } => "mismatch",
            Self::Failed => "failed",
        }
    }
    pub fn is_final(&self) -> bool {
        !matches!(self, Self::Pending)
    }
}

/// Precise reasons a registry refuses a submission (shown to the citizen).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchReason {
    /// The name registered for this SNILS differs.
    NameMismatch,
    /// The birth date registered differs.
    BirthDateMismatch,
    /// No person with this SNILS.
    SnilsNotFound,
    /// The passport is not valid (replaced, lost, expired).
    DocumentExpired,
    /// No such passport in the registry.
    DocumentNotFound,
}

impl MismatchReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NameMismatch => "name_mismatch",
            Self::BirthDateMismatch => "birth_date_mismatch",
            Self::SnilsNotFound => "snils_not_found",
            Self::DocumentExpired => "document_expired",
            Self::DocumentNotFound => "document_not_found",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "name_mismatch" => Self::NameMismatch,
            "birth_date_mismatch" => Self::BirthDateMismatch,
            "snils_not_found" => Self::SnilsNotFound,
            "document_expired" => Self::DocumentExpired,
            "document_not_found" => Self::DocumentNotFound,
            _ => return None,
        })
    }
}

/// A durable verification request (table `verifications`). The claim is sealed at rest.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    pub id: String,
    pub subject_id: String,
    pub claim: IdentityClaim,
    pub state: VerificationState,
    /// The registry's id of the exchange once it accepted the request.
    pub registry_ref: Option<String>,
    /// How many times sending or polling failed (registry unavailable).
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verification")
            .field("id", &self.id)
            .field("subject_id", &self.subject_id)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}
