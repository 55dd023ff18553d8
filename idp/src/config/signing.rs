//! Signing-key rotation settings (`[keys]`).

use serde::{Deserialize, Deserializer, Serialize};

/// Signing keys: which algorithms, and the rotation schedule (see `docs/design/keys.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Algorithms that always have a signing key: ES256, EdDSA, RS256. The first signs access
    /// tokens and, unless a client asks for another, ID tokens. In the environment a comma-
    /// separated list: `IDP_KEYS__ALGORITHMS=ES256,RS256`.
    #[serde(deserialize_with = "list_or_csv")]
    pub algorithms: Vec<String>,
    /// Rotate keys by schedule in `serve` (every node may; they agree through the database).
    pub auto_rotate: bool,
    /// How long a key signs before it is replaced (seconds).
    pub rotation_period_secs: u64,
    /// How long a new key is published in JWKS before it signs (seconds). At least
    /// `jwks_max_age_secs + refresh_interval_secs`, so cached JWKS already hold it.
    pub publish_ahead_secs: u64,
    /// How long a retired key stays in JWKS (seconds). At least the longest token lifetime
    /// plus `refresh_interval_secs`, so every token it signed can still be verified.
    pub retire_keep_secs: u64,
    /// `Cache-Control: max-age` of the JWKS document (seconds).
    pub jwks_max_age_secs: u64,
    /// How often a node re-reads keys from the database and applies due rotation steps (seconds).
    pub refresh_interval_secs: u64,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            algorithms: vec!["ES256".into(), "EdDSA".into(), "RS256".into()],
            auto_rotate: true,
            rotation_period_secs: 90 * 86_400,
            publish_ahead_secs: 2 * 86_400,
            retire_keep_secs: 86_400,
            jwks_max_age_secs: 3_600,
            refresh_interval_secs: 60,
        }
    }
}

impl KeysConfig {
    /// The configured algorithms, parsed, default first.
    pub fn algs(&self) -> Result<Vec<keys::Alg>, String> {
        let mut out = Vec::new();
        for a in &self.algorithms {
            let alg = keys::Alg::parse(a).ok_or_else(|| {
                format!("keys.algorithms: unknown algorithm `{a}` (ES256, EdDSA, RS256)")
            })?;
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        if out.is_empty() {
            return Err("keys.algorithms: name at least one algorithm".into());
        }
        Ok(out)
    }

    /// The rotation policy for `keys::plan_rotation`.
    pub fn policy(&self) -> Result<keys::RotationPolicy, String> {
        let secs = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Ok(keys::RotationPolicy {
            algs: self.algs()?,
            rotation_period_secs: secs(self.rotation_period_secs),
            publish_ahead_secs: secs(self.publish_ahead_secs),
            retire_keep_secs: secs(self.retire_keep_secs),
        })
    }

    /// Checks the schedule against the token lifetimes it must outlast.
    pub fn validate(&self, longest_token_secs: u64) -> Result<(), String> {
        self.algs()?;
        if self.refresh_interval_secs == 0 || self.rotation_period_secs == 0 {
            return Err(
                "keys: refresh_interval_secs and rotation_period_secs must be positive".into(),
            );
        }
        let ahead = self
            .jwks_max_age_secs
            .saturating_add(self.refresh_interval_secs);
        if self.publish_ahead_secs < ahead {
            return Err(format!(
                "keys.publish_ahead_secs must be at least jwks_max_age_secs + refresh_interval_secs ({ahead})"
            ));
        }
        let keep = longest_token_secs.saturating_add(self.refresh_interval_secs);
        if self.retire_keep_secs < keep {
            return Err(format!(
                "keys.retire_keep_secs must be at least the longest token lifetime + refresh_interval_secs ({keep})"
            ));
        }
        Ok(())
    }
}

fn list_or_csv<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Csv(String),
    }
    Ok(match Either::deserialize(d)? {
        Either::List(l) => l,
        Either::Csv(s) => s
            .split([',', ' '])
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
    })
}
