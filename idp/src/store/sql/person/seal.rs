//! Sealing of the personal parts of rows: JSON sealed by the vault, bound (AAD) to the row.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::store::{StoreError, StoreResult};
use keys::Vault;

pub(super) fn seal_json<T: Serialize>(vault: &Vault, v: &T, aad: &str) -> StoreResult<Vec<u8>> {
    let json = serde_json::to_vec(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    vault
        .seal(&json, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(e.to_string()))
}

pub(super) fn open_json<T: DeserializeOwned>(
    vault: &Vault,
    sealed: &[u8],
    aad: &str,
) -> StoreResult<T> {
    let plain = vault
        .open(sealed, aad.as_bytes())
        .map_err(|e| StoreError::Sealing(format!("{aad}: {e}")))?;
    serde_json::from_slice(plain.expose()).map_err(|e| StoreError::Corrupt(format!("{aad}: {e}")))
}

pub(super) fn data_aad(subject_id: &str) -> String {
    format!("persons.data:{subject_id}")
}
pub(super) fn item_aad(id: &str) -> String {
    format!("person_items:{id}")
}
pub(super) fn history_aad(subject_id: &str) -> String {
    format!("person_history:{subject_id}")
}
pub(super) fn claim_aad(id: &str) -> String {
    format!("verifications.claim:{id}")
}
