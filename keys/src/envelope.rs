//! Envelope encryption: personal data is sealed with *data keys*; data keys are stored only
//! wrapped (sealed) under the *master key*, which never enters the database.
//!
//! Rotating the master key therefore re-wraps a handful of data keys ([`rewrap`]) instead of
//! re-encrypting every row, and can run while nodes serve: a node that holds both the old
//! and the new master key opens data keys wrapped under either.
//!
//! Blind indexes (equality lookups of sealed values such as a phone number) use their own
//! data key, so they stay the same across master-key rotations.

use std::fmt;

use crate::seal::{blind_index_with, MasterKey, Sealer};
use crate::secret::SecretBytes;
use crate::KeyError;

/// A 256-bit AES key with an id; same text form and guarantees as [`MasterKey`]
/// (zeroized on drop, `Debug` shows the id only).
pub type DataKey = MasterKey;

fn wrap_aad(id: &str) -> Vec<u8> {
    format!("data_key:{id}").into_bytes()
}

/// A fresh data key and its wrapped form (sealed under `master`'s current key).
pub fn new_data_key(master: &Sealer) -> Result<(DataKey, Vec<u8>), KeyError> {
    let key = DataKey::generate()?;
    let wrapped = wrap(master, &key)?;
    Ok((key, wrapped))
}

/// Seals `key` under the current master key, bound to the key's id.
pub fn wrap(master: &Sealer, key: &DataKey) -> Result<Vec<u8>, KeyError> {
    master.seal(key.raw(), &wrap_aad(key.id()))
}

/// Opens a wrapped data key. Fails with [`KeyError::UnknownMasterKey`] when it was wrapped
/// under a master key this node does not hold, [`KeyError::Open`] when it is corrupt or
/// stored under another id.
pub fn unwrap(master: &Sealer, id: &str, wrapped: &[u8]) -> Result<DataKey, KeyError> {
    let raw = master.open(wrapped, &wrap_aad(id))?;
    DataKey::from_parts(id, raw.expose())
}

/// The data key re-wrapped under the current master key, or `None` when it already is.
pub fn rewrap(master: &Sealer, id: &str, wrapped: &[u8]) -> Result<Option<Vec<u8>>, KeyError> {
    if !master.needs_reseal(wrapped) {
        return Ok(None);
    }
    let key = unwrap(master, id, wrapped)?;
    wrap(master, &key).map(Some)
}

/// Seals and opens personal data with the unwrapped data keys, and computes blind indexes.
pub struct Vault {
    data: Sealer,
    index: DataKey,
}

impl Vault {
    /// `current` seals new values; `older` still open what they sealed; `index` keys the
    /// blind indexes.
    pub fn new(current: DataKey, older: Vec<DataKey>, index: DataKey) -> Vault {
        Vault {
            data: Sealer::new(current, older),
            index,
        }
    }

    /// Seals `plaintext`, bound to `aad` (e.g. `b"subjects.profile:<id>"`).
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.data.seal(plaintext, aad)
    }

    /// Opens a value sealed with the same `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, KeyError> {
        self.data.open(sealed, aad)
    }

    /// HMAC-SHA256 blind index of `value` (normalise it first), base64url, 43 characters.
    pub fn blind_index(&self, value: &str) -> String {
        blind_index_with(&self.index, value)
    }

    /// The id of the data key that seals new values.
    pub fn current_id(&self) -> &str {
        self.data.current_id()
    }

    /// Whether `sealed` should be sealed again with the current data key.
    pub fn needs_reseal(&self, sealed: &[u8]) -> bool {
        self.data.needs_reseal(sealed)
    }
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("data_key", &self.data.current_id())
            .field("index_key", &self.index.id())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_unwrap_round_trip_and_binding() {
        let master = Sealer::new(MasterKey::generate().unwrap(), vec![]);
        let (dk, wrapped) = new_data_key(&master).unwrap();
        let back = unwrap(&master, dk.id(), &wrapped).unwrap();
        assert_eq!(back.encode(), dk.encode());
        // Stored under another id: refused.
        assert_eq!(
            unwrap(&master, "other", &wrapped).err(),
            Some(KeyError::Open)
        );
        // Wrapped bytes never contain the raw key.
        assert!(!wrapped.windows(32).any(|w| w == dk.raw()));
    }

    #[test]
    fn master_rotation_rewraps_without_touching_data() {
        let old = MasterKey::generate().unwrap();
        let (old_text, old_id) = (old.encode(), old.id().to_string());
        let m1 = Sealer::new(old, vec![]);
        let (dk, wrapped) = new_data_key(&m1).unwrap();
        let ik = DataKey::generate().unwrap();
        let copy = |k: &DataKey| DataKey::from_encoded(&k.encode()).unwrap();
        let vault = Vault::new(copy(&dk), vec![], copy(&ik));
        let sealed = vault.seal(b"+79123456789", b"t:1").unwrap();
        let idx = vault.blind_index("+79123456789");

        let new = MasterKey::generate().unwrap();
        let new_text = new.encode();
        let m2 = Sealer::new(new, vec![MasterKey::from_encoded(&old_text).unwrap()]);
        let rewrapped = rewrap(&m2, dk.id(), &wrapped).unwrap().unwrap();
        assert_eq!(rewrap(&m2, dk.id(), &rewrapped).unwrap(), None);

        // Only the new master key is needed from now on, and the data is untouched.
        let m3 = Sealer::new(MasterKey::from_encoded(&new_text).unwrap(), vec![]);
        let dk2 = unwrap(&m3, dk.id(), &rewrapped).unwrap();
        assert_eq!(
            unwrap(&m3, dk.id(), &wrapped).err(),
            Some(KeyError::UnknownMasterKey(old_id))
        );
        let vault2 = Vault::new(dk2, vec![], ik);
        assert_eq!(
            vault2.open(&sealed, b"t:1").unwrap().expose(),
            b"+79123456789"
        );
        assert_eq!(vault2.blind_index("+79123456789"), idx);
    }

    #[test]
    fn debug_shows_ids_only() {
        let ik = DataKey::generate().unwrap();
        let dk = DataKey::generate().unwrap();
        let raw = dk.encode();
        let v = Vault::new(dk, vec![], ik);
        let d = format!("{v:?}");
        assert!(d.contains("Vault"));
        assert!(!d.contains(raw.split(':').nth(1).unwrap()));
    }
}
