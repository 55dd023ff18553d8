//! The node's view of the signing keys: loaded from SQL (sealed), refreshed on an interval so
//! every node agrees, JWKS pre-rendered once per refresh.

use std::path::Path;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use keys::{Alg, MasterKey, Sealer, SigningKey, VerifyingKey};

use crate::config::Config;
use crate::store::{KeyStore, SqlStore, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no master key: set IDP_MASTER_KEY or master_key_file (create one with `idp keys new-master > master.key`), or run in dev mode")]
    NoMasterKey,
    #[error("master key file {0}: {1}")]
    MasterKeyFile(String, String),
    #[error("key store: {0}")]
    Store(#[from] StoreError),
    #[error("key {kid}: {message}")]
    Key { kid: String, message: String },
    #[error("no signing key")]
    Empty,
}

/// Keys usable at one moment.
pub struct KeySet {
    signing: Vec<SigningKey>,
    verifying: Vec<VerifyingKey>,
    /// Index into `signing` of the key that signs now.
    current: usize,
    jwks: Arc<[u8]>,
}

impl KeySet {
    pub fn current(&self) -> Option<&SigningKey> {
        self.signing.get(self.current)
    }
    pub fn verifying(&self) -> &[VerifyingKey] {
        &self.verifying
    }
    pub fn jwks_bytes(&self) -> Arc<[u8]> {
        self.jwks.clone()
    }
}

pub struct Keyring {
    sealer: Sealer,
    set: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring")
    }
}

/// Reads the master key: `IDP_MASTER_KEY`, else `master_key_file`, else (dev only) a key
/// generated once into `data_dir/master.key`.
pub fn load_master_key(cfg: &Config) -> Result<MasterKey, KeyringError> {
    if let Ok(v) = std::env::var("IDP_MASTER_KEY") {
        return MasterKey::from_encoded(&v)
            .map_err(|e| KeyringError::MasterKeyFile("IDP_MASTER_KEY".into(), e.to_string()));
    }
    if let Some(p) = &cfg.master_key_file {
        return read_master(p);
    }
    if !cfg.dev {
        return Err(KeyringError::NoMasterKey);
    }
    let path = cfg.data_dir.join("master.key");
    if path.exists() {
        return read_master(&path);
    }
    let err = |e: &dyn std::fmt::Display| {
        KeyringError::MasterKeyFile(path.display().to_string(), e.to_string())
    };
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| err(&e))?;
    let key = MasterKey::generate().map_err(|e| err(&e))?;
    // Write to a private temp file, then link into place: concurrent starts agree on one key.
    let tmp = cfg
        .data_dir
        .join(format!("master.key.{}", uuid::Uuid::new_v4()));
    write_private(&tmp, key.encode().as_bytes()).map_err(|e| err(&e))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_master(&path),
        Err(e) => Err(err(&e)),
    }
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn read_master(p: &Path) -> Result<MasterKey, KeyringError> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| KeyringError::MasterKeyFile(p.display().to_string(), e.to_string()))?;
    MasterKey::from_encoded(text.trim())
        .map_err(|e| KeyringError::MasterKeyFile(p.display().to_string(), e.to_string()))
}

fn aad(kid: &str) -> Vec<u8> {
    format!("signing_keys:{kid}").into_bytes()
}

impl Keyring {
    /// Loads keys from the store, creating the first ES256 key when there is none.
    pub fn open(
        store: &SqlStore,
        master: MasterKey,
        now: DateTime<Utc>,
    ) -> Result<Keyring, KeyringError> {
        let sealer = Sealer::new(master, Vec::new());
        let ring = Keyring {
            sealer,
            set: RwLock::new(Arc::new(KeySet {
                signing: Vec::new(),
                verifying: Vec::new(),
                current: 0,
                jwks: Arc::from(&b"{\"keys\":[]}"[..]),
            })),
        };
        if store.list_keys()?.is_empty() {
            ring.create_key(store, Alg::ES256, now)?;
        }
        ring.refresh(store)?;
        Ok(ring)
    }

    /// Generates a key, seals it and stores it as `current`.
    pub fn create_key(
        &self,
        store: &SqlStore,
        alg: Alg,
        now: DateTime<Utc>,
    ) -> Result<String, KeyringError> {
        let key = SigningKey::generate(alg).map_err(|e| KeyringError::Key {
            kid: "-".into(),
            message: e.to_string(),
        })?;
        let kid = key.kid().to_string();
        let kerr = |e: keys::KeyError| KeyringError::Key {
            kid: kid.clone(),
            message: e.to_string(),
        };
        let sealed = self
            .sealer
            .seal(key.to_pkcs8().expose(), &aad(&kid))
            .map_err(kerr)?;
        store.insert_key(&StoredKey {
            kid: kid.clone(),
            alg: alg.as_str().to_string(),
            state: "current".into(),
            private_sealed: sealed,
            public_jwk: key.public_jwk().to_string(),
            created_at: now,
        })?;
        Ok(kid)
    }

    /// Re-reads the key table; the oldest `current` key signs, every non-removed key verifies.
    pub fn refresh(&self, store: &SqlStore) -> Result<(), KeyringError> {
        let mut stored = store.list_keys()?;
        stored.retain(|k| k.state != "removed");
        stored.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let mut signing = Vec::new();
        let mut verifying = Vec::new();
        let mut current = None;
        for k in &stored {
            let kerr = |m: String| KeyringError::Key {
                kid: k.kid.clone(),
                message: m,
            };
            let alg = Alg::parse(&k.alg).ok_or_else(|| kerr(format!("unknown alg {}", k.alg)))?;
            let der = self
                .sealer
                .open(&k.private_sealed, &aad(&k.kid))
                .map_err(|e| kerr(e.to_string()))?;
            let sk = SigningKey::from_pkcs8(alg, der.expose()).map_err(|e| kerr(e.to_string()))?;
            let vk = VerifyingKey::from_jwk(&sk.public_jwk()).map_err(|e| kerr(e.to_string()))?;
            if current.is_none() && k.state == "current" {
                current = Some(signing.len());
            }
            signing.push(sk);
            verifying.push(vk);
        }
        let current = current.ok_or(KeyringError::Empty)?;
        let refs: Vec<&SigningKey> = signing.iter().collect();
        let jwks = Arc::from(keys::jwks_document(&refs).into_bytes());
        let set = Arc::new(KeySet {
            signing,
            verifying,
            current,
            jwks,
        });
        match self.set.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
        Ok(())
    }

    /// A secret derived from the master key for `label` (same on every node).
    pub fn derive_secret(&self, label: &str) -> String {
        self.sealer.blind_index(label)
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
