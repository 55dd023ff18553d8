//! The node's view of the signing keys: read from SQL, rotated by `keys::plan_rotation` under
//! a database lock (so nodes agree without talking to each other), refreshed on an interval,
//! JWKS pre-rendered once per refresh.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use keys::{Alg, KeyMeta, KeyState, RotationPolicy, Sealer, SigningKey, Step, VerifyingKey};

use crate::store::{KeyChange, KeyStore, SqlStore, StoreError, StoredKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("no master key: set IDP_MASTER_KEY or master_key_file (create one with `idp keys new-master > master.key`), or run in dev mode")]
    NoMasterKey,
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("key store: {0}")]
    Store(#[from] StoreError),
    #[error("key {kid}: {message}")]
    Key { kid: String, message: String },
    #[error("no current signing key for {0}")]
    Empty(Alg),
    #[error("{0}")]
    Config(String),
}

/// Additional data binding a sealed private key to its kid.
pub fn private_aad(kid: &str) -> Vec<u8> {
    format!("signing_keys:{kid}").into_bytes()
}

/// Keys usable at one moment.
pub struct KeySet {
    /// The current key of each configured algorithm, the default algorithm first.
    signing: Vec<SigningKey>,
    /// Every published key (next, current, retired).
    verifying: Vec<VerifyingKey>,
    jwks: Arc<[u8]>,
}

impl KeySet {
    /// The key that signs access tokens and ID tokens by default.
    pub fn current(&self) -> Option<&SigningKey> {
        self.signing.first()
    }
    /// The current key for `alg` (a client's `id_token_signed_response_alg`), else the default.
    pub fn current_for(&self, alg: Option<&str>) -> Option<&SigningKey> {
        alg.and_then(|a| self.signing.iter().find(|k| k.alg().as_str() == a))
            .or_else(|| self.current())
    }
    /// Whether tokens can be signed with `alg` now.
    pub fn supports(&self, alg: &str) -> bool {
        self.signing.iter().any(|k| k.alg().as_str() == alg)
    }
    pub fn verifying(&self) -> &[VerifyingKey] {
        &self.verifying
    }
    pub fn jwks_bytes(&self) -> Arc<[u8]> {
        self.jwks.clone()
    }
}

pub struct Keyring {
    master: Sealer,
    policy: RotationPolicy,
    set: RwLock<Arc<KeySet>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring")
    }
}

fn meta(k: &StoredKey) -> Result<KeyMeta, KeyringError> {
    let bad = |m: String| KeyringError::Key {
        kid: k.kid.clone(),
        message: m,
    };
    Ok(KeyMeta {
        kid: k.kid.clone(),
        alg: Alg::parse(&k.alg).ok_or_else(|| bad(format!("unknown alg {}", k.alg)))?,
        state: KeyState::parse(&k.state)
            .ok_or_else(|| bad(format!("unknown state {}", k.state)))?,
        created_at: k.created_at.timestamp(),
        activated_at: k.activated_at.map(|t| t.timestamp()),
        retired_at: k.retired_at.map(|t| t.timestamp()),
    })
}

fn metas(keys: &[StoredKey]) -> Result<Vec<KeyMeta>, KeyringError> {
    keys.iter().map(meta).collect()
}

fn to_store(e: KeyringError) -> StoreError {
    match e {
        KeyringError::Store(s) => s,
        other => StoreError::Corrupt(other.to_string()),
    }
}

impl Keyring {
    /// Loads the keys, first taking any rotation step that is due (on a new database: a
    /// current key for every configured algorithm).
    pub fn open(
        store: &SqlStore,
        master: Sealer,
        policy: RotationPolicy,
        now: DateTime<Utc>,
    ) -> Result<Keyring, KeyringError> {
        let ring = Keyring {
            master,
            policy,
            set: RwLock::new(Arc::new(KeySet {
                signing: Vec::new(),
                verifying: Vec::new(),
                jwks: Arc::from(&b"{\"keys\":[]}"[..]),
            })),
        };
        ring.rotate(store, now, "startup")?;
        ring.refresh(store)?;
        Ok(ring)
    }

    /// A fresh key of `alg` in `state`, its private part sealed under the master key.
    fn generate(
        &self,
        alg: Alg,
        state: KeyState,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, KeyringError> {
        let key = SigningKey::generate(alg).map_err(|e| KeyringError::Key {
            kid: "-".into(),
            message: e.to_string(),
        })?;
        self.stored(&key, state, now)
    }

    fn stored(
        &self,
        key: &SigningKey,
        state: KeyState,
        now: DateTime<Utc>,
    ) -> Result<StoredKey, KeyringError> {
        let sealed = self
            .master
            .seal(key.to_pkcs8().expose(), &private_aad(key.kid()))
            .map_err(|e| KeyringError::Key {
                kid: key.kid().to_string(),
                message: e.to_string(),
            })?;
        Ok(StoredKey {
            kid: key.kid().to_string(),
            alg: key.alg().as_str().to_string(),
            state: state.as_str().to_string(),
            private_sealed: sealed,
            public_jwk: key.public_jwk().to_string(),
            created_at: now,
            activated_at: (state == KeyState::Current).then_some(now),
            retired_at: None,
            removed_at: None,
        })
    }

    fn changes_for(
        &self,
        steps: &[Step],
        now: DateTime<Utc>,
    ) -> Result<Vec<KeyChange>, KeyringError> {
        let mut out = Vec::new();
        for s in steps {
            match s {
                Step::Generate { alg, state } => {
                    out.push(KeyChange::Insert(self.generate(*alg, *state, now)?))
                }
                Step::Activate { kid, retire } => {
                    if let Some(old) = retire {
                        out.push(KeyChange::Retire { kid: old.clone() });
                    }
                    out.push(KeyChange::Activate { kid: kid.clone() });
                }
                Step::Remove { kid } => out.push(KeyChange::Remove { kid: kid.clone() }),
            }
        }
        Ok(out)
    }

    /// Takes the rotation steps due at `now`. Cheap when none is due (one read, no lock);
    /// otherwise plans again under the lock, so two nodes never take the same step.
    pub fn rotate(
        &self,
        store: &SqlStore,
        now: DateTime<Utc>,
        reason: &str,
    ) -> Result<Vec<KeyChange>, KeyringError> {
        let t = now.timestamp();
        if keys::plan_rotation(&metas(&store.list_keys()?)?, t, &self.policy).is_empty() {
            return Ok(Vec::new());
        }
        Ok(store.change_keys(now, reason, &mut |rows| {
            let steps = keys::plan_rotation(&metas(rows).map_err(to_store)?, t, &self.policy);
            self.changes_for(&steps, now).map_err(to_store)
        })?)
    }

    /// An operator's rotation of `algs`: a new `next` key for each (unless one is waiting),
    /// which signs once it has been published for the publish period. With `emergency` the
    /// new key signs at once and the old current key is removed from JWKS immediately (a
    /// compromised key): tokens it signed stop verifying.
    pub fn rotate_now(
        &self,
        store: &SqlStore,
        now: DateTime<Utc>,
        algs: &[Alg],
        emergency: bool,
    ) -> Result<Vec<KeyChange>, KeyringError> {
        let reason = if emergency {
            "operator:emergency"
        } else {
            "operator"
        };
        Ok(store.change_keys(now, reason, &mut |rows| {
            let mut out = Vec::new();
            for &alg in algs {
                let of = |s: KeyState| {
                    rows.iter()
                        .filter(move |k| k.alg == alg.as_str() && k.state == s.as_str())
                };
                if emergency {
                    for old in of(KeyState::Current).chain(of(KeyState::Next)) {
                        out.push(KeyChange::Remove {
                            kid: old.kid.clone(),
                        });
                    }
                    let key = self
                        .generate(alg, KeyState::Current, now)
                        .map_err(to_store)?;
                    out.push(KeyChange::Insert(key));
                } else if of(KeyState::Next).next().is_none() {
                    let key = self.generate(alg, KeyState::Next, now).map_err(to_store)?;
                    out.push(KeyChange::Insert(key));
                }
            }
            Ok(out)
        })?)
    }

    /// Adds an operator's key as `next`: published now, signing after the publish period.
    pub fn import(
        &self,
        store: &SqlStore,
        now: DateTime<Utc>,
        key: &SigningKey,
    ) -> Result<Vec<KeyChange>, KeyringError> {
        let stored = self.stored(key, KeyState::Next, now)?;
        Ok(store.change_keys(now, "operator:import", &mut |rows| {
            if rows.iter().any(|k| k.kid == stored.kid) {
                return Err(StoreError::Conflict);
            }
            Ok(vec![KeyChange::Insert(stored.clone())])
        })?)
    }

    /// Re-reads the key table: every published key verifies and is in JWKS; the current key
    /// of each configured algorithm signs.
    pub fn refresh(&self, store: &SqlStore) -> Result<(), KeyringError> {
        let stored = store.list_keys()?;
        let mut verifying = Vec::new();
        let mut signing: Vec<SigningKey> = Vec::new();
        for k in &stored {
            let m = meta(k)?;
            if !m.state.is_published() {
                continue;
            }
            let kerr = |e: keys::KeyError| KeyringError::Key {
                kid: k.kid.clone(),
                message: e.to_string(),
            };
            let jwk: serde_json::Value =
                serde_json::from_str(&k.public_jwk).map_err(|e| KeyringError::Key {
                    kid: k.kid.clone(),
                    message: format!("public JWK: {e}"),
                })?;
            verifying.push(VerifyingKey::from_jwk(&jwk).map_err(kerr)?);
            let wanted = m.state == KeyState::Current
                && self.policy.algs.contains(&m.alg)
                && !signing.iter().any(|s| s.alg() == m.alg);
            if wanted {
                let der = self
                    .master
                    .open(&k.private_sealed, &private_aad(&k.kid))
                    .map_err(kerr)?;
                signing.push(SigningKey::from_pkcs8(m.alg, der.expose()).map_err(kerr)?);
            }
        }
        // Default algorithm first, then in configured order.
        let mut ordered = Vec::with_capacity(signing.len());
        for alg in &self.policy.algs {
            match signing.iter().position(|k| k.alg() == *alg) {
                Some(i) => ordered.push(signing.swap_remove(i)),
                None => return Err(KeyringError::Empty(*alg)),
            }
        }
        let jwks = Arc::from(keys::jwks_document_public(&verifying).into_bytes());
        let set = Arc::new(KeySet {
            signing: ordered,
            verifying,
            jwks,
        });
        match self.set.write() {
            Ok(mut g) => *g = set,
            Err(p) => *p.into_inner() = set,
        }
        Ok(())
    }

    /// Opens the private part of a stored key that has not been removed.
    pub fn private_key(&self, store: &SqlStore, kid: &str) -> Result<SigningKey, KeyringError> {
        let k = store
            .list_keys()?
            .into_iter()
            .find(|k| k.kid == kid && !k.private_sealed.is_empty())
            .ok_or_else(|| KeyringError::Key {
                kid: kid.into(),
                message: "no such key, or it was removed".into(),
            })?;
        let m = meta(&k)?;
        let kerr = |e: keys::KeyError| KeyringError::Key {
            kid: kid.into(),
            message: e.to_string(),
        };
        let der = self
            .master
            .open(&k.private_sealed, &private_aad(kid))
            .map_err(kerr)?;
        SigningKey::from_pkcs8(m.alg, der.expose()).map_err(kerr)
    }

    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }
}
