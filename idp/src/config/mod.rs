//! One typed configuration tree: defaults in code -> `idp.toml` -> `IDP_*` environment.
//! Unknown keys are an error that names the key.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub mod esia;
pub mod identity;
pub mod notify;
mod signing;
pub use self::esia::EsiaConfig;
pub use self::identity::IdentityConfig;
pub use self::notify::NotifyConfig;
pub use self::signing::KeysConfig;

/// Top-level settings of an `idp` node.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address and port the HTTP server listens on.
    pub listen: String,
    /// Public issuer URL (scheme, host, optional path). Defaults to `http://<listen>`.
    pub issuer: Option<String>,
    /// `sqlite://path` (embedded) or `postgres://...` (production).
    pub database_url: String,
    /// Connections in the database pool; defaults to a size that suits the backend.
    pub db_pool_size: Option<u32>,
    /// `redis://...` for shared short-lived state; without it an in-process store is used
    /// (one node only).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share one Redis.
    pub redis_prefix: String,
    /// Without `redis_url`: the most the in-process store may hold (MiB, counted as its
    /// keys' and values' bytes plus 128 per entry). At the ceiling, what would add to it
    /// is refused and answered "temporarily unavailable" until entries expire. 0: none.
    pub ephemeral_max_mib: u64,
    /// Directory for the embedded database and, in dev mode, the generated master key.
    pub data_dir: PathBuf,
    /// File holding the master key that seals private keys (`IDP_MASTER_KEY` wins over it).
    pub master_key_file: Option<PathBuf>,
    /// Development mode: cookies without `Secure` so plain http works, generated master key.
    /// Never enable in production.
    pub dev: bool,
    /// DANGER, tests only: the server's clock can be moved forward with
    /// `POST /dev/clock/advance` (form field `secs`), so black-box tests can let minutes
    /// pass at once. Refused outside dev mode; logs an error when on.
    pub danger_test_clock: bool,
    /// Addresses of reverse proxies / load balancers in front of the nodes. A request from one
    /// of them is attributed to the address it reports in `X-Forwarded-For` (the rightmost
    /// entry that is not itself a trusted proxy), for rate limits and audit; from any other
    /// peer the header is ignored.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// HTTP worker threads; defaults to the number of cores.
    pub workers: Option<usize>,
    /// How long a node may answer from its cached copy of a client registration (seconds);
    /// a change (CLI, another node) takes effect everywhere within this. 0 disables the cache.
    pub client_cache_secs: u64,
    pub tokens: TokenConfig,
    pub session: SessionConfig,
    pub password: PasswordConfig,
    pub keys: KeysConfig,
    pub lockout: crate::authn::throttle::LockoutConfig,
    /// One-time codes by SMS, voice, e-mail, push; forgot password / login (issue 4).
    pub otp: crate::authn::otp::OtpConfig,
    /// Notifications: outbox dispatcher, SMTP relay, SMS/voice/push gateway, dev mailbox.
    pub notify: NotifyConfig,
    /// The ESIA-compatible profile (`/aas/oauth2/*`, `/rs/prns/{oid}`).
    pub esia: EsiaConfig,
    /// The person: account levels per scope, registration codes, the registry verifier.
    pub identity: IdentityConfig,
}

/// Lifetimes of codes and tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    /// Authorization code lifetime (seconds).
    pub code_ttl_secs: u64,
    /// Access token lifetime (seconds).
    pub access_token_ttl_secs: u64,
    /// ID token lifetime (seconds).
    pub id_token_ttl_secs: u64,
    /// Refresh token lifetime (seconds); each rotation starts a new period.
    pub refresh_token_ttl_secs: u64,
    /// After a refresh token was used, a retry within this window is refused without
    /// revoking the family (concurrent retries); later reuse revokes the whole family.
    pub refresh_reuse_grace_secs: u64,
}

/// Browser sessions and login transactions.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionConfig {
    /// Lifetime of a single sign-on session without "remember me" (seconds).
    pub ttl_secs: u64,
    /// Lifetime of a single sign-on session with "remember me" (seconds).
    pub remember_ttl_secs: u64,
    /// How long a started sign-in may take before it must be restarted (seconds).
    pub login_ttl_secs: u64,
    /// A session without "remember me" stops serving single sign-on after this long without
    /// use (seconds); every use extends it. "Remember me" sessions have no idle limit.
    pub idle_timeout_secs: u64,
}

/// argon2id parameters for password hashing (OWASP: m=19456 KiB, t=2, p=1).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordConfig {
    /// Shortest password accepted for a new or changed password (at least 8).
    pub min_length: usize,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Password hashes computed at once; more wait, so sign-ins cannot starve token calls.
    /// Defaults to the number of cores.
    pub max_concurrent: Option<usize>,
    /// Seconds without any password check after which the workers' argon2 memory
    /// (`memory_kib` each) is given back to the system; 0 keeps it for the node's life.
    pub release_idle_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            issuer: None,
            database_url: "sqlite://./data/propusk.db".into(),
            db_pool_size: None,
            redis_url: None,
            redis_prefix: "propusk:".into(),
            ephemeral_max_mib: 256,
            data_dir: PathBuf::from("./data"),
            master_key_file: None,
            dev: false,
            danger_test_clock: false,
            trusted_proxies: Vec::new(),
            workers: None,
            client_cache_secs: 5,
            tokens: TokenConfig::default(),
            session: SessionConfig::default(),
            password: PasswordConfig::default(),
            keys: KeysConfig::default(),
            lockout: Default::default(),
            otp: Default::default(),
            notify: NotifyConfig::default(),
            esia: EsiaConfig::default(),
            identity: IdentityConfig::default(),
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        Self {
            code_ttl_secs: 60,
            access_token_ttl_secs: 600,
            id_token_ttl_secs: 600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            refresh_reuse_grace_secs: 5,
        }
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            ttl_secs: 8 * 3600,
            remember_ttl_secs: 30 * 24 * 3600,
            login_ttl_secs: 15 * 60,
            idle_timeout_secs: 30 * 60,
        }
    }
}

impl Default for PasswordConfig {
    fn default() -> Self {
        Self {
            min_length: 8,
            memory_kib: 19456,
            iterations: 2,
            parallelism: 1,
            max_concurrent: None,
            release_idle_secs: 5,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

impl Config {
    /// Loads defaults, then the TOML file (if given, or `./idp.toml` if present), then `IDP_*`.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let env: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &env)
    }

    pub fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let mut tree = toml::Table::new();
        let default_file = Path::new("idp.toml");
        let path = match file {
            Some(p) => Some(p),
            None if default_file.exists() => Some(default_file),
            None => None,
        };
        let mut origin = "configuration".to_string();
        if let Some(p) = path {
            let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                path: p.display().to_string(),
                source,
            })?;
            tree = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
                origin: p.display().to_string(),
                message: e.message().to_string(),
            })?;
            origin = format!("{} and IDP_* environment", p.display());
        }
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("IDP_") else {
                continue;
            };
            if matches!(rest, "" | "MASTER_KEY" | "BIN" | "LOG") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            insert_path(&mut tree, &path, env_value(v));
        }
        let de = toml::Value::Table(tree);
        let mut cfg: Config =
            serde_path_to_error::deserialize(de).map_err(|e| ConfigError::Invalid {
                origin: origin.clone(),
                message: format!("{} (at `{}`)", e.inner(), e.path()),
            })?;
        cfg.esia.ensure_rs256(&mut cfg.keys);
        cfg.validate()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), String> {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen: `{}` is not an address:port", self.listen));
        }
        if let Some(iss) = &self.issuer {
            let u = url::Url::parse(iss).map_err(|e| format!("issuer: {e}"))?;
            if u.query().is_some() || u.fragment().is_some() {
                return Err("issuer: must not have a query or fragment".into());
            }
            if u.scheme() != "https" && !self.dev && !is_loopback(&u) {
                return Err("issuer: must be https outside dev mode".into());
            }
        }
        if self.danger_test_clock && !self.dev {
            return Err("danger_test_clock: only in dev mode".into());
        }
        if self.tokens.code_ttl_secs == 0 || self.tokens.access_token_ttl_secs == 0 {
            return Err("tokens: lifetimes must be positive".into());
        }
        if self.password.memory_kib < 8 || self.password.iterations == 0 {
            return Err("password: argon2 parameters too small".into());
        }
        let longest = self
            .tokens
            .access_token_ttl_secs
            .max(self.tokens.id_token_ttl_secs);
        self.notify.validate(self.dev)?;
        self.otp.validate()?;
        self.esia.validate()?;
        self.identity.validate()?;
        self.keys.validate(longest)
    }

    /// The issuer URL without a trailing slash.
    pub fn issuer(&self) -> String {
        let iss = match &self.issuer {
            Some(i) => i.clone(),
            None => format!("http://{}", self.listen),
        };
        iss.trim_end_matches('/').to_string()
    }

    /// Whether cookies may go without `Secure` (dev mode on plain http).
    pub fn insecure_cookies(&self) -> bool {
        self.dev && !self.issuer().starts_with("https://")
    }

    /// The default configuration as commented TOML.
    pub fn default_toml() -> String {
        let body = toml::to_string_pretty(&Config::default()).unwrap_or_default();
        format!(
            "# Propusk configuration. Every key may also be set as IDP_<KEY> in the environment,\n\
             # nested keys joined by `__` (IDP_TOKENS__ACCESS_TOKEN_TTL_SECS=300).\n\
             # issuer = \"https://id.example.ru\"\n\
             # redis_url = \"redis://127.0.0.1:6379\"\n\
             # master_key_file = \"/etc/propusk/master.key\"\n\n{body}"
        )
    }
}

fn is_loopback(u: &url::Url) -> bool {
    matches!(
        u.host_str(),
        Some("127.0.0.1") | Some("localhost") | Some("[::1]")
    )
}

fn env_value(v: &str) -> toml::Value {
    if let Ok(b) = v.parse::<bool>() {
        return toml::Value::Boolean(b);
    }
    if let Ok(i) = v.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    toml::Value::String(v.to_string())
}

fn insert_path(tree: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [] => {}
        [last] => {
            tree.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = tree
                .entry(first.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(t) = entry {
                insert_path(t, rest, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_overrides_nested_keys() {
        let c = Config::load_from(
            None,
            &env(&[
                ("IDP_LISTEN", "0.0.0.0:9000"),
                ("IDP_TOKENS__CODE_TTL_SECS", "30"),
            ]),
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9000");
        assert_eq!(c.tokens.code_ttl_secs, 30);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::load_from(None, &env(&[("IDP_LISTNE", "x")])).unwrap_err();
        assert!(err.to_string().contains("listne"), "{err}");
        let err = Config::load_from(None, &env(&[("IDP_TOKENS__NOPE", "1")])).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn default_toml_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("idp.toml");
        std::fs::write(&p, Config::default_toml()).unwrap();
        let c = Config::load_from(Some(&p), &[]).unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080");
    }

    #[test]
    fn key_schedule_is_checked_against_token_lifetimes() {
        let c = Config::load_from(None, &env(&[("IDP_KEYS__ALGORITHMS", "RS256, ES256")])).unwrap();
        assert_eq!(
            c.keys.algs().unwrap(),
            vec![keys::Alg::RS256, keys::Alg::ES256]
        );
        let e = Config::load_from(None, &env(&[("IDP_KEYS__ALGORITHMS", "HS256")])).unwrap_err();
        assert!(e.to_string().contains("HS256"), "{e}");
        let e = Config::load_from(None, &env(&[("IDP_KEYS__RETIRE_KEEP_SECS", "60")])).unwrap_err();
        assert!(e.to_string().contains("retire_keep_secs"), "{e}");
        let e =
            Config::load_from(None, &env(&[("IDP_KEYS__PUBLISH_AHEAD_SECS", "10")])).unwrap_err();
        assert!(e.to_string().contains("publish_ahead_secs"), "{e}");
    }

    #[test]
    fn http_issuer_refused_outside_dev() {
        let e = Config::load_from(None, &env(&[("IDP_ISSUER", "http://id.example.ru")]));
        assert!(e.is_err());
        let ok = Config::load_from(
            None,
            &env(&[("IDP_ISSUER", "http://id.example.ru"), ("IDP_DEV", "true")]),
        );
        assert!(ok.is_ok());
    }
}
