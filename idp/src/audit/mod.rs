//! Typed audit events, written with the change they describe.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub at: DateTime<Utc>,
    /// e.g. `login.success`, `login.failure`, `consent.granted`, `token.code_reuse`, `client.created`.
    pub kind: String,
    pub subject_id: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    /// Free-form details; never a secret or a personal number.
    pub detail: serde_json::Value,
}
