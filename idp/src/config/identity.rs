//! The person (`[identity]`): minimum account level per scope and the registry that checks
//! SNILS + passport (registration codes follow `[otp]`). See `docs/design/identity.md`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::person::AccountLevel;

/// Settings of registration, account levels and the registry verifier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Minimum account level a scope needs; scopes not listed need none. A request for a
    /// scope above the person's level is shown on the consent page as withheld, and the
    /// scope is not granted.
    pub scope_min_level: BTreeMap<String, AccountLevel>,
    pub registry: RegistryConfig,
    /// PEM bundle of the qualified certification authorities whose certificates may confirm
    /// an account (`/account/profile/certificate`); unset: that way is not offered.
    pub qualified_ca_file: Option<std::path::PathBuf>,
}

/// Where SNILS + passport are checked.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// `simulated` (demo and tests: answers from `simulated_answers`) or `http` (the JSON
    /// contract of `docs/design/identity.md`, at `url`).
    pub kind: String,
    /// Base URL of the HTTP registry adapter.
    pub url: Option<String>,
    /// Request timeout of the HTTP adapter (seconds).
    pub timeout_secs: u64,
    /// Simulated registry: SNILS (11 digits) -> answer (`match`, `name_mismatch`,
    /// `birth_date_mismatch`, `snils_not_found`, `document_expired`, `document_not_found`,
    /// `unavailable`, `unavailable_once`); every other SNILS matches.
    pub simulated_answers: BTreeMap<String, String>,
    /// How often the background task looks for due requests (seconds).
    pub poll_interval_secs: u64,
    /// First retry delay after the registry was unavailable (seconds); doubles each time.
    pub retry_base_secs: u64,
    /// Longest retry delay (seconds).
    pub retry_max_secs: u64,
    /// Attempts before a request is given up (the citizen may submit again).
    pub max_attempts: i32,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        let scope_min_level = [
            "snils",
            "inn",
            "id_doc",
            "medical_doc",
            "drivers_licence_doc",
            "foreign_passport_doc",
            "military_doc",
            "birth_cert_doc",
        ]
        .into_iter()
        .map(|s| (s.to_string(), AccountLevel::Standard))
        .collect();
        Self {
            scope_min_level,
            registry: RegistryConfig::default(),
            qualified_ca_file: None,
        }
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            kind: "simulated".into(),
            url: None,
            timeout_secs: 10,
            simulated_answers: BTreeMap::new(),
            poll_interval_secs: 2,
            retry_base_secs: 2,
            retry_max_secs: 600,
            max_attempts: 10,
        }
    }
}

impl IdentityConfig {
    pub fn validate(&self) -> Result<(), String> {
        for s in self.scope_min_level.keys() {
            if !crate::protocol::scopes::is_known(s) {
                return Err(format!("identity.scope_min_level: unknown scope `{s}`"));
            }
        }
        let r = &self.registry;
        match r.kind.as_str() {
            "simulated" => {}
            "http" => {
                let u = r
                    .url
                    .as_deref()
                    .ok_or("identity.registry.url is required for kind = \"http\"")?;
                url::Url::parse(u).map_err(|e| format!("identity.registry.url: {e}"))?;
            }
            other => {
                return Err(format!(
                    "identity.registry.kind: `{other}` (expected simulated or http)"
                ))
            }
        }
        if r.poll_interval_secs == 0 || r.retry_base_secs == 0 || r.max_attempts <= 0 {
            return Err("identity.registry: intervals and max_attempts must be positive".into());
        }
        if let Some(path) = &self.qualified_ca_file {
            crate::registry::certificate::QualifiedRoots::from_pem_file(path)
                .map_err(|e| format!("identity.qualified_ca_file: {e}"))?;
        }
        Ok(())
    }

    /// The minimum level of a scope (simplified when not listed).
    pub fn min_level(&self, scope: &str) -> AccountLevel {
        self.scope_min_level
            .get(scope)
            .copied()
            .unwrap_or(AccountLevel::Simplified)
    }
}
