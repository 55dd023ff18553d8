//! The ESIA dialect (`[esia]`): `/aas/oauth2/*`, `/idp/ext/Logout`, `/rs/prns/{oid}`.
//! See `docs/design/esia.md`.

use serde::{Deserialize, Serialize};

/// Settings of the ESIA-compatible profile.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EsiaConfig {
    /// Serve the ESIA paths. When on, an RS256 signing key is always kept (the profile signs
    /// its tokens RS256), even if `keys.algorithms` does not name it.
    pub enabled: bool,
    /// `iss` of the tokens issued on the ESIA paths (ESIA itself uses
    /// `http://esia.gosuslugi.ru/`, with the trailing slash). Default: the provider's issuer.
    pub issuer: Option<String>,
    /// How far the `timestamp` of a signed request may be from the server's clock (seconds).
    pub timestamp_skew_secs: u64,
    /// Refuse authorization requests without `code_challenge` (ESIA makes PKCE optional; the
    /// signed client_secret authenticates the client at the token endpoint).
    pub require_pkce: bool,
}

impl Default for EsiaConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            issuer: None,
            timestamp_skew_secs: 300,
            require_pkce: false,
        }
    }
}

impl EsiaConfig {
    pub fn validate(&self) -> Result<(), String> {
        if let Some(iss) = &self.issuer {
            url::Url::parse(iss).map_err(|e| format!("esia.issuer: {e}"))?;
        }
        if self.timestamp_skew_secs == 0 || self.timestamp_skew_secs > 3600 {
            return Err("esia.timestamp_skew_secs: between 1 and 3600".into());
        }
        Ok(())
    }

    /// The ESIA profile signs RS256: make sure such a key exists when the profile is on.
    pub fn ensure_rs256(&self, keys: &mut super::KeysConfig) {
        if self.enabled && !keys.algorithms.iter().any(|a| a == "RS256") {
            keys.algorithms.push("RS256".into());
        }
    }

    /// `iss` of ESIA-shaped tokens: the setting, else the provider's issuer.
    pub fn issuer_or<'a>(&'a self, provider: &'a str) -> &'a str {
        self.issuer.as_deref().unwrap_or(provider)
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn esia_keeps_an_rs256_key() {
        let c = Config::load_from(None, &env(&[("IDP_KEYS__ALGORITHMS", "ES256")])).unwrap();
        assert_eq!(
            c.keys.algs().unwrap(),
            vec![keys::Alg::ES256, keys::Alg::RS256],
            "RS256 is added, ES256 stays the default"
        );
        let c = Config::load_from(
            None,
            &env(&[
                ("IDP_KEYS__ALGORITHMS", "ES256"),
                ("IDP_ESIA__ENABLED", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(c.keys.algs().unwrap(), vec![keys::Alg::ES256]);
    }

    #[test]
    fn esia_settings_are_checked() {
        let c = Config::load_from(
            None,
            &env(&[
                ("IDP_ESIA__ISSUER", "http://esia.gosuslugi.ru/"),
                ("IDP_ESIA__TIMESTAMP_SKEW_SECS", "60"),
            ]),
        )
        .unwrap();
        assert_eq!(c.esia.issuer_or("https://id"), "http://esia.gosuslugi.ru/");
        assert_eq!(c.esia.timestamp_skew_secs, 60);
        assert!(Config::load_from(None, &env(&[("IDP_ESIA__TIMESTAMP_SKEW_SECS", "0")])).is_err());
        assert!(Config::load_from(None, &env(&[("IDP_ESIA__ISSUER", "not a url")])).is_err());
        assert!(Config::load_from(None, &env(&[("IDP_ESIA__NOPE", "1")])).is_err());
    }
}
