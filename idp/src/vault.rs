//! The master key and the data keys of the envelope encryption (design §3).
//!
//! The master key comes from `IDP_MASTER_KEY` or `master_key_file` and never enters the
//! database. Either may hold several keys (separated by whitespace or commas, one per line in
//! a file): the first seals, the others only open — that is how the master key is rotated
//! without downtime (see `docs/design/keys.md`). Data keys are created once, wrapped under the
//! master key, and shared by every node through the `data_keys` table.

use std::path::Path;

use chrono::{DateTime, Utc};
use keys::{DataKey, MasterKey, Sealer, Vault};

use crate::config::Config;
use crate::keyring::KeyringError;
use crate::store::{DataKeyChange, KeyChange, KeyStore, SqlStore, StoreError, StoredDataKey};

/// Parses one or more master keys in text form; the first is current.
pub fn parse_master_keys(text: &str, origin: &str) -> Result<Sealer, KeyringError> {
    let mut keys = Vec::new();
    for (i, part) in text
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let key = MasterKey::from_encoded(part)
            .map_err(|e| KeyringError::MasterKey(format!("{origin}, key {}: {e}", i + 1)))?;
        keys.push(key);
    }
    let mut it = keys.into_iter();
    let current = it
        .next()
        .ok_or_else(|| KeyringError::MasterKey(format!("{origin} holds no key")))?;
    Ok(Sealer::new(current, it.collect()))
}

/// Reads the master key(s): `IDP_MASTER_KEY`, else `master_key_file`, else (dev mode only) a
/// key generated once into `data_dir/master.key`.
pub fn load_master(cfg: &Config) -> Result<Sealer, KeyringError> {
    if let Ok(v) = std::env::var("IDP_MASTER_KEY") {
        return parse_master_keys(&v, "IDP_MASTER_KEY");
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
    let err =
        |e: &dyn std::fmt::Display| KeyringError::MasterKey(format!("{}: {e}", path.display()));
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| err(&e))?;
    let key = MasterKey::generate().map_err(|e| err(&e))?;
    // Write to a private temp file, then link into place: concurrent starts agree on one key.
    let tmp = cfg
        .data_dir
        .join(format!("master.key.{}", uuid::Uuid::new_v4()));
    write_private(&tmp, format!("{}\n", key.encode()).as_bytes()).map_err(|e| err(&e))?;
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Sealer::new(key, Vec::new())),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_master(&path),
        Err(e) => Err(err(&e)),
    }
}

/// Writes a new file readable by its owner only; fails if it exists.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
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

fn read_master(p: &Path) -> Result<Sealer, KeyringError> {
    let text = std::fs::read_to_string(p)
        .map_err(|e| KeyringError::MasterKey(format!("{}: {e}", p.display())))?;
    parse_master_keys(&text, &p.display().to_string())
}

const DATA: &str = "data";
const INDEX: &str = "index";

fn unwrap(master: &Sealer, k: &StoredDataKey) -> Result<DataKey, KeyringError> {
    keys::unwrap_data_key(master, &k.id, &k.wrapped).map_err(|e| match e {
        keys::KeyError::UnknownMasterKey(id) => KeyringError::MasterKey(format!(
            "data key {} is wrapped under master key `{id}`, which is not configured",
            k.id
        )),
        other => KeyringError::MasterKey(format!(
            "data key {} cannot be opened with the configured master key ({other})",
            k.id
        )),
    })
}

/// Opens the data keys, creating them on first start (once, whichever node comes first).
pub fn open_vault(
    store: &SqlStore,
    master: &Sealer,
    now: DateTime<Utc>,
) -> Result<Vault, KeyringError> {
    let mut stored = store.list_data_keys()?;
    let missing = |ks: &[StoredDataKey], p: &str| !ks.iter().any(|k| k.purpose == p);
    if missing(&stored, DATA) || missing(&stored, INDEX) {
        store.change_data_keys(now, "startup", &mut |ks| {
            let mut changes = Vec::new();
            for purpose in [DATA, INDEX] {
                if missing(ks, purpose) {
                    let (key, wrapped) = keys::new_data_key(master)
                        .map_err(|e| StoreError::Sealing(e.to_string()))?;
                    changes.push(DataKeyChange::Insert(StoredDataKey {
                        id: key.id().to_string(),
                        purpose: purpose.into(),
                        wrapped,
                        created_at: now,
                    }));
                }
            }
            Ok(changes)
        })?;
        stored = store.list_data_keys()?;
    }
    let mut data: Vec<DataKey> = Vec::new();
    let mut index = None;
    // Newest data key seals; older ones still open.
    for k in stored.iter().rev() {
        match k.purpose.as_str() {
            DATA => data.push(unwrap(master, k)?),
            INDEX if index.is_none() => index = Some(unwrap(master, k)?),
            _ => {}
        }
    }
    let mut data = data.into_iter();
    match (data.next(), index) {
        (Some(current), Some(index)) => Ok(Vault::new(current, data.collect(), index)),
        _ => Err(KeyringError::MasterKey("data keys are missing".into())),
    }
}

/// Re-wraps every data key and re-seals every signing key's private part under the current
/// master key, each in one transaction. Returns how many were changed.
pub fn rewrap(
    store: &SqlStore,
    master: &Sealer,
    now: DateTime<Utc>,
) -> Result<usize, KeyringError> {
    let data = store.change_data_keys(now, "rewrap", &mut |ks| {
        let mut out = Vec::new();
        for k in ks {
            let again = keys::rewrap(master, &k.id, &k.wrapped)
                .map_err(|e| StoreError::Sealing(format!("data key {}: {e}", k.id)))?;
            if let Some(wrapped) = again {
                out.push(DataKeyChange::Rewrap {
                    id: k.id.clone(),
                    wrapped,
                });
            }
        }
        Ok(out)
    })?;
    let signing = store.change_keys(now, "rewrap", &mut |ks| {
        let mut out = Vec::new();
        for k in ks.iter().filter(|k| !k.private_sealed.is_empty()) {
            if master.needs_reseal(&k.private_sealed) {
                let aad = crate::keyring::private_aad(&k.kid);
                let der = master
                    .open(&k.private_sealed, &aad)
                    .map_err(|e| StoreError::Sealing(format!("signing key {}: {e}", k.kid)))?;
                let sealed = master
                    .seal(der.expose(), &aad)
                    .map_err(|e| StoreError::Sealing(e.to_string()))?;
                out.push(KeyChange::Reseal {
                    kid: k.kid.clone(),
                    private_sealed: sealed,
                });
            }
        }
        Ok(out)
    })?;
    Ok(data.len() + signing.len())
}
